"""Outbound webhooks: record events as deliveries, send them signed, retry with backoff.

A delivery row is written in the same transaction as the change it reports (an outbox):
if the broker is down when that transaction commits, the periodic sweep sends it later.
Each try is an attempt row. Network errors and 5xx answers are retried with exponential
backoff up to WEBHOOK_MAX_ATTEMPTS; any other answer that is not 2xx (a 4xx says the
request itself is wrong, and sending it again will not help) fails the delivery at once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from . import signatures
from .models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

USER_AGENT = "Fission-Webhooks/1"


@dataclass(frozen=True)
class Event:
    campaign_id: int
    type: str
    id: str  # stable: the webhook-id of every try
    data: dict[str, Any]
    timestamp: datetime


def http_client() -> httpx.Client:
    """The HTTP client deliveries use (tests replace it with one on a mock transport)."""
    return httpx.Client(
        timeout=settings.FISSION["WEBHOOK_TIMEOUT_SECONDS"],
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
    )


def webhook_endpoint_create(
    *, url: str, campaign_id: int | None = None, events: Sequence[str] = (), description: str = ""
) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(
        url=url,
        campaign_id=campaign_id,
        events=list(events),
        description=description,
        secret=signatures.new_secret(),
    )


def webhook_endpoint_rotate_secret(*, endpoint: WebhookEndpoint) -> str:
    """A new secret; the old one still signs (as a second signature) until
    `webhook_endpoint_finish_rotation`, so the host can switch without missing events."""
    endpoint.previous_secret = endpoint.secret
    endpoint.secret = signatures.new_secret()
    endpoint.save(update_fields=["secret", "previous_secret"])
    return endpoint.secret


def webhook_endpoint_finish_rotation(*, endpoint: WebhookEndpoint) -> None:
    endpoint.previous_secret = ""
    endpoint.save(update_fields=["previous_secret"])


def webhook_events_record(events: Sequence[Event]) -> list[int]:
    """One delivery per event and interested endpoint, sent once the caller's
    transaction commits. Returns the delivery ids."""
    if not events:
        return []
    campaign_ids = {e.campaign_id for e in events}
    endpoints = list(
        WebhookEndpoint.objects.filter(is_active=True).filter(
            Q(campaign__isnull=True) | Q(campaign_id__in=campaign_ids)
        )
    )
    deliveries = [
        WebhookDelivery(
            endpoint=endpoint,
            campaign_id=event.campaign_id,
            event_id=event.id,
            event_type=event.type,
            payload={
                "type": event.type,
                "timestamp": event.timestamp.isoformat(),
                "data": event.data,
            },
            next_attempt_at=event.timestamp,
        )
        for event in events
        for endpoint in endpoints
        if endpoint.wants(event.type) and endpoint.campaign_id in (None, event.campaign_id)
    ]
    if not deliveries:
        return []
    ids = [d.pk for d in WebhookDelivery.objects.bulk_create(deliveries)]
    transaction.on_commit(lambda: _enqueue(ids))
    return ids


def _enqueue(ids: Sequence[int]) -> None:
    from .tasks import webhook_deliver

    for delivery_id in ids:
        webhook_deliver.delay(delivery_id)


def backoff(attempt: int) -> timedelta:
    """Wait before try number `attempt + 1`: 30 s, 1 min, 2 min, … at most 6 hours."""
    base = settings.FISSION["WEBHOOK_RETRY_BASE_SECONDS"]
    return timedelta(seconds=min(base * 2 ** (attempt - 1), 6 * 3600))


def webhook_attempt(*, delivery_id: int, now: datetime | None = None) -> WebhookAttempt | None:
    """Send a due delivery once; None when it is not due or another worker has it."""
    now = now or timezone.now()
    lease = now + timedelta(seconds=settings.FISSION["WEBHOOK_TIMEOUT_SECONDS"] + 60)
    # The claim: whoever moves next_attempt_at first sends; a worker that dies after it
    # leaves the delivery due again when the lease ends, for the sweep to pick up.
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now
    ).update(next_attempt_at=lease)
    if not claimed:
        return None
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    endpoint = delivery.endpoint
    body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False).encode()
    sent_at = timezone.now()
    headers = {
        "content-type": "application/json",
        "webhook-id": delivery.event_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signatures.sign(
            [endpoint.secret, endpoint.previous_secret],
            msg_id=delivery.event_id,
            timestamp=sent_at,
            body=body,
        ),
    }
    status_code: int | None = None
    error = ""
    response_body = ""
    started = time.monotonic()
    try:
        with http_client() as client:
            response = client.post(endpoint.url, content=body, headers=headers)
        status_code = response.status_code
        response_body = response.text[:500]
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:300]
    duration_ms = int((time.monotonic() - started) * 1000)

    number = delivery.attempts + 1
    fields: dict[str, Any] = {"attempts": number}
    if status_code is not None and 200 <= status_code < 300:
        fields.update(status=WebhookDelivery.Status.DELIVERED, delivered_at=timezone.now())
        fields["last_error"] = ""
    elif status_code is not None and status_code < 500:
        fields.update(status=WebhookDelivery.Status.FAILED, last_error=f"HTTP {status_code}")
    else:
        fields["last_error"] = error or f"HTTP {status_code}"
        if number >= settings.FISSION["WEBHOOK_MAX_ATTEMPTS"]:
            fields["status"] = WebhookDelivery.Status.FAILED
        else:
            fields["next_attempt_at"] = timezone.now() + backoff(number)
    with transaction.atomic():
        attempt = WebhookAttempt.objects.create(
            delivery=delivery,
            number=number,
            status_code=status_code,
            error=error,
            response_body=response_body,
            duration_ms=duration_ms,
        )
        WebhookDelivery.objects.filter(pk=delivery.pk).update(**fields)
    return attempt


def webhook_deliveries_due(*, now: datetime | None = None, limit: int = 1000) -> list[int]:
    """Ids of deliveries due for a (first or next) try: what the sweep enqueues."""
    now = now or timezone.now()
    return list(
        WebhookDelivery.objects.filter(
            status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


def webhook_delivery_retry(*, delivery_ids: Sequence[int]) -> int:
    """An operator's 'send again now': failed or waiting deliveries become due."""
    ids = list(
        WebhookDelivery.objects.filter(pk__in=delivery_ids)
        .exclude(status=WebhookDelivery.Status.DELIVERED)
        .values_list("pk", flat=True)
    )
    WebhookDelivery.objects.filter(pk__in=ids).update(
        status=WebhookDelivery.Status.PENDING, next_attempt_at=timezone.now()
    )
    transaction.on_commit(lambda: _enqueue(ids))
    return len(ids)
