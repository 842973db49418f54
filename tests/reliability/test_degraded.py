"""What each page does when a dependency fails inside the request, without real processes
(the fault tests beside this file do it with them): the database (503 with Retry-After),
the cache (pages work without it) and the broker (the outbox keeps what was not queued).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from django.db import OperationalError
from django.test import Client
from kombu.exceptions import OperationalError as BrokerError

from apps.api import webhooks
from apps.api.models import WebhookDelivery
from apps.api.tasks import webhooks_send_due
from apps.referrals.models import Participant
from tests.factories import CampaignFactory, CommissionLevelFactory, RefereeRewardFactory, join

from .procs import free_port

pytestmark = pytest.mark.django_db

DOWN = OperationalError("server closed the connection unexpectedly")


def _database_down(*args: Any, **kwargs: Any) -> Any:
    raise DOWN


@pytest.fixture
def spring(db):
    campaign = CampaignFactory(slug="spring")
    RefereeRewardFactory(campaign=campaign, amount=Decimal("20.00"))
    return campaign


def test_a_page_answers_503_with_retry_after_when_the_database_is_down(monkeypatch, spring):
    monkeypatch.setattr("apps.landing.views.campaign_get", _database_down)
    client = Client(raise_request_exception=False)
    for language, words in (("en", "Back in a moment"), ("zh-CN", "请稍候")):
        response = client.get("/c/spring/", HTTP_ACCEPT_LANGUAGE=language)
        assert response.status_code == 503
        assert response["Retry-After"] == "5"
        html = response.content.decode()
        assert words in html and "server closed" not in html and "Traceback" not in html
        assert "Content-Security-Policy" in response


def test_an_invite_link_answers_503_when_the_database_is_down(monkeypatch, spring):
    alice = join(spring, "alice")
    monkeypatch.setattr("apps.landing.views.invite_target", _database_down)
    response = Client(raise_request_exception=False).get(f"/r/{alice.code}")
    assert response.status_code == 503 and response["Retry-After"] == "5"


def test_the_api_answers_its_error_json_with_503_when_the_database_is_down(
    monkeypatch, api, spring
):
    monkeypatch.setattr("apps.rewards.services._campaign_get", _database_down)
    response = api.post(
        "/api/v1/events/",
        {"type": "signup_verified", "campaign": "spring", "external_id": "u-1"},
        format="json",
    )
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert response.json() == {
        "error": {
            "code": "unavailable",
            "message": "The service is briefly unavailable; retry in a few seconds.",
            "fields": {},
        }
    }


def test_a_database_failure_before_the_view_is_a_503_too(monkeypatch, spring):
    # A middleware's own query (here the CSRF check) fails outside any view.
    monkeypatch.setattr("django.middleware.csrf.CsrfViewMiddleware.process_view", _database_down)
    response = Client(raise_request_exception=False).post("/c/spring/join", {})
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert "Back in a moment" in response.content.decode()


def test_other_errors_are_still_a_500(monkeypatch, spring):
    monkeypatch.setattr("apps.landing.views.campaign_get", lambda slug: 1 / 0)
    response = Client(raise_request_exception=False).get("/c/spring/")
    assert response.status_code == 500 and "Retry-After" not in response


@pytest.fixture
def cache_down(settings):
    """The cache is a Redis that nobody answers at."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/1",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }


def test_with_the_cache_down_pages_work_and_joins_are_let_through(
    settings, cache_down, client, spring
):
    settings.FISSION = {**settings.FISSION, "JOIN_RATE_LIMIT": "1/m"}
    alice = join(spring, "alice")
    assert client.get(f"/r/{alice.code}").status_code == 302
    for n in range(3):  # over the limit of one: it cannot be counted, so it does not apply
        response = client.post("/c/spring/join", {"email": f"p{n}@example.com", "consent": "on"})
        assert response.status_code == 303
    for image in ("qr.png", "qr.svg", "poster.png"):
        assert client.get(f"/p/{alice.token}/{image}").status_code == 200
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["checks"]["cache"] == "down"


@pytest.mark.django_db(transaction=True)
def test_with_the_broker_down_a_join_succeeds_and_the_sweep_sends_its_webhook(
    settings, monkeypatch, spring
):
    sent: list[httpx.Request] = []

    def host(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    monkeypatch.setattr(
        webhooks, "http_client", lambda: httpx.Client(transport=httpx.MockTransport(host))
    )
    webhooks.webhook_endpoint_create(url="https://shop.example/hooks")
    alice = join(spring, "alice")

    def unreachable(*args: Any, **kwargs: Any) -> None:
        raise BrokerError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr("apps.api.tasks.webhook_deliver.delay", unreachable)
    client = Client()
    response = client.post(
        "/c/spring/join", {"email": "bob@example.com", "consent": "on", "ref": alice.code}
    )
    assert response.status_code == 303  # committed, and said so, though nothing was queued
    bob = Participant.objects.get(email="bob@example.com")
    assert response["Location"] == f"/p/{bob.token}/"
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "pending" and sent == []

    monkeypatch.undo()  # the broker is back
    monkeypatch.setattr(
        webhooks, "http_client", lambda: httpx.Client(transport=httpx.MockTransport(host))
    )
    settings.FISSION = {**settings.FISSION, "WEBHOOK_SWEEP_GRACE_SECONDS": 0}
    webhooks_send_due()
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and len(sent) == 1


def test_an_event_committed_without_its_message_is_sent_by_the_sweep(settings, monkeypatch, api):
    """In a test the on-commit hooks never run: exactly a process that died after the
    commit and before publishing."""
    sent: list[httpx.Request] = []
    monkeypatch.setattr(
        webhooks,
        "http_client",
        lambda: httpx.Client(
            transport=httpx.MockTransport(lambda r: sent.append(r) or httpx.Response(200))
        ),
    )
    shop = CampaignFactory(slug="shop", qualifying_event="purchase")
    CommissionLevelFactory(campaign=shop, level=1, percent=Decimal("10.00"))
    alice = join(shop, "alice")
    join(shop, "bob", referrer=alice, external_id="u-bob")
    webhooks.webhook_endpoint_create(url="https://shop.example/hooks")
    event = {
        "type": "purchase", "campaign": "shop", "external_id": "u-bob",
        "order_id": "o-1", "amount": "50.00", "currency": "CNY",
    }  # fmt: skip
    assert api.post("/api/v1/events/", event, format="json").status_code == 201
    assert WebhookDelivery.objects.get().status == "pending"
    webhooks_send_due()  # within the grace the queued message is trusted: nothing sent
    assert sent == []
    settings.FISSION = {**settings.FISSION, "WEBHOOK_SWEEP_GRACE_SECONDS": 0}
    webhooks_send_due()
    assert WebhookDelivery.objects.get().status == "delivered" and len(sent) == 1
