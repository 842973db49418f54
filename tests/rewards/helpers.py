"""Posting events through the service, and reading the ledger back, for the reward tests."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from apps.api.models import ApiKey
from apps.referrals.models import Participant
from apps.rewards.models import LIVE_STATES, Reward
from apps.rewards.services import EventResult, conversion_ingest


def event(
    type_: str,
    participant: Participant,
    order_id: str = "",
    amount: str | None = None,
    *,
    currency: str = "CNY",
    occurred_at: datetime | None = None,
    key: str = "",
    api_key: ApiKey | None = None,
) -> EventResult:
    return conversion_ingest(
        type=type_,
        campaign_slug=participant.campaign.slug,
        participant_id=participant.pk,
        order_id=order_id,
        amount=Decimal(amount) if amount is not None else None,
        currency=currency if amount is not None else "",
        occurred_at=occurred_at,
        api_key=api_key,
        idempotency_key=key,
        request_hash=f"{type_}:{participant.pk}:{order_id}:{amount}" if key else "",
    )


def purchase(participant: Participant, order_id: str, amount: str, **kwargs: Any) -> EventResult:
    return event("purchase", participant, order_id, amount, **kwargs)


def refund(participant: Participant, order_id: str, amount: str, **kwargs: Any) -> EventResult:
    return event("refund", participant, order_id, amount, **kwargs)


def verify(participant: Participant, **kwargs: Any) -> EventResult:
    return event("signup_verified", participant, **kwargs)


def entries(participant: Participant, **filters: Any) -> list[tuple[Any, ...]]:
    """(source, level or tier threshold, amount, state) of each entry, oldest first."""
    return [
        (r.source, r.level or r.tier_threshold, f"{r.amount:.2f}", r.state)
        for r in Reward.objects.filter(participant=participant, **filters).order_by("id")
    ]


def owed(participant: Participant, currency: str = "CNY") -> Decimal:
    """What counts for the participant: owed or paid, net of reversals."""
    rewards = Reward.objects.filter(
        participant=participant, currency=currency, state__in=LIVE_STATES
    )
    return sum((r.amount for r in rewards), Decimal(0)).quantize(Decimal("0.01"))
