"""The web process dies right after it commits a join or an event and before it publishes
the task that sends the webhook: the row is in the outbox, and the sweep sends it.

The server is real (gunicorn), and its process really dies: the on-commit hook that
would publish ends it with os._exit (tests/reliability/crash_on_publish_wsgi.py).
"""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from apps.api import webhooks
from apps.api.models import WebhookDelivery
from apps.api.services import api_key_create
from apps.api.tasks import webhooks_send_due
from apps.referrals.models import Participant
from apps.rewards.models import Conversion, Reward
from tests.factories import CampaignFactory, CommissionLevelFactory, RefereeRewardFactory, join

from .conftest import needs_gunicorn, needs_postgres, needs_redis_server
from .procs import Visitor, django_env

pytestmark = [needs_postgres, needs_redis_server, needs_gunicorn]


def test_what_a_dying_web_process_committed_is_sent_by_the_sweep(
    settings, processes, private_redis, receiver, test_database_url
):
    signup = CampaignFactory(slug="signup")
    RefereeRewardFactory(campaign=signup, amount=Decimal("20.00"))
    shop = CampaignFactory(slug="shop", qualifying_event="purchase")
    CommissionLevelFactory(campaign=shop, level=1, percent=Decimal("10.00"))
    alice = join(signup, "alice")
    shop_alice = join(shop, "alice")
    join(shop, "bob", referrer=shop_alice, external_id="u-bob")
    webhooks.webhook_endpoint_create(url=receiver.url)
    key = api_key_create(name="shop")[1]
    env = django_env(
        DATABASE_URL=test_database_url,
        CELERY_BROKER_URL=private_redis.url(0),
        RATELIMIT_ENABLE="false",
    )
    server = processes.web(env, app="tests.reliability.crash_on_publish_wsgi:application")

    # A join: the process dies after the commit; the visitor gets no answer.
    visitor = Visitor(server.url)
    with pytest.raises(httpx.TransportError):
        visitor.join("signup", "bob@example.com", name="Bob", ref=alice.code)
    bob = Participant.objects.get(campaign=signup, email="bob@example.com")
    assert bob.referrer_id == alice.pk  # committed whole

    # An event: the same.
    api = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=10)
    event = {
        "type": "purchase", "campaign": "shop", "external_id": "u-bob",
        "order_id": "o-1", "amount": "50.00", "currency": "CNY",
    }  # fmt: skip
    with pytest.raises(httpx.TransportError):
        api.post("/api/v1/events/", json=event, headers={"Idempotency-Key": "o-1"})
    assert Conversion.objects.filter(campaign=shop, order_id="o-1").count() == 1

    # Nothing reached the broker; both webhooks wait in the outbox.
    assert private_redis.client().llen("celery") == 0
    pending = WebhookDelivery.objects.filter(status="pending")
    assert sorted(pending.values_list("campaign__slug", flat=True)) == ["shop", "signup"]
    assert receiver.received == []

    # The clients were not answered, so they send again: one join, one event, one effect.
    again = Visitor(server.url).join("signup", "bob@example.com", name="Bob", ref=alice.code)
    assert again.status_code == 303 and again.headers["Location"] == f"/p/{bob.token}/"
    replay = api.post("/api/v1/events/", json=event, headers={"Idempotency-Key": "o-1"})
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert Participant.objects.filter(campaign=signup).count() == 2
    assert Reward.objects.filter(campaign=shop, source="commission").count() == 1
    assert WebhookDelivery.objects.count() == 2

    # The periodic sweep (its task body, as beat would run it) finds and sends both.
    settings.FISSION = {**settings.FISSION, "WEBHOOK_SWEEP_GRACE_SECONDS": 0}
    webhooks_send_due()
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"delivered"}
    sent = receiver.counts()
    assert sorted(sent.values()) == [1, 1]
    assert set(sent) == set(WebhookDelivery.objects.values_list("event_id", flat=True))
    data = [d.payload["data"] for d in WebhookDelivery.objects.all()]
    assert {(d["campaign"], d["source"]) for d in data} == {
        ("signup", "referee"),
        ("shop", "commission"),
    }
