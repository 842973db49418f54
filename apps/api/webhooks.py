"""Outbound webhooks: record events as deliveries, send them signed, retry with backoff.

A delivery row is written in the same transaction as the change it reports (an outbox):
if the broker is down when that transaction commits, the periodic sweep sends it later.
Each try is an attempt row. Network errors and 5xx answers are retried with exponential
backoff up to WEBHOOK_MAX_ATTEMPTS; any other answer that is not 2xx (a 4xx says the
request itself is wrong, and sending it again will not help) fails the delivery at once.

A try counts from the moment a worker claims the delivery, so a try that never finishes
(the worker was killed, or the host's answer crashed it) still uses one of the tries:
a delivery that kills every worker that sends it stops after WEBHOOK_MAX_ATTEMPTS too.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.common.tasks import delay_each

from . import signatures
from .models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)

USER_AGENT = "Fission-Webhooks/1"
# What is kept of the host's answer; no more is read, however much it sends.
RESPONSE_KEPT = 500
# The mark of a try in progress, left on the delivery when a worker dies mid-try.
INTERRUPTED = "interrupted: the worker stopped before the answer was recorded"


@dataclass(frozen=True)
class Event:
    campaign_id: int
    type: str
    id: str  # stable: the webhook-id of every try
    data: dict[str, Any]
    timestamp: datetime


_clients: dict[tuple[int, float], httpx.Client] = {}


def http_client() -> httpx.Client:
    """The HTTP client deliveries use (tests replace it with one on a mock transport).

    One per process, kept: making one costs ~30 ms of TLS set-up, more than most
    deliveries, and a kept one reuses its connections to the host. Keyed by process id,
    so a forked worker never shares a parent's sockets.
    """
    timeout = float(settings.FISSION["WEBHOOK_TIMEOUT_SECONDS"])
    key = (os.getpid(), timeout)
    client = _clients.get(key)
    if client is None:
        client = _clients[key] = httpx.Client(
            timeout=timeout, follow_redirects=False, headers={"User-Agent": USER_AGENT}
        )
    return client


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
    endpoints = WebhookEndpoint.objects.filter(
        Q(campaign__isnull=True) | Q(campaign_id__in=campaign_ids), is_active=True
    ).order_by("-created_at")
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


# The deliveries of one request go in one message (a publish costs about half a request);
# more than this (a job's batch) go one per message, spread over the workers as before.
DELIVERIES_PER_MESSAGE = 20


def _enqueue(ids: Sequence[int]) -> None:
    """Queue a try for each delivery: a request's few in one message, a larger batch one
    message each. Runs after the commit: a broker that cannot be reached must not turn
    the request that made the deliveries into an error, since they are stored and the
    sweep sends them once the broker is back."""
    from .tasks import webhook_deliver

    calls = [ids] if len(ids) <= DELIVERIES_PER_MESSAGE else [[pk] for pk in ids]
    delay_each(webhook_deliver, calls, left_for="webhooks_send_due")


def backoff(attempt: int) -> timedelta:
    """Wait before try number `attempt + 1`: 30 s, 1 min, 2 min, … at most 6 hours."""
    base = settings.FISSION["WEBHOOK_RETRY_BASE_SECONDS"]
    return timedelta(seconds=min(base * 2 ** (attempt - 1), 6 * 3600))


def _lease() -> timedelta:
    """How long a claimed delivery stays with its worker before another may try it."""
    timeout = settings.FISSION["WEBHOOK_TIMEOUT_SECONDS"]
    lease = settings.FISSION.get("WEBHOOK_LEASE_SECONDS") or timeout + 60
    # Never shorter than the wait for an answer, or a slow host would get two tries at once.
    return timedelta(seconds=max(lease, timeout + 1))


def _exhausted() -> Q:
    """Deliveries whose tries are used up by tries that never finished."""
    return Q(last_error=INTERRUPTED, attempts__gte=settings.FISSION["WEBHOOK_MAX_ATTEMPTS"])


def _read_body(response: httpx.Response) -> str:
    """The start of the host's answer, without reading the rest into memory."""
    kept = b""
    for chunk in response.iter_bytes():
        kept += chunk
        if len(kept) >= RESPONSE_KEPT * 4:
            break
    return kept.decode("utf-8", errors="replace")[:RESPONSE_KEPT]


def webhook_attempt(*, delivery_id: int, now: datetime | None = None) -> WebhookAttempt | None:
    """Send a due delivery once; None when it is not due or another worker has it."""
    now = now or timezone.now()
    # The claim: whoever moves next_attempt_at first sends. It counts the try and marks it
    # in progress; a worker that dies after it leaves the delivery due again when the
    # lease ends, for the sweep to pick up, with one try fewer left.
    claimed = (
        WebhookDelivery.objects.filter(
            pk=delivery_id, status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now
        )
        .exclude(_exhausted())
        .update(next_attempt_at=now + _lease(), attempts=F("attempts") + 1, last_error=INTERRUPTED)
    )
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
        with http_client().stream("POST", endpoint.url, content=body, headers=headers) as response:
            status_code = response.status_code
            response_body = _read_body(response)
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:300]
    duration_ms = int((time.monotonic() - started) * 1000)

    number = delivery.attempts  # counted by the claim
    fields: dict[str, Any] = {}
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


def webhook_deliveries_due(
    *, now: datetime | None = None, limit: int = 1000, grace: timedelta = timedelta(0)
) -> list[int]:
    """Ids of deliveries due for a (first or next) try: what the sweep enqueues.

    A delivery never tried is left to the message queued for it when it was made until
    it has been due for `grace`: under a backlog that message is still waiting its turn,
    and queueing another would only add work. A retry has no message of its own: it is
    due at once. First, this gives up on deliveries whose last try never finished and
    that have no try left (a poison delivery that kills its worker): they end failed,
    for the admin.
    """
    now = now or timezone.now()
    due = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING).filter(
        Q(attempts=0, next_attempt_at__lte=now - grace)
        | Q(attempts__gt=0, next_attempt_at__lte=now)
    )
    due.filter(_exhausted()).update(status=WebhookDelivery.Status.FAILED)
    return list(due.order_by("next_attempt_at").values_list("pk", flat=True)[:limit])


def webhook_delivery_retry(*, delivery_ids: Sequence[int]) -> int:
    """An operator's 'send again now': failed or waiting deliveries become due."""
    ids = list(
        WebhookDelivery.objects.filter(pk__in=delivery_ids)
        .exclude(status=WebhookDelivery.Status.DELIVERED)
        .values_list("pk", flat=True)
    )
    # One more try, even for a delivery whose tries were used up by interrupted ones.
    WebhookDelivery.objects.filter(pk__in=ids).update(
        status=WebhookDelivery.Status.PENDING, next_attempt_at=timezone.now(), last_error=""
    )
    transaction.on_commit(lambda: _enqueue(ids))
    return len(ids)
