"""Outbound webhooks: one delivery per event, signed (Standard Webhooks), retried with
backoff on network errors and 5xx, never on 4xx; every try recorded."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from apps.api import webhooks
from apps.api.models import WebhookAttempt, WebhookDelivery
from apps.api.tasks import webhooks_send_due
from apps.campaigns.models import Campaign
from apps.rewards.lifecycle import rewards_release_due
from apps.rewards.models import Reward
from tests.factories import CampaignFactory, RefereeRewardFactory, join

pytestmark = pytest.mark.django_db


class Host:
    """A host application behind a mock transport: answers from a script, keeps requests."""

    def __init__(self, *answers: int | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if self.answers else 200
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer, text="ok" if answer < 300 else "no")


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> Host:
    host = Host()
    monkeypatch.setattr(
        webhooks, "http_client", lambda: httpx.Client(transport=httpx.MockTransport(host))
    )
    return host


@pytest.fixture
def endpoint(db):
    return webhooks.webhook_endpoint_create(url="https://shop.example/hooks")


@pytest.fixture
def referral(campaign: Campaign, alice):
    RefereeRewardFactory(campaign=campaign, amount=Decimal("20.00"))
    return campaign


def test_a_granted_reward_is_delivered_signed(
    host, endpoint, referral, alice, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        bob = join(referral, "bob", referrer=alice)
    delivery = WebhookDelivery.objects.get()
    assert (delivery.event_type, delivery.status, delivery.attempts) == (
        "reward.granted", "delivered", 1,
    )  # fmt: skip
    request = host.requests[0]
    assert str(request.url) == "https://shop.example/hooks"
    payload = Webhook(endpoint.secret).verify(request.content, dict(request.headers))
    reward = Reward.objects.get(participant=bob)
    assert payload["type"] == "reward.granted"
    assert payload["data"]["id"] == reward.pk and payload["data"]["state"] == "held"
    assert request.headers["webhook-id"] == delivery.event_id
    assert WebhookAttempt.objects.get().status_code == 200


def test_approved_and_reversed_rewards_are_delivered_too(
    host, endpoint, referral, alice, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        join(referral, "bob", referrer=alice)
    with django_capture_on_commit_callbacks(execute=True):
        rewards_release_due(now=timezone.now() + timedelta(days=30))
    types = [json.loads(r.content)["type"] for r in host.requests]
    assert types == ["reward.granted", "reward.approved"]
    assert len({r.headers["webhook-id"] for r in host.requests}) == 2


def test_a_refund_sends_reward_reversed(host, endpoint, django_capture_on_commit_callbacks):
    from tests.rewards.helpers import purchase, refund

    campaign = CampaignFactory(slug="shop", qualifying_event="purchase")
    RefereeRewardFactory(campaign=campaign)
    alice = join(campaign, "alice")
    bob = join(campaign, "bob", referrer=alice)
    with django_capture_on_commit_callbacks(execute=True):
        purchase(bob, "o-1", "50.00")
    with django_capture_on_commit_callbacks(execute=True):
        refund(bob, "o-1", "50.00")
    types = [json.loads(r.content)["type"] for r in host.requests]
    assert types == ["reward.granted", "reward.reversed"]


def test_network_errors_and_5xx_are_retried_with_growing_waits(
    host, endpoint, referral, alice, django_capture_on_commit_callbacks
):
    host.answers = [httpx.ConnectError("refused"), 503, 200]
    with django_capture_on_commit_callbacks(execute=True):
        join(referral, "bob", referrer=alice)
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert "ConnectError" in delivery.last_error
    first_wait = delivery.next_attempt_at - timezone.now()
    assert timedelta(seconds=25) < first_wait <= timedelta(seconds=30)
    webhooks_send_due()  # not due yet: nothing sent
    assert len(host.requests) == 1
    webhooks.webhook_attempt(delivery_id=delivery.pk, now=delivery.next_attempt_at)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("pending", 2, "HTTP 503")
    assert delivery.next_attempt_at - timezone.now() > timedelta(seconds=55)
    webhooks.webhook_attempt(delivery_id=delivery.pk, now=delivery.next_attempt_at)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 3)
    attempts = list(delivery.attempt_log.values_list("number", "status_code"))
    assert attempts == [(1, None), (2, 503), (3, 200)]
    ids = {r.headers["webhook-id"] for r in host.requests}
    assert ids == {delivery.event_id}  # the same id on every try, for the host's dedup


def test_a_4xx_answer_is_not_retried(
    host, endpoint, referral, alice, django_capture_on_commit_callbacks
):
    host.answers = [400]
    with django_capture_on_commit_callbacks(execute=True):
        join(referral, "bob", referrer=alice)
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("failed", 1, "HTTP 400")
    webhooks.webhook_attempt(delivery_id=delivery.pk, now=timezone.now() + timedelta(days=1))
    assert len(host.requests) == 1


def test_a_delivery_gives_up_after_the_last_attempt(
    settings, host, endpoint, referral, alice, django_capture_on_commit_callbacks
):
    settings.FISSION = {**settings.FISSION, "WEBHOOK_MAX_ATTEMPTS": 2}
    host.answers = [500, 500, 500]
    with django_capture_on_commit_callbacks(execute=True):
        join(referral, "bob", referrer=alice)
    delivery = WebhookDelivery.objects.get()
    webhooks.webhook_attempt(delivery_id=delivery.pk, now=timezone.now() + timedelta(hours=1))
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("failed", 2)


def test_the_sweep_sends_what_is_due_and_a_claimed_delivery_is_sent_once(
    settings, host, endpoint, referral, alice
):
    settings.FISSION = {**settings.FISSION, "WEBHOOK_SWEEP_GRACE_SECONDS": 0}
    join(referral, "bob", referrer=alice)  # on_commit never ran: the message was "lost"
    delivery = WebhookDelivery.objects.get()
    assert delivery.attempts == 0
    webhooks_send_due()
    delivery.refresh_from_db()
    assert delivery.status == "delivered"
    assert webhooks.webhook_attempt(delivery_id=delivery.pk) is None
    assert len(host.requests) == 1


def test_endpoints_get_only_their_campaign_and_event_types(
    host, referral, alice, django_capture_on_commit_callbacks
):
    other = CampaignFactory(slug="other")
    webhooks.webhook_endpoint_create(url="https://a.example/", campaign_id=other.pk)
    webhooks.webhook_endpoint_create(url="https://b.example/", events=["reward.approved"])
    mine = webhooks.webhook_endpoint_create(url="https://c.example/", campaign_id=referral.pk)
    with django_capture_on_commit_callbacks(execute=True):
        join(referral, "bob", referrer=alice)
    assert list(WebhookDelivery.objects.values_list("endpoint_id", flat=True)) == [mine.pk]


def test_no_endpoint_no_delivery(host, referral, alice):
    join(referral, "bob", referrer=alice)
    assert not WebhookDelivery.objects.exists()


def test_while_rotating_webhooks_carry_both_signatures(
    host, endpoint, referral, alice, django_capture_on_commit_callbacks
):
    old = endpoint.secret
    new = webhooks.webhook_endpoint_rotate_secret(endpoint=endpoint)
    with django_capture_on_commit_callbacks(execute=True):
        join(referral, "bob", referrer=alice)
    request = host.requests[0]
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(request.content, dict(request.headers))


def test_an_operator_can_send_a_failed_delivery_again(
    host, endpoint, referral, alice, django_capture_on_commit_callbacks
):
    host.answers = [404, 200]
    with django_capture_on_commit_callbacks(execute=True):
        join(referral, "bob", referrer=alice)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "failed"
    with django_capture_on_commit_callbacks(execute=True):
        assert webhooks.webhook_delivery_retry(delivery_ids=[delivery.pk]) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
