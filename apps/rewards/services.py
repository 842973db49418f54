"""Writes: taking in conversion events and applying the reward rules to them (moving
rewards through their lifecycle by hand and by the clock is in lifecycle.py; finding and
locking what an event changes is in locks.py).

How "exactly once" holds for events, however often and concurrently they are delivered:

- Each event locks its participant and that participant's ancestors (ascending ids, so
  two events never wait on each other in a circle) before it looks for a duplicate. Two
  deliveries of one event therefore run one after the other: the second finds the first
  and answers its stored response. The same lock orders a purchase and its refund, and
  two referees crossing their referrer's threshold (the referrer is locked by both).
- Unique constraints on conversions (per order, per verification, per refund key), on
  Idempotency-Keys and on rewards (per tier, per referee, per commission level, per
  correction) are the last word when the locks are not enough (SQLite has none). An
  event that runs into one (the same order id posted for two participants at once) is
  rolled back and taken again from the start, when it finds the other one stored.
- An Idempotency-Key still in flight answers 409 at once (a PostgreSQL advisory lock
  tried, never waited for); a finished one answers its first response again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apps.api.models import ApiKey
from apps.campaigns.models import Campaign, QualifyingEvent
from apps.common.errors import Conflict, FissionError, NotFound, Unprocessable
from apps.referrals.models import Participant

from . import engine, locks, queue
from .ledger import Ledger
from .models import (
    Conversion,
    ConversionStatus,
    ConversionType,
    IdempotencyKey,
)
from .serializers import event_json, reward_json


@dataclass(frozen=True)
class EventResult:
    status: int
    body: dict[str, Any]
    replayed: bool = False


def _campaign_get(slug: str) -> Campaign:
    campaign = Campaign.objects.filter(slug=slug).first()
    if campaign is None:
        raise NotFound(f"No campaign {slug!r}.", code="campaign_not_found")
    return campaign


def _duplicate_of(
    campaign: Campaign,
    participant: Participant,
    type_: str,
    order_id: str,
    idempotency_key: str,
) -> tuple[Conversion | None, list[Conversion]]:
    """The stored event that this one repeats by its natural key, if any; and for a
    purchase, the refunds of its order waiting for it (read in the same query)."""
    found = Conversion.objects.filter(campaign=campaign)
    if type_ == ConversionType.PURCHASE:
        rows = list(
            found.filter(order_id=order_id)
            .filter(
                Q(type=ConversionType.PURCHASE)
                | Q(type=ConversionType.REFUND, status=ConversionStatus.WAITING)
            )
            .order_by("id")
        )
        stored = next((r for r in rows if r.type == ConversionType.PURCHASE), None)
        return stored, [r for r in rows if r.type == ConversionType.REFUND]
    if type_ == ConversionType.SIGNUP_VERIFIED:
        by_participant = found.filter(type=type_, participant=participant).first()
        if by_participant or not order_id:
            return by_participant, []
        return found.filter(type=type_, order_id=order_id).first(), []
    stored = found.filter(type=type_, order_id=order_id, idempotency_key=idempotency_key).first()
    return stored, []


def _check_same(
    stored: Conversion, participant: Participant, amount: Decimal | None, currency: str
) -> None:
    """A repeat must describe the same event: same person, same money."""
    if (
        stored.participant_id != participant.pk
        or (stored.type != ConversionType.SIGNUP_VERIFIED and stored.amount != amount)
        or (stored.type != ConversionType.SIGNUP_VERIFIED and stored.currency != currency)
    ):
        raise Unprocessable(
            f"A {stored.type} with this order id was received already, with other details.",
            code="duplicate_event_mismatch",
            fields={"order_id": "received already with another participant or amount"},
        )


def conversion_ingest(
    *,
    type: str,
    campaign_slug: str,
    participant_id: int | None = None,
    external_id: str | None = None,
    order_id: str = "",
    amount: Decimal | None = None,
    currency: str = "",
    occurred_at: datetime | None = None,
    api_key: ApiKey | None = None,
    idempotency_key: str = "",
    request_hash: str = "",
    actor: str = "",
    respond_async: bool = False,
) -> EventResult:
    """Take in one event from the host: store it once and apply the reward rules.

    Answers 201 for a new event, 202 for a refund kept until its purchase comes, and the
    stored first response again (200 without an Idempotency-Key, the first status with
    one) for a repeat. Raises Conflict (409) while the same Idempotency-Key is in flight,
    Unprocessable (422) for a key or an order id reused with another body. `actor` names
    the sender in the rewards' history when it is not an API key (a verification link).

    With `respond_async` a purchase is stored as queued and answered 202 at once; a
    worker applies it (queue.py). Other events are applied here whatever was asked.
    """
    occurred_at = occurred_at or timezone.now()
    respond_async = respond_async and type == ConversionType.PURCHASE
    # The event as both paths take it: the queue's single statement, and the full one.
    event: dict[str, Any] = {
        "campaign_slug": campaign_slug,
        "participant_id": participant_id,
        "external_id": external_id,
        "order_id": order_id,
        "amount": amount,
        "currency": currency,
        "occurred_at": occurred_at,
        "api_key": api_key,
    }
    if respond_async and not idempotency_key and amount is not None:
        taken = queue.take_in(**event)
        if taken is not None:
            return EventResult(taken[0], taken[1], replayed=taken[0] == 200)
    attempt = partial(
        _ingest,
        type=type,
        **event,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        actor=actor,
        respond_async=respond_async,
    )
    try:
        return attempt()
    except IntegrityError:
        # Another transaction stored the same event between our duplicate check and our
        # INSERT (the same order id for another participant: the same participant's
        # deliveries wait for each other's lock). It has committed, or the constraint
        # would still be waiting for it: from the start again, ours finds it.
        return attempt()


@transaction.atomic
def _ingest(
    *,
    type: str,
    campaign_slug: str,
    participant_id: int | None,
    external_id: str | None,
    order_id: str,
    amount: Decimal | None,
    currency: str,
    occurred_at: datetime,
    api_key: ApiKey | None,
    idempotency_key: str,
    request_hash: str,
    actor: str,
    respond_async: bool,
) -> EventResult:
    if idempotency_key:
        if api_key is None:
            raise FissionError("An Idempotency-Key needs an API key.")
        if not locks.try_lock(f"fission-idem:{api_key.pk}:{idempotency_key}"):
            raise Conflict(
                "A request with this Idempotency-Key is still being processed; retry later.",
                code="idempotency_key_in_flight",
            )
        seen = (
            IdempotencyKey.objects.select_related("conversion")
            .filter(api_key=api_key, key=idempotency_key)
            .first()
        )
        if seen is not None:
            if seen.request_hash != request_hash:
                raise Unprocessable(
                    "This Idempotency-Key was used with another request body.",
                    code="idempotency_key_reused",
                    fields={"Idempotency-Key": "used before with another body"},
                )
            first = seen.conversion
            body = queue.answer_json(first, qualified=first.participant.qualified_at is not None)
            return EventResult(seen.response_status, body, replayed=True)

    campaign = _campaign_get(campaign_slug)
    tree = locks.find_and_lock(campaign, participant_id, external_id)
    participant = tree.participant
    if type == ConversionType.PURCHASE and currency != campaign.currency:
        raise Unprocessable(
            f"Campaign {campaign.slug!r} counts purchases in {campaign.currency}.",
            code="currency_mismatch",
            fields={"currency": f"must be {campaign.currency}"},
        )
    refund_key = idempotency_key if type == ConversionType.REFUND else ""

    stored, waiting = _duplicate_of(campaign, participant, type, order_id, refund_key)
    if stored is not None:
        _check_same(stored, participant, amount, currency)
        conversion = stored
        stored.campaign = campaign
        body = queue.answer_json(stored, qualified=participant.qualified_at is not None)
        result = EventResult(200, body, replayed=True)
    else:
        if type == ConversionType.REFUND:
            purchase = engine.find_purchase(campaign, order_id)
            problem = purchase and engine.refund_mismatch(
                Conversion(participant=participant, currency=currency), purchase
            )
            if problem:
                raise Unprocessable(problem, code="refund_mismatch")
        conversion = Conversion(
            campaign=campaign,
            participant=participant,
            type=type,
            order_id=order_id,
            amount=amount,
            currency=currency,
            occurred_at=occurred_at,
            api_key=api_key,
            idempotency_key=refund_key,
        )
        if respond_async:
            # The worker prepares and applies it (queue.py).
            conversion.status = ConversionStatus.QUEUED
            conversion.response_status = 202
        else:
            engine.prepare(conversion, tree)
        # No savepoint: a duplicate stored meanwhile fails the whole attempt, and
        # conversion_ingest tries again.
        conversion.save(force_insert=True)
        if respond_async:
            transaction.on_commit(queue.wake_worker)
            qualified = participant.qualified_at is not None
            result = EventResult(202, queue.answer_json(conversion, qualified=qualified))
        else:
            actor = actor or (f"api:{api_key.name}" if api_key else "api")
            result = apply_event(conversion, tree, actor=actor, waiting_refunds=waiting)
    if idempotency_key and api_key is not None:
        IdempotencyKey.objects.create(
            api_key=api_key,
            key=idempotency_key,
            request_hash=request_hash,
            conversion=conversion,
            response_status=result.status,
        )
    return result


# What the rules may change on an event after it was stored.
_APPLIED_FIELDS = [
    "qualifying", "status", "note", "purchase", "applied_amount", "response_status", "response",
]  # fmt: skip


def apply_event(
    conversion: Conversion,
    tree: engine.Tree,
    *,
    actor: str,
    waiting_refunds: list[Conversion] | None = None,
) -> EventResult:
    ledger = Ledger(actor=actor, conversion=conversion)
    engine.apply(ledger, conversion, tree, waiting_refunds=waiting_refunds)
    ledger.finish()
    refund = conversion.type == ConversionType.REFUND
    if refund and conversion.status == ConversionStatus.APPLIED and not conversion.applied_amount:
        conversion.note = conversion.note or "Nothing was left to refund."
    conversion.response_status = 202 if conversion.status == ConversionStatus.WAITING else 201
    conversion.response = event_json(
        conversion,
        [reward_json(r) for r in sorted(ledger.touched.values(), key=lambda r: r.pk)],
        qualified=tree.participant.qualified_at is not None,
    )
    conversion.save(update_fields=_APPLIED_FIELDS)
    return EventResult(conversion.response_status, conversion.response)


@transaction.atomic
def conversion_record_signup(*, participant: Participant, actor: str = "join") -> None:
    """A join in a campaign that qualifies on sign-up: the joiner qualifies at once."""
    campaign = participant.campaign
    if campaign.qualifying_event != QualifyingEvent.SIGNUP:
        return
    tree = locks.lock_tree(campaign, participant)
    conversion = Conversion.objects.create(
        campaign=campaign,
        participant=tree.participant,
        type=ConversionType.SIGNUP,
        occurred_at=participant.joined_at,
    )
    apply_event(conversion, tree, actor=actor)
    participant.qualified_at = tree.participant.qualified_at


@transaction.atomic
def referral_standing_changed(
    *, participant: Participant, actor: str, reason: str
) -> Conversion | None:
    """The participant's status changed between counting (active) and not counting
    (flagged, blocked): a fraud rule fired after they joined, or a person reviewed them.

    Recorded as a `review` event (so every reward entry it corrects names its cause), it
    brings in line what depends on their status: their own reward and their referrer's
    tiers as a referee, their own tiers as a referrer. Returns the event, or None when
    nothing depends on it (a seed without referrals, a referee who never qualified).
    """
    campaign = participant.campaign
    has_referrals = participant.referrals.exists()
    tree = locks.lock_tree(campaign, participant)
    counts_as_referee = tree.referrer is not None and tree.participant.qualified_at is not None
    if not counts_as_referee and not has_referrals:
        return None
    conversion = Conversion.objects.create(
        campaign=campaign,
        participant=tree.participant,
        type=ConversionType.REVIEW,
        note=reason[:300],
    )
    apply_event(conversion, tree, actor=actor)
    return conversion


__all__ = [
    "EventResult",
    "apply_event",
    "conversion_ingest",
    "conversion_record_signup",
    "referral_standing_changed",
]
