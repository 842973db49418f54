"""Writes: queueing messages when something happens, and sending them, once each.

The other apps' services call the `notify_*` functions inside their own transactions
(joining, qualifying, a reward's state changing). Each writes the message rows there,
so a rolled-back cause leaves no message, and enqueues their sending on commit. If the
broker is down at that moment, the periodic sweep (`messages_send_due`) sends them.

Sending claims the row (queued → sending) with a conditional UPDATE before the email
is handed over: a task delivered twice, or two workers at once, send it once. A worker
that dies after the claim leaves the row "sending": the email may or may not have gone,
and it is never sent again (at most once: a second copy is worse than a missing one).
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.campaigns.models import QualifyingEvent
from apps.common.tasks import delay_each
from apps.referrals.models import Participant
from apps.referrals.selectors import participant_progress
from apps.rewards.models import RewardSource, RewardState, RewardTransition

from .compose import compose_message, email, message_language
from .models import CampaignMessage, Message, MessageKind, MessageStatus
from .selectors import awaiting_verification

logger = logging.getLogger(__name__)

# A new message is sent by its on-commit task; the sweep takes it only if that task has
# not started by then (the broker was down when the cause committed).
SWEEP_GRACE = timedelta(minutes=2)
REWARD_SOURCES = (RewardSource.TIER, RewardSource.REFEREE)


@dataclass(frozen=True)
class Outgoing:
    """A message to queue: who, which kind, and its cause (unique per participant and kind)."""

    participant_id: int
    campaign_id: int
    kind: str
    cause: str
    friend_id: int | None = None
    reward_id: int | None = None
    tier_threshold: int | None = None


def messages_queue(items: Iterable[Outgoing]) -> int:
    """Record each message once and send the new ones when the caller's transaction
    commits. A cause already recorded is left as it is (the unique constraint drops the
    repeat: one INSERT for all, whatever repeats it holds). Returns how many were given."""
    now = timezone.now()
    rows = [
        Message(
            campaign_id=item.campaign_id,
            participant_id=item.participant_id,
            kind=item.kind,
            cause=item.cause,
            friend_id=item.friend_id,
            reward_id=item.reward_id,
            tier_threshold=item.tier_threshold,
            created_at=now,
            next_attempt_at=now + SWEEP_GRACE,
        )
        for item in items
    ]
    if not rows:
        return 0
    Message.objects.bulk_create(rows, ignore_conflicts=True)
    # Sent by key: a repeat's key names the message recorded first, which the claim in
    # message_send finds already taken, so enqueuing it again is harmless.
    keys = [(row.participant_id, row.kind, row.cause) for row in rows]
    transaction.on_commit(partial(_enqueue, keys))
    return len(rows)


def _enqueue(keys: Sequence[tuple[int, str, str]]) -> None:
    from .tasks import message_send

    delay_each(message_send, keys, left_for="messages_send_due")


# --- What happened: called by the referrals, landing, API and rewards code ------------


@transaction.atomic
def notify_joined(*, participant: Participant, verify_email: bool) -> int:
    """Someone new joined: the verification email (a web join in a campaign that
    qualifies on a verified sign-up: double opt-in) or else the welcome, and "a friend
    joined" to whoever invited them."""
    campaign = participant.campaign
    verify = (
        verify_email
        and campaign.qualifying_event == QualifyingEvent.VERIFIED_SIGNUP
        and participant.verified_at is None
    )
    items = [
        Outgoing(
            participant_id=participant.pk,
            campaign_id=participant.campaign_id,
            kind=MessageKind.VERIFY if verify else MessageKind.WELCOME,
            cause="join",
        )
    ]
    if participant.referrer_id is not None:
        items.append(
            Outgoing(
                participant_id=participant.referrer_id,
                campaign_id=participant.campaign_id,
                kind=MessageKind.FRIEND_JOINED,
                cause=f"friend:{participant.pk}",
                friend_id=participant.pk,
            )
        )
    return messages_queue(items)


