"""Redis, the cache and the broker, goes down under a running installation: invite links
still redirect, people still join (the join rate limit lets them through while it cannot
count), nothing acknowledged is lost, and once Redis is back (empty: it keeps nothing
on disk) the webhooks that could not be queued are sent by the sweep."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import httpx

from apps.api import webhooks
from apps.api.models import WebhookDelivery
from apps.referrals.models import Click, Participant
from tests.factories import CampaignFactory, RefereeRewardFactory, join

from .conftest import needs_gunicorn, needs_postgres, needs_redis_server, record
from .procs import Visitor, django_env, wait_for

pytestmark = [needs_postgres, needs_redis_server, needs_gunicorn]


def test_with_redis_down_links_redirect_joins_work_and_nothing_is_lost(
    processes, private_redis, receiver, test_database_url
):
    campaign = CampaignFactory(slug="signup")
    RefereeRewardFactory(campaign=campaign, amount=Decimal("20.00"))
    alice = join(campaign, "alice")
    webhooks.webhook_endpoint_create(url=receiver.url)
    env = django_env(
        DATABASE_URL=test_database_url,
        CACHE_URL=private_redis.url(1),
        CELERY_BROKER_URL=private_redis.url(0),
        # Clicks go through the click buffer while Redis is there, straight to the
        # database while it is not.
        CLICK_BUFFER_URL=private_redis.url(2),
        # Per hour: the counts are in fixed windows, and four joins a second apart cross an
        # hour's boundary far more rarely than a minute's.
        JOIN_RATE_LIMIT="3/h",
        WEBHOOK_SWEEP_EVERY_SECONDS=1,
        CLICK_FLUSH_EVERY_SECONDS=1,
        WEBHOOK_SWEEP_GRACE_SECONDS=1,
    )
    server = processes.web(env)
    visitor = Visitor(server.url)
    acknowledged: list[str] = []

    def joins(count: int, prefix: str) -> list[int]:
        statuses = []
        for n in range(count):
            email = f"{prefix}{n}@example.com"
            response = visitor.join("signup", email, name=prefix.title(), ref=alice.code)
            statuses.append(response.status_code)
            if response.status_code == 303:
                acknowledged.append(email)
        return statuses

    assert joins(1, "before") == [303]
    # Its webhook queued (beside the participant messages a join queues too).
    queued = [
        json.loads(raw)["headers"]["task"] for raw in private_redis.client().lrange("celery", 0, -1)
    ]
    assert queued.count("apps.api.tasks.webhook_deliver") == 1

    private_redis.kill()
    down_at = time.monotonic()

    click = visitor.client.get(f"/r/{alice.code}?s=wechat")
    assert click.status_code == 302 and click.headers["Location"] == "/c/signup/"
    # The web process's click sender, finding Redis gone, inserts the click itself.
    clicks = Click.objects.filter(participant=alice, channel="wechat")
    wait_for(lambda: clicks.exists(), timeout=10, what="the click in the database")
    assert clicks.count() == 1
    # Five joins from one address against a limit of three: while the counts cannot be
    # kept, nobody is turned away.
    assert joins(5, "during") == [303] * 5
    person = Participant.objects.get(email="during0@example.com")
    for image in ("qr.png", "qr.svg"):
        assert visitor.client.get(f"/p/{person.token}/{image}").status_code == 200
    assert visitor.client.get(f"/p/{person.token}/").status_code == 200
    health = visitor.client.get("/healthz")
    assert health.status_code == 200
    assert health.json()["checks"] == {"database": "ok", "cache": "down", "broker": "down"}
    assert WebhookDelivery.objects.filter(status="pending").count() == 6

    private_redis.start()  # back, and empty: the message queued before is gone too
    up_at = time.monotonic()
    processes.worker(env, beat=True)
    wait_for(
        lambda: WebhookDelivery.objects.filter(status="delivered").count() == 6,
        timeout=30,
        what="the webhooks of every join",
    )
    caught_up = time.monotonic()
    counts = receiver.counts()
    sent = set(WebhookDelivery.objects.values_list("event_id", flat=True))

    # A click after the outage reaches the log too (buffered, or inserted if the web
    # process still leaves Redis alone for a moment), written once.
    assert visitor.client.get(f"/r/{alice.code}?s=after").status_code == 302
    wait_for(
        lambda: Click.objects.filter(participant=alice, channel="after").exists(),
        timeout=30,
        what="the click made after the outage",
    )
    assert Click.objects.filter(participant=alice).count() == 2

    # The limit holds again once Redis counts.
    assert joins(4, "after") == [303, 303, 303, 429]

    stored = set(Participant.objects.values_list("email", flat=True))
    lost = [email for email in acknowledged if email not in stored]
    record(
        "redis_down",
        {
            "joins_acknowledged_while_down": 5,
            "lost": len(lost),
            "webhooks_sent_after_redis_returned": len(counts),
            "webhooks_duplicated": sum(n - 1 for n in counts.values()),
            "outage_seconds": round(up_at - down_at, 2),
            "catch_up_seconds": round(caught_up - up_at, 2),
        },
    )
    assert lost == []
    assert Participant.objects.filter(campaign=campaign).count() == 1 + 1 + 5 + 3
    assert len(counts) == 6 and set(counts.values()) == {1}
    assert set(counts) == sent
    assert httpx.get(f"{server.url}/healthz").json()["checks"]["cache"] == "ok"
