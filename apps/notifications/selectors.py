"""Reads of messages."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from apps.referrals.models import Participant

from .models import Message, MessageKind, MessageStatus


def awaiting_verification(participant: Participant) -> bool:
    """Whether the participant was sent a verification email and has not confirmed the
    address yet (double opt-in: nothing else is sent to them until then). One lookup on
    the (participant, kind, cause) index, and none once verified."""
    if participant.verified_at is not None:
        return False
    return Message.objects.filter(participant=participant, kind=MessageKind.VERIFY).exists()


def messages_due(*, now: datetime | None = None, limit: int = 1000) -> list[tuple[int, str, str]]:
    """Queued messages whose (re)try is due, oldest first: those whose on-commit task
    never came (the broker was down) and those waiting to retry. Served by the partial
    index on next_attempt_at. Each as its key, (participant id, kind, cause)."""
    now = now or timezone.now()
    return list(
        Message.objects.filter(status=MessageStatus.QUEUED, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("participant_id", "kind", "cause")[:limit]
    )