def notify_verified(*, participant: Participant) -> int:
    """The address is confirmed: now the welcome."""
    return messages_queue(
        [
            Outgoing(
                participant_id=participant.pk,
                campaign_id=participant.campaign_id,
                kind=MessageKind.WELCOME,
                cause="join",
            )
        ]
    )


def notify_qualified(*, participant: Participant, referrer: Participant | None) -> int:
    """`participant` has just qualified (the rewards engine, inside the event's
    transaction, with both rows locked): tell the referrer, and that the next tier is one
    friend away when it now is."""
    if referrer is None or participant.status != Participant.Status.ACTIVE:
        return 0  # a flagged or blocked friend does not count toward tiers
    items: list[Outgoing] = []
    if participant.campaign.qualifying_event != QualifyingEvent.SIGNUP:
        # In a sign-up campaign joining is qualifying, and "a friend joined" said it.
        items.append(
            Outgoing(
                participant_id=referrer.pk,
                campaign_id=referrer.campaign_id,
                kind=MessageKind.FRIEND_QUALIFIED,
                cause=f"friend:{participant.pk}",
                friend_id=participant.pk,
            )
        )
    upcoming = participant_progress(referrer)["next_tier"]
    if isinstance(upcoming, dict) and upcoming["remaining"] == 1:
        threshold = int(upcoming["threshold"])
        items.append(
            Outgoing(
                participant_id=referrer.pk,
                campaign_id=referrer.campaign_id,
                kind=MessageKind.ONE_AWAY,
                cause=f"tier:{threshold}",
                tier_threshold=threshold,
            )
        )
    return messages_queue(items)


def notify_reward_transitions(*, transitions: Sequence[RewardTransition]) -> int:
    """Rewards moved (the reward ledger, as it writes its transitions): "reward
    unlocked" when a tier or referee reward is granted held or approved, or leaves review
    for its holding period; "reward approved" when one becomes approved later. With no
    holding period a grant is approved at once, and only "unlocked" is sent.
    Commissions are not announced: they come with every purchase."""
    items: list[Outgoing] = []
    for transition in transitions:
        reward = transition.reward
        if reward.adjusts_id is not None or reward.source not in REWARD_SOURCES:
            continue  # corrections travel with their grant; commissions stay quiet
        kind = ""
        if transition.to_state in (RewardState.HELD, RewardState.APPROVED) and (
            transition.from_state in ("", RewardState.PENDING)
        ):
            kind = MessageKind.REWARD_UNLOCKED
        if transition.to_state == RewardState.APPROVED and transition.from_state:
            kind = MessageKind.REWARD_APPROVED
        if kind:
            items.append(
                Outgoing(
                    participant_id=reward.participant_id,
                    campaign_id=reward.campaign_id,
                    kind=kind,
                    cause=f"reward:{reward.pk}",
                    reward_id=reward.pk,
                )
            )
    return messages_queue(items)


# --- Verification emails, again ---------------------------------------------------------


class ResendOutcome(StrEnum):
    SENT = "sent"
    NOT_NEEDED = "not_needed"  # verified already, or never asked to verify
    NO_CONSENT = "no_consent"
    TOO_MANY = "too_many"


@transaction.atomic
def verification_resend(*, participant: Participant) -> ResendOutcome:
    """Another verification email, with a fresh link. At most VERIFY_RESEND_MAX ever per
    participant (the request rate limits are in front of this; this holds without them)."""
    if not awaiting_verification(participant):
        return ResendOutcome.NOT_NEEDED
    if participant.consent_withdrawn_at is not None:
        return ResendOutcome.NO_CONSENT
    sent = Message.objects.filter(participant=participant, kind=MessageKind.VERIFY).count()
    if sent > settings.FISSION["VERIFY_RESEND_MAX"]:
        return ResendOutcome.TOO_MANY
    # Numbered causes: two presses at the same moment make the same number, and the
    # unique constraint keeps one of them.
    messages_queue(
        [
            Outgoing(
                participant_id=participant.pk,
                campaign_id=participant.campaign_id,
                kind=MessageKind.VERIFY,
                cause=f"resend:{sent}",
            )
        ]
    )
    return ResendOutcome.SENT


# --- Sending ----------------------------------------------------------------------------


