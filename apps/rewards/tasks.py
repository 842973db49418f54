"""Periodic reward work. Thin: the services hold the rules."""

from __future__ import annotations

from celery import shared_task

from . import lifecycle, queue, retention


@shared_task(acks_late=True, ignore_result=True)
def release_held_rewards() -> None:
    """Periodic (CELERY_BEAT_SCHEDULE): approve rewards whose holding period is over.
    Running it twice at once approves each reward once."""
    lifecycle.rewards_release_due(actor="release job (beat)")


@shared_task(acks_late=True, ignore_result=True)
def apply_queued_events() -> None:
    """Apply the purchases taken in with `Prefer: respond-async` (queue.py): published by
    the requests that queue them, and periodic (CELERY_BEAT_SCHEDULE) for any whose
    publish was lost. A pass that applied as many as its limit publishes the next one (one
    that stopped on failures leaves them to the sweep, rather than try them in a loop)."""
    if queue.apply_queued() >= queue.PASS_LIMIT:
        apply_queued_events.delay()


@shared_task(acks_late=True, ignore_result=True)
def purge_old_idempotency_keys() -> None:
    """Periodic (nightly): delete idempotency keys older than IDEMPOTENCY_KEY_DAYS."""
    retention.idempotency_keys_purge()
