"""Background work of the API: sending webhooks. Thin: ids in, a service call."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings

from . import webhooks


@shared_task(acks_late=True, ignore_result=True)
def webhook_deliver(delivery_id: int, *more: int) -> None:
    """One try at each delivery, in turn; harmless for one that is not due or already
    taken. Several at once: the deliveries of one request are one message."""
    for pk in (delivery_id, *more):
        webhooks.webhook_attempt(delivery_id=pk)


@shared_task(acks_late=True, ignore_result=True)
def webhooks_send_due() -> None:
    """Periodic: enqueue deliveries whose (re)try is due, including any whose message
    was lost."""
    grace = timedelta(seconds=settings.FISSION["WEBHOOK_SWEEP_GRACE_SECONDS"])
    for delivery_id in webhooks.webhook_deliveries_due(grace=grace):
        webhook_deliver.delay(delivery_id)
