"""Payout batches: what finance pays together, once; and the finance log.

Making a batch (`payout_batch_create`):

- **Selection.** Approved entries in one currency, not in any batch, with a positive
  amount: those of a campaign (or all), approved on local days `approved_from` to
  `approved_to` (both optional); or the entries finance ticked (`reward_ids`), which must
  all be approved, unbatched and in the currency, else the batch is refused with the
  reason for each.
- **Netting.** A selected participant's negative approved entries join the batch:
  reversals of rewards already paid (owed back) and corrections of rewards in this batch.
  A correction still travelling with an unpaid entry that is not in this batch stays with
  it. So what the batch pays a participant is their entries' sum.
- **Carry forward.** A participant whose entries would sum below zero (owed back exceeds
  what is due) is left out of the batch entirely: nobody is paid while they owe us, and
  their entries stay approved, to be netted in a later batch when new rewards cover them.
  A participant whose entries sum to exactly zero is in the batch and settled with no
  transfer.

A batched entry is committed (Reward.is_committed): a refund arriving before the batch is
marked paid corrects it with a new negative entry, owed back, as if it were paid already.
Marking paid (`payout_batch_mark_paid`) moves every entry of the batch to paid with the
reference, in one transaction, once: marking a paid batch again changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from apps.analytics.ranges import day_start
from apps.campaigns.models import Campaign
from apps.common.errors import Conflict, FissionError, NotFound
from apps.common.money import format_amount, is_currency
from apps.referrals.models import Participant

from .lifecycle import rewards_mark_paid
from .models import FinanceAction, FinanceLog, PayoutBatch, PayoutStatus, Reward, RewardState

ZERO = Decimal(0)
# Ids per IN list: well under SQLite's limit on query parameters.
CHUNK = 900
# Problems named one by one when a selection is refused; the rest are counted.
SHOWN_PROBLEMS = 10


@dataclass(frozen=True)
class BatchResult:
    batch: PayoutBatch
    # Participants left out because they owe back more than they are due: (id, net).
    carried_forward: list[tuple[int, Decimal]] = field(default_factory=list)


@dataclass(frozen=True)
class Payee:
    participant_id: int
    external_id: str
    name: str
    currency: str
    amount: Decimal
    lines: int

    @property
    def amount_text(self) -> str:
        return format_amount(self.amount, self.currency)


def finance_log(
    *, action: str, actor: str, batch: PayoutBatch | None = None, **details: Any
) -> FinanceLog:
    """Record what finance did (append-only). `details` must be JSON: dates, amounts and
    other values are stored as strings."""
    return FinanceLog.objects.create(
        action=action,
        actor=actor[:150],
        batch=batch,
        details={key: _json(value) for key, value in details.items()},
    )


def _json(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    return str(value)


def _wait_lock(name: str) -> None:
    """A transaction-scoped PostgreSQL advisory lock, waited for: batches are made one at
    a time. SQLite serialises writers anyway."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [name])


def _chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def _payable() -> QuerySet[Reward]:
    """Approved entries in no batch (served by the reward_payable index)."""
    return Reward.objects.filter(state=RewardState.APPROVED, payout_batch__isnull=True)


def _refuse_unpayable(rewards: list[Reward], reward_ids: Sequence[int], currency: str) -> None:
    problems: list[str] = []
    found = {r.pk for r in rewards}
    problems += [f"#{pk} does not exist" for pk in sorted(set(reward_ids) - found)]
    for reward in rewards:
        if reward.state != RewardState.APPROVED:
            problems.append(f"#{reward.pk} is {reward.state}, not approved")
        elif reward.payout_batch_id is not None:
            problems.append(f"#{reward.pk} is in payout batch #{reward.payout_batch_id} already")
        elif reward.currency != currency:
            problems.append(f"#{reward.pk} is in {reward.currency}, the batch in {currency}")
    if problems:
        shown = "; ".join(problems[:SHOWN_PROBLEMS])
        more = len(problems) - SHOWN_PROBLEMS
        raise Conflict(
            "Only approved rewards not in a batch, in one currency, can be paid: "
            + shown
            + (f"; and {more} more." if more > 0 else "."),
            code="not_payable",
        )


