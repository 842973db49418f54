"""Purchases posted with `Prefer: respond-async` to a real web server and applied by a real
Celery worker, which is killed in the middle of the queue and started again: every
purchase is applied, each once, and none waits for more than a sweep after the restart.

What is taken in is a row (`queued`) written before the 202; a worker claims the oldest
with SKIP LOCKED and marks it applied in the transaction that applies it. A worker killed
mid-event rolls that transaction back, so the event stays queued; the messages the dead
worker held come back only after the broker's visibility timeout, so recovery is beat's
sweep (`apply-queued-events`, every second here).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx

from apps.api.services import api_key_create
from apps.campaigns.models import Campaign
from apps.rewards.models import Conversion, ConversionStatus, Reward
from tests.factories import CampaignFactory, CommissionLevelFactory, join

from .conftest import needs_gunicorn, needs_postgres, needs_redis_server, record
from .procs import django_env, wait_for

pytestmark = [needs_postgres, needs_redis_server, needs_gunicorn]

BUYERS = 20
ORDERS = 15  # each buyer's; every fifth is posted twice


def test_a_worker_killed_mid_queue_applies_every_queued_purchase_once(
    processes, private_redis, test_database_url
):
    shop = CampaignFactory(
        slug="shop",
        qualifying_event=Campaign.QualifyingEvent.PURCHASE,
        min_purchase_amount=Decimal("10.00"),
    )
    CommissionLevelFactory(campaign=shop, level=1, percent=Decimal("10.00"))
    CommissionLevelFactory(campaign=shop, level=2, percent=Decimal("5.00"))
    alice = join(shop, "alice")
    bob = join(shop, "bob", referrer=alice)
    buyers = [join(shop, f"buyer{n}", referrer=bob, external_id=f"u-{n}") for n in range(BUYERS)]
    _, key = api_key_create(name="shop")
    env = django_env(
        DATABASE_URL=test_database_url,
        CELERY_BROKER_URL=private_redis.url(0),
        QUEUED_EVENTS_SWEEP_SECONDS=1,
    )
    server = processes.web(env)
    bodies = [
        {"type": "purchase", "campaign": "shop", "external_id": buyer.external_id,
         "order_id": f"{buyer.external_id}-{n}", "amount": "50.00", "currency": "CNY"}
        for buyer in buyers for n in range(ORDERS)
    ]  # fmt: skip
    sent = bodies + bodies[::5]

    headers = {"Authorization": f"Bearer {key}", "Prefer": "respond-async"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:

        def post(body: dict[str, str]) -> int:
            return client.post("/api/v1/events/", json=body).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(post, sent))
    assert set(statuses) <= {200, 202}, statuses
    assert statuses.count(202) == len(bodies)
    queued = Conversion.objects.filter(status=ConversionStatus.QUEUED)
    assert queued.count() == len(bodies)  # no worker yet: the wake-ups wait in Redis

    worker = processes.worker(env, beat=True)
    wait_for(lambda: queued.count() <= len(bodies) * 0.7, timeout=120, what="30 % applied")
    worker.kill()  # the main process and its pool, without warning
    killed_at = time.monotonic()
    left_at_kill = queued.count()
    assert left_at_kill > 0, "the worker finished before it could be killed"

    processes.worker(env, beat=True)
    wait_for(lambda: not queued.exists(), timeout=180, what="every purchase applied")
    recovered_in = time.monotonic() - killed_at

    commissions = Reward.objects.filter(campaign=shop, source="commission")
    assert commissions.count() == 2 * len(bodies)
    assert commissions.values("purchase_id", "level").distinct().count() == 2 * len(bodies)
    assert sorted(set(commissions.values_list("participant_id", "level"))) == [
        (alice.pk, 2),
        (bob.pk, 1),
    ]
    assert Conversion.objects.filter(campaign=shop, status="applied").count() == len(bodies)
    record(
        "queued_purchases",
        {
            "purchases": len(bodies),
            "posted": len(sent),
            "left_at_kill": left_at_kill,
            "recovery_seconds": round(recovered_in, 2),
            "sweep_every_seconds": 1,
            "lost": Conversion.objects.filter(campaign=shop).exclude(status="applied").count(),
            "applied_twice": commissions.count() - 2 * len(bodies),
        },
    )
