"""Poison work stops: a delivery to a host that always fails, a try that kills its worker
every time, a message a task cannot handle. Each ends after its bound, is shown in the
admin as failed, and is never queued again by itself."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import httpx
import pytest
from django.utils import timezone

from apps.api import webhooks
from apps.api.models import WebhookAttempt, WebhookDelivery
from config.celery import app
from tests.factories import CampaignFactory

from .conftest import needs_postgres, needs_redis_server
from .procs import django_env, publish_events, run_django, wait_for

MAX_ATTEMPTS = 3


@needs_postgres
@needs_redis_server
def test_a_delivery_to_a_host_that_always_fails_stops_after_its_tries(
    processes, private_redis, receiver, test_database_url
):
    receiver.status = 500
    campaign = CampaignFactory(slug="poison")
    webhooks.webhook_endpoint_create(url=receiver.url)
    env = django_env(
        DATABASE_URL=test_database_url,
        CELERY_BROKER_URL=private_redis.url(0),
        WEBHOOK_MAX_ATTEMPTS=MAX_ATTEMPTS,
        WEBHOOK_RETRY_BASE_SECONDS=0,  # no wait between tries: the bound, not the clock
        WEBHOOK_SWEEP_EVERY_SECONDS=1,
    )
    assert publish_events(env, campaign_id=campaign.pk, count=1, prefix="poison") == 1
    # And a message the task cannot handle at all (its argument is not an id).
    run_django(env, "from apps.api.tasks import webhook_deliver\nwebhook_deliver.delay('x')\n")
    processes.worker(env, beat=True)

    delivery = WebhookDelivery.objects.get()
    wait_for(
        lambda: WebhookDelivery.objects.filter(status="failed").exists(),
        timeout=30,
        what="the delivery to fail",
    )
    time.sleep(3)  # three more sweeps: nothing more is tried
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("failed", MAX_ATTEMPTS)
    assert len(receiver.received) == MAX_ATTEMPTS
    codes = list(delivery.attempt_log.values_list("number", "status_code"))
    assert codes == [(n, 500) for n in range(1, MAX_ATTEMPTS + 1)]
    broker = private_redis.client()
    assert broker.llen("celery") == 0, "a message is still queued"
    assert broker.hlen("unacked") == 0, "a message was left unacknowledged, to come back"
    log = processes.log("worker").read_text()
    assert "ValueError" in log  # the bad message failed once, and was not retried


class WorkerKilled(BaseException):
    """What a worker dying mid-send looks like from inside the try: nothing after it runs."""


def _killing_client() -> httpx.Client:
    def die(request: httpx.Request) -> httpx.Response:
        raise WorkerKilled

    return httpx.Client(transport=httpx.MockTransport(die))


@pytest.mark.django_db
def test_a_delivery_that_kills_every_worker_trying_it_ends_failed(
    settings, monkeypatch, admin_client
):
    settings.FISSION = {**settings.FISSION, "WEBHOOK_MAX_ATTEMPTS": MAX_ATTEMPTS}
    campaign = CampaignFactory(slug="poison")
    webhooks.webhook_endpoint_create(url="https://shop.example/hooks")
    [delivery_id] = webhooks.webhook_events_record(
        [_event(campaign.pk, "evt_poison", timezone.now())]
    )
    monkeypatch.setattr(webhooks, "http_client", _killing_client)

    now = timezone.now()
    for _ in range(MAX_ATTEMPTS):
        assert webhooks.webhook_deliveries_due(now=now) == [delivery_id]
        with pytest.raises(WorkerKilled):
            webhooks.webhook_attempt(delivery_id=delivery_id, now=now)
        # The lease keeps the dead worker's delivery from anyone else until it ends.
        assert webhooks.webhook_deliveries_due(now=now) == []
        now = WebhookDelivery.objects.get().next_attempt_at + timedelta(seconds=1)

    assert webhooks.webhook_deliveries_due(now=now) == []  # given up, not queued again
    assert webhooks.webhook_attempt(delivery_id=delivery_id, now=now) is None
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("failed", MAX_ATTEMPTS)
    assert delivery.last_error == webhooks.INTERRUPTED
    assert not WebhookAttempt.objects.exists()  # no try ever came back

    # The operator sees it among the failed deliveries, and can send it again by hand.
    page = admin_client.get("/admin/api/webhookdelivery/?status__exact=failed")
    assert page.status_code == 200 and "evt_poison" in page.content.decode()
    detail = admin_client.get(f"/admin/api/webhookdelivery/{delivery_id}/change/")
    assert "worker stopped before the answer was recorded" in detail.content.decode()
    monkeypatch.setattr(
        webhooks,
        "http_client",
        lambda: httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200))),
    )
    admin_client.post(
        "/admin/api/webhookdelivery/",
        {"action": "retry_now", "_selected_action": [delivery_id]},
    )
    webhooks.webhook_attempt(delivery_id=delivery_id)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", MAX_ATTEMPTS + 1)


@pytest.mark.django_db
def test_a_host_that_always_fails_is_shown_failed_in_the_admin(settings, monkeypatch, admin_client):
    settings.FISSION = {**settings.FISSION, "WEBHOOK_MAX_ATTEMPTS": MAX_ATTEMPTS}
    monkeypatch.setattr(
        webhooks,
        "http_client",
        lambda: httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(500))),
    )
    campaign = CampaignFactory(slug="poison")
    webhooks.webhook_endpoint_create(url="https://shop.example/hooks")
    [delivery_id] = webhooks.webhook_events_record(
        [_event(campaign.pk, "evt_always_500", timezone.now())]
    )
    now = timezone.now()
    for _ in range(MAX_ATTEMPTS + 2):
        for due in webhooks.webhook_deliveries_due(now=now):
            webhooks.webhook_attempt(delivery_id=due, now=now)
        now += timedelta(days=1)
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        "failed", MAX_ATTEMPTS, "HTTP 500",
    )  # fmt: skip
    page = admin_client.get("/admin/api/webhookdelivery/?status__exact=failed")
    assert "evt_always_500" in page.content.decode()
    detail = admin_client.get(f"/admin/api/webhookdelivery/{delivery_id}/change/").content
    assert detail.decode().count(">500<") >= MAX_ATTEMPTS  # each try, with its answer


def test_no_task_retries_itself_without_a_bound():
    """A task that retries itself does so a bounded number of times (most do not: the
    outbox and the periodic jobs are their retries), and one that fails is acknowledged:
    Celery never puts it back in the queue."""
    app.loader.import_default_modules()  # every app's tasks module, as a worker does
    ours = {name: task for name, task in app.tasks.items() if name.startswith("apps.")}
    assert "apps.api.tasks.webhook_deliver" in ours
    for name, task in ours.items():
        assert task.max_retries is not None and task.max_retries <= 10, name
    assert not getattr(ours["apps.api.tasks.webhook_deliver"], "autoretry_for", ())
    assert app.conf.task_acks_on_failure_or_timeout is True
    assert app.conf.task_time_limit and app.conf.task_soft_time_limit


def _event(campaign_id: int, event_id: str, at: datetime) -> webhooks.Event:
    return webhooks.Event(
        campaign_id=campaign_id, type="reward.granted", id=event_id, data={}, timestamp=at
    )