@transaction.atomic
def payout_batch_create(
    *,
    actor: str,
    currency: str = "",
    campaign: Campaign | None = None,
    approved_from: date | None = None,
    approved_to: date | None = None,
    reward_ids: Sequence[int] | None = None,
) -> BatchResult:
    """Put approved rewards into a new open batch (see the module docstring). Raises
    FissionError when the selection is invalid or nothing is left to pay."""
    _wait_lock("fission-payout-batch")
    if reward_ids is not None:
        chosen = list(Reward.objects.filter(pk__in=reward_ids))
        if not chosen:
            raise FissionError("Select the rewards to pay.", code="nothing_to_pay")
        currency = currency or chosen[0].currency
        _refuse_unpayable(chosen, reward_ids, currency)
        selected = Reward.objects.filter(pk__in=[r.pk for r in chosen if r.amount > 0])
    else:
        if not is_currency(currency):
            raise FissionError(
                "A batch is paid in one currency: give its ISO 4217 code, e.g. CNY.",
                fields={"currency": "must be a 3-letter ISO 4217 code"},
            )
        if approved_from and approved_to and approved_to < approved_from:
            raise FissionError(
                "The approval dates are not valid: to is before from.",
                code="invalid_range",
                fields={"approved_to": "must not be before approved_from"},
            )
        selected = _payable().filter(currency=currency, amount__gt=0)
        if campaign is not None:
            selected = selected.filter(campaign=campaign)
        if approved_from is not None:
            selected = selected.filter(approved_at__gte=day_start(approved_from))
        if approved_to is not None:
            selected = selected.filter(approved_at__lt=day_start(approved_to + timedelta(days=1)))

    # The ledger locks the participants an event changes (locks.lock_tree); taking the
    # same locks, in the same ascending order, means no refund changes these entries while
    # the batch is decided.
    locked = set(
        Participant.objects.select_for_update(no_key=True)
        .filter(pk__in=selected.values("participant_id"))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    lines: dict[int, Decimal] = {}
    owner: dict[int, int] = {}
    for pk, participant_id, amount in selected.values_list("pk", "participant_id", "amount"):
        if participant_id in locked:
            lines[pk], owner[pk] = amount, participant_id
    _net_owed_back(lines, owner, currency)

    nets: dict[int, Decimal] = defaultdict(Decimal)
    for pk, amount in lines.items():
        nets[owner[pk]] += amount
    carried = sorted((p, net) for p, net in nets.items() if net < ZERO)
    payees = {p for p, net in nets.items() if net >= ZERO}
    ids = sorted(pk for pk in lines if owner[pk] in payees)
    if not ids:
        if carried:
            raise FissionError(
                f"Nothing to pay: the {len(carried)} participants with approved rewards in "
                f"{currency} owe back more than they are due; it is carried forward.",
                code="nothing_to_pay",
            )
        raise FissionError(
            f"No approved rewards in {currency} match: nothing to pay.", code="nothing_to_pay"
        )

    total = sum((nets[p] for p in payees), ZERO)
    batch = PayoutBatch.objects.create(
        currency=currency,
        campaign=campaign,
        approved_from=approved_from,
        approved_to=approved_to,
        total=total,
        line_count=len(ids),
        payee_count=len(payees),
        created_by=actor[:150],
    )
    claimed = 0
    for chunk in _chunks(ids):
        claimed += _payable().filter(pk__in=chunk).update(payout_batch=batch)
    if claimed != len(ids):
        # Something else (an operator's rejection) moved an entry meanwhile.
        raise Conflict("Rewards changed while the batch was being made; try again.")
    finance_log(
        action=FinanceAction.BATCH_CREATED,
        actor=actor,
        batch=batch,
        currency=currency,
        campaign=campaign.slug if campaign else None,
        approved_from=approved_from,
        approved_to=approved_to,
        chosen=len(reward_ids) if reward_ids is not None else None,
        lines=len(ids),
        payees=len(payees),
        total=format_amount(total, currency),
        carried_forward=len(carried),
        carried_forward_amount=format_amount(sum((n for _p, n in carried), ZERO), currency),
    )
    return BatchResult(batch=batch, carried_forward=carried)


def _net_owed_back(lines: dict[int, Decimal], owner: dict[int, int], currency: str) -> None:
    """Add to `lines` the negative approved entries of the selected participants that net
    in this batch: each unless it travels with an unpaid positive entry of its cause that
    is not in this batch (then it goes where that entry goes)."""
    participants = sorted(set(owner.values()))
    negatives: list[tuple[int, int, Decimal, int]] = []
    for chunk in _chunks(participants):
        negatives += (
            _payable()
            .filter(currency=currency, amount__lt=0, participant_id__in=chunk)
            .values_list("pk", "participant_id", "amount", "adjusts_id")
        )
    causes = sorted({cause for *_rest, cause in negatives})
    # Each cause's approved, unbatched positive entries: the grant or a reinstatement.
    unpaid: dict[int, set[int]] = defaultdict(set)
    for chunk in _chunks(causes):
        for pk, adjusts_id in (
            _payable()
            .filter(Q(pk__in=chunk) | Q(adjusts_id__in=chunk), amount__gt=0)
            .values_list("pk", "adjusts_id")
        ):
            unpaid[adjusts_id or pk].add(pk)
    for pk, participant_id, amount, cause in negatives:
        if unpaid[cause] <= lines.keys():
            lines[pk], owner[pk] = amount, participant_id


@transaction.atomic
def payout_batch_mark_paid(
    *, batch_id: int, reference: str, actor: str
) -> tuple[PayoutBatch, bool]:
    """Finance paid the batch: every entry in it becomes paid, with `reference`. Returns
    the batch and whether anything changed: a batch paid already is left as it was."""
    reference = reference.strip()
    if not reference:
        raise FissionError(
            "Give the payment's reference (the bank's or the provider's).",
            fields={"reference": "required"},
        )
    if len(reference) > 100:
        raise FissionError(
            "The reference is too long.", fields={"reference": "at most 100 characters"}
        )
    batch = PayoutBatch.objects.select_for_update().filter(pk=batch_id).first()
    if batch is None:
        raise NotFound(f"No payout batch #{batch_id}.", code="batch_not_found")
    if batch.status == PayoutStatus.PAID:
        return batch, False
    if batch.status == PayoutStatus.CANCELLED:
        raise Conflict(f"Payout batch #{batch.pk} was cancelled: it cannot be paid.")
    lines = list(batch.lines.order_by("pk").values_list("pk", "state"))
    stray = [f"#{pk} is {state}" for pk, state in lines if state != RewardState.APPROVED]
    if stray:  # the constraints should make this impossible; refuse rather than guess
        raise Conflict("Entries of this batch are no longer approved: " + "; ".join(stray))
    ids = [pk for pk, _state in lines]
    moved = sum(
        rewards_mark_paid(reward_ids=chunk, reference=reference, actor=actor)
        for chunk in _chunks(ids)
    )
    if moved != len(ids):
        raise Conflict("Entries of this batch changed meanwhile; nothing was marked paid.")
    batch.status = PayoutStatus.PAID
    batch.reference = reference
    batch.paid_at = timezone.now()
    batch.paid_by = actor[:150]
    batch.save(update_fields=["status", "reference", "paid_at", "paid_by"])
    finance_log(
        action=FinanceAction.BATCH_PAID,
        actor=actor,
        batch=batch,
        reference=reference,
        lines=len(ids),
        total=format_amount(batch.total, batch.currency),
        currency=batch.currency,
    )
    return batch, True


@transaction.atomic
def payout_batch_cancel(*, batch_id: int, actor: str) -> tuple[PayoutBatch, bool]:
    """Give up an open batch: its entries are released, to be paid in another. Returns
    the batch and whether anything changed. A paid batch cannot be cancelled."""
    batch = PayoutBatch.objects.select_for_update().filter(pk=batch_id).first()
    if batch is None:
        raise NotFound(f"No payout batch #{batch_id}.", code="batch_not_found")
    if batch.status == PayoutStatus.CANCELLED:
        return batch, False
    if batch.status == PayoutStatus.PAID:
        raise Conflict(f"Payout batch #{batch.pk} is paid: it cannot be cancelled.")
    released = batch.lines.filter(state=RewardState.APPROVED).update(payout_batch=None)
    batch.status = PayoutStatus.CANCELLED
    batch.cancelled_at = timezone.now()
    batch.cancelled_by = actor[:150]
    batch.save(update_fields=["status", "cancelled_at", "cancelled_by"])
    finance_log(action=FinanceAction.BATCH_CANCELLED, actor=actor, batch=batch, released=released)
    return batch, True


def payout_payees(batch: PayoutBatch) -> Iterator[Payee]:
    """What the batch pays each participant: their entries' sum, by participant id."""
    rows = (
        batch.lines.values("participant_id", "participant__external_id", "participant__name")
        .annotate(amount=Sum("amount"), lines=Count("id"))
        .order_by("participant_id")
    )
    for row in rows.iterator(chunk_size=2000):
        yield Payee(
            participant_id=row["participant_id"],
            external_id=row["participant__external_id"] or "",
            name=row["participant__name"],
            currency=batch.currency,
            amount=row["amount"],
            lines=row["lines"],
        )


__all__ = [
    "BatchResult",
    "Payee",
    "finance_log",
    "payout_batch_cancel",
    "payout_batch_create",
    "payout_batch_mark_paid",
    "payout_payees",
]