def _why_not(message: Message) -> str:
    """Why `message` must not be sent now, or ''. Checked after the claim, on fresh rows."""
    participant = message.participant
    if participant.consent_withdrawn_at is not None:
        return "The participant asked for no more emails."
    if participant.status == Participant.Status.BLOCKED:
        return "The participant is blocked."
    if not participant.email:
        return "The participant has no email address."
    if (
        message.kind != MessageKind.VERIFY
        and CampaignMessage.objects.filter(
            campaign_id=message.campaign_id, kind=message.kind, enabled=False
        ).exists()
    ):
        return "This message is switched off in the campaign."
    if message.kind == MessageKind.VERIFY and participant.verified_at is not None:
        return "The address was verified already."
    if message.kind != MessageKind.VERIFY and awaiting_verification(participant):
        return "The address is not verified yet."
    return ""


def _transient(exc: Exception) -> bool:
    """Worth another try later: the server was unreachable, busy or said 4xx."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _msg in exc.recipients.values()]
        return bool(codes) and all(400 <= code < 500 for code in codes)
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    return isinstance(exc, smtplib.SMTPServerDisconnected | OSError)


def backoff(attempts: int) -> timedelta:
    """Wait before try `attempts + 1`: the base, doubled each time, at most 6 hours."""
    base = settings.FISSION["MESSAGE_RETRY_BASE_SECONDS"]
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), 6 * 3600))


def message_send(*, participant_id: int, kind: str, cause: str) -> str:
    """Send the queued message of (participant, kind, cause), once; returns its status
    afterwards ('' when there is none to send: sent, given up, or another worker has it)."""
    now = timezone.now()
    key = {"participant_id": participant_id, "kind": kind, "cause": cause}
    claimed = Message.objects.filter(**key, status=MessageStatus.QUEUED).update(
        status=MessageStatus.SENDING, attempts=F("attempts") + 1
    )
    if not claimed:
        return ""
    message = Message.objects.select_related("participant__campaign", "friend", "reward").get(**key)
    message_id = message.pk
    reason = _why_not(message)
    if reason:
        return _finish(message, MessageStatus.SKIPPED, error=reason)
    try:
        message.language = message_language(message.participant)
        composed = compose_message(message)
        mail = email(message, composed)
    except Exception as exc:  # a broken text must not leave the row "sending"
        logger.exception("could not compose message %s", message_id)
        return _finish(message, MessageStatus.FAILED, error=f"Could not compose: {exc}")
    message.subject = composed.subject[:200]
    try:
        mail.send()
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        if _transient(exc) and message.attempts < settings.FISSION["MESSAGE_MAX_ATTEMPTS"]:
            logger.warning(
                "message %s: try %s failed, will retry: %s", message_id, message.attempts, error
            )
            return _finish(
                message,
                MessageStatus.QUEUED,
                error=error,
                next_attempt_at=now + backoff(message.attempts),
            )
        logger.error("message %s failed: %s", message_id, error)
        return _finish(message, MessageStatus.FAILED, error=error)
    return _finish(message, MessageStatus.SENT, sent_at=timezone.now())


def _finish(
    message: Message,
    status: str,
    *,
    error: str = "",
    sent_at: datetime | None = None,
    next_attempt_at: datetime | None = None,
) -> str:
    fields = {
        "status": status,
        "error": error,
        "language": message.language,
        "subject": message.subject,
        "sent_at": sent_at,
    }
    if next_attempt_at is not None:
        fields["next_attempt_at"] = next_attempt_at
    Message.objects.filter(pk=message.pk, status=MessageStatus.SENDING).update(**fields)
    return status


@transaction.atomic
def messages_retry(*, message_ids: Sequence[int]) -> int:
    """An operator sends failed messages again (after fixing the mail settings, say)."""
    failed = Message.objects.select_for_update().filter(
        pk__in=message_ids, status=MessageStatus.FAILED
    )
    keys = list(failed.values_list("participant_id", "kind", "cause"))
    changed = failed.update(status=MessageStatus.QUEUED, attempts=0, next_attempt_at=timezone.now())
    transaction.on_commit(partial(_enqueue, keys))
    return changed
