"""Writes: moving rewards through their lifecycle, by hand (an operator approves or
rejects, finance marks paid) and by the clock (the release job approves held rewards
whose holding period is over). Each move goes through the ledger, which records it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from apps.common.errors import FissionError
from apps.referrals.models import Participant

from .ledger import Ledger
from .models import UNPAID_STATES, Reward, RewardReason, RewardState


def _with_corrections(rewards: Iterable[Reward]) -> list[Reward]:
    """The rewards and the unpaid corrections that travel with them, in the same state."""
    chosen = {r.pk: r for r in rewards}
    grant_ids = [r.pk for r in chosen.values() if r.adjusts_id is None]
    for entry in Reward.objects.select_related("campaign").filter(
        adjusts_id__in=grant_ids, state__in=UNPAID_STATES
    ):
        grant = chosen.get(entry.adjusts_id or 0)
        if grant is not None and entry.state == grant.state:
            chosen.setdefault(entry.pk, entry)
    return sorted(chosen.values(), key=lambda r: r.pk)


@transaction.atomic
def rewards_approve(*, reward_ids: Sequence[int], actor: str, reason: str = "") -> int:
    """An operator approves pending or held rewards. A pending one whose holding period
    is not over yet is held until it is; anything else is approved now."""
    ledger = Ledger(actor=actor)
    now = ledger.now
    rewards = Reward.objects.select_related("campaign").filter(
        pk__in=reward_ids, state__in=(RewardState.PENDING, RewardState.HELD)
    )
    moved = 0
    for reward in _with_corrections(rewards):
        if reward.state == RewardState.PENDING and reward.due_at and reward.due_at > now:
            moved += ledger.move(reward, RewardState.HELD, reason or "approved after review")
        else:
            moved += ledger.move(reward, RewardState.APPROVED, reason or "approved by hand")
    ledger.finish()
    return moved


@transaction.atomic
def rewards_reject(*, reward_ids: Sequence[int], actor: str, reason: str) -> int:
    """An operator rejects unpaid rewards, saying why. Rejected is final. Entries in a
    payout batch are left alone (the money is on its way; cancel the batch first)."""
    reason = reason.strip()
    if not reason:
        raise FissionError("Say why the rewards are rejected.", fields={"reason": "required"})
    ledger = Ledger(actor=actor)
    rewards = Reward.objects.select_related("campaign").filter(
        pk__in=reward_ids, state__in=UNPAID_STATES, payout_batch__isnull=True
    )
    moved = 0
    for reward in _with_corrections(rewards):
        if reward.payout_batch_id is not None:
            continue  # a correction already netted in a batch stays there
        moved += ledger.move(reward, RewardState.REJECTED, reason, reason=RewardReason.OPERATOR)
    ledger.finish()
    return moved


def rewards_release_due(
    *, now: datetime | None = None, actor: str = "release job", batch_size: int = 500
) -> int:
    """Approve held rewards whose holding period is over; returns how many.

    Safe to run twice at once: each batch is claimed with SKIP LOCKED, and each change is
    a conditional UPDATE from `held`, so every reward is approved once.
    """
    now = now or timezone.now()
    released = 0
    while True:
        with transaction.atomic():
            batch = list(
                Reward.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("campaign")
                .filter(state=RewardState.HELD, due_at__lte=now)
                # A flagged or blocked participant's rewards wait for a person's review
                # (the review queue lists them); cleared, the next run releases them.
                .filter(participant__status=Participant.Status.ACTIVE)
                .order_by("due_at", "id")[:batch_size]
            )
            ledger = Ledger(actor=actor)
            for reward in batch:
                released += ledger.move(reward, RewardState.APPROVED, "holding period over")
            ledger.finish()
        if len(batch) < batch_size:
            return released


@transaction.atomic
def rewards_mark_paid(*, reward_ids: Sequence[int], reference: str, actor: str) -> int:
    """Finance paid these approved rewards (negative entries were netted in the same
    payout). Paid is final: the row never changes again. The primitive of payout batches
    (apps/rewards/payouts.py), which decide what is paid together."""
    ledger = Ledger(actor=actor)
    rewards = Reward.objects.select_related("campaign").filter(
        pk__in=reward_ids, state=RewardState.APPROVED
    )
    moved = 0
    for reward in rewards.order_by("id"):
        moved += ledger.move(
            reward, RewardState.PAID, f"paid: {reference}", payout_reference=reference[:100]
        )
    ledger.finish()
    return moved
