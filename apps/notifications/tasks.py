"""Sending messages in the background. Thin: ids in, a service call."""

from __future__ import annotations

from celery import shared_task

from . import selectors, services


@shared_task(acks_late=True, ignore_result=True)
def message_send(participant_id: int, kind: str, cause: str) -> None:
    """Send one message, named by its unique key; harmless when it was sent already or
    another worker has it."""
    services.message_send(participant_id=participant_id, kind=kind, cause=cause)


@shared_task(acks_late=True, ignore_result=True)
def messages_send_due() -> None:
    """Periodic: enqueue queued messages that are due (retries, and any whose on-commit
    task was lost)."""
    for participant_id, kind, cause in selectors.messages_due():
        message_send.delay(participant_id, kind, cause)
