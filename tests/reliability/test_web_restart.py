"""A web process stopped in the middle of a burst of invite clicks (SIGTERM: a deploy or a
restart), with the click buffer on: each redirect's click is in its process's sender for
up to GATHER_SECONDS (50 ms) before it reaches Redis, and the process sends what it holds on its
way out. Every 302 the visitors got leaves exactly one click in the log."""

from __future__ import annotations

import threading
import time

import httpx

from apps.referrals import clickbuffer
from apps.referrals.models import Click
from tests.factories import CampaignFactory, join

from .conftest import needs_gunicorn, needs_postgres, needs_redis_server
from .procs import django_env

pytestmark = [needs_postgres, needs_redis_server, needs_gunicorn]

VISITORS = 8


def test_a_web_process_stopped_mid_burst_loses_no_buffered_click(
    processes, private_redis, settings, test_database_url
):
    alice = join(CampaignFactory(slug="burst"), "alice")
    buffer_url = private_redis.url(2)
    server = processes.web(
        django_env(
            DATABASE_URL=test_database_url,
            CACHE_URL=private_redis.url(1),
            CLICK_BUFFER_URL=buffer_url,
            # A flush now and then would not change the count; none runs here.
            CLICK_FLUSH_EVERY_SECONDS=3600,
        )
    )
    redirected = [0] * VISITORS
    stop = threading.Event()

    def visitor(n: int) -> None:
        with httpx.Client(base_url=server.url, timeout=5) as client:
            while not stop.is_set():
                try:
                    response = client.get(f"/r/{alice.code}?s=burst")
                except httpx.HTTPError:
                    continue  # the server is going or gone: no 302, no click owed
                if response.status_code == 302:
                    redirected[n] += 1

    threads = [threading.Thread(target=visitor, args=(n,)) for n in range(VISITORS)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    server.process.stop()  # SIGTERM: gunicorn's workers finish their requests and exit
    stop.set()
    for thread in threads:
        thread.join()

    assert sum(redirected) > 100, "the burst never got going"
    settings.FISSION = {**settings.FISSION, "CLICK_BUFFER_URL": buffer_url}
    clickbuffer.flush(max_batches=1000, lease=0)
    assert Click.objects.filter(participant=alice, channel="burst").count() == sum(redirected)
