"""Reconciliation: where everything granted in a period stands now, per campaign and
currency, so that

    granted − reversed = paid + approved unpaid + held + pending − owed back

holds by construction. The scope is the reward entries *created* in the period (local
days, both included; a refund's negative entry is created when the refund arrives),
each counted by the state it is in now:

- granted: the positive entries, except rejected ones (never owed);
- reversed: what was taken back: positive entries reversed in place (before payment),
  plus the negative entries that count (pending, held, approved or paid);
- paid: the entries paid, net: a paid batch's owed-back lines reduce it, so it is the
  money that actually went out;
- held, pending: the entries in those states, net of the corrections travelling with them;
- approved unpaid, owed back: each participant's approved entries are summed; a positive
  sum is approved unpaid (what their next payout brings), a negative one is owed back
  (what they owe us beyond anything due, carried forward until new rewards cover it);
- outstanding: approved unpaid + held + pending − owed back, i.e. granted − reversed −
  paid: what is still to settle (negative when more is owed back than due);
- rejected (for information, outside the identity): positive entries rejected.

Proof: every entry that counts (pending, held, approved, paid) is in exactly one of
paid, held, pending or its participant's approved sum, and granted − reversed adds up
exactly those entries (a positive reversed entry is in both granted and reversed;
rejected entries and negative entries reversed with their anchor are in neither).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db.models import Q, QuerySet, Sum

from apps.analytics.ranges import in_range
from apps.campaigns.models import Campaign
from apps.common.money import format_amount
from apps.rewards.models import LIVE_STATES, Reward, RewardState

ZERO = Decimal(0)
COLUMNS = (
    "campaign", "currency", "granted", "reversed", "paid", "approved_unpaid", "held",
    "pending", "owed_back", "outstanding", "rejected",
)  # fmt: skip


@dataclass
class Line:
    campaign: str
    currency: str
    granted: Decimal = ZERO
    reversed: Decimal = ZERO
    paid: Decimal = ZERO
    approved_unpaid: Decimal = ZERO
    held: Decimal = ZERO
    pending: Decimal = ZERO
    owed_back: Decimal = ZERO
    rejected: Decimal = ZERO

    @property
    def outstanding(self) -> Decimal:
        return self.approved_unpaid + self.held + self.pending - self.owed_back

    @property
    def balanced(self) -> bool:
        """The identity; true by construction, shown so that anyone can check it."""
        return self.granted - self.reversed == self.paid + self.outstanding

    def values(self) -> list[str]:
        """The CSV row, amounts in the currency's minor unit."""
        amounts = [
            self.granted, self.reversed, self.paid, self.approved_unpaid, self.held,
            self.pending, self.owed_back, self.outstanding, self.rejected,
        ]  # fmt: skip
        return [self.campaign, self.currency] + [format_amount(a, self.currency) for a in amounts]


def _scope(campaign: Campaign | None, date_from: date | None, date_to: date | None) -> QuerySet:
    rewards = Reward.objects.all()
    if campaign is not None:
        rewards = rewards.filter(campaign=campaign)
    return in_range(rewards, "created_at", date_from, date_to)


def _sum(condition: Q) -> Sum:
    return Sum("amount", filter=condition, default=ZERO)


def reconciliation(
    *, campaign: Campaign | None = None, date_from: date | None = None, date_to: date | None = None
) -> list[Line]:
    """One line per campaign and currency with entries created in the period (see the
    module docstring), by campaign slug and currency. Two grouped queries."""
    rewards = _scope(campaign, date_from, date_to)
    positive, negative = Q(amount__gt=0), Q(amount__lt=0)
    lines: dict[tuple[str, str], Line] = {}
    grouped = (
        rewards.values("campaign__slug", "currency")
        .annotate(
            granted=_sum(positive & ~Q(state=RewardState.REJECTED)),
            reversed_in_place=_sum(positive & Q(state=RewardState.REVERSED)),
            negative_live=_sum(negative & Q(state__in=LIVE_STATES)),
            paid=_sum(Q(state=RewardState.PAID)),
            held=_sum(Q(state=RewardState.HELD)),
            pending=_sum(Q(state=RewardState.PENDING)),
            rejected=_sum(positive & Q(state=RewardState.REJECTED)),
        )
        .order_by()
    )
    for row in grouped:
        key = (row["campaign__slug"], row["currency"])
        lines[key] = Line(
            campaign=key[0],
            currency=key[1],
            granted=row["granted"],
            reversed=row["reversed_in_place"] - row["negative_live"],
            paid=row["paid"],
            held=row["held"],
            pending=row["pending"],
            rejected=row["rejected"],
        )
    for key, participant_net in _approved_by_participant(rewards):
        line = lines[key]
        if participant_net > ZERO:
            line.approved_unpaid += participant_net
        else:
            line.owed_back -= participant_net
    return [lines[key] for key in sorted(lines)]


def _approved_by_participant(
    rewards: QuerySet[Reward],
) -> Iterator[tuple[tuple[str, str], Decimal]]:
    """((campaign slug, currency), sum of the participant's approved entries) for each
    participant with approved entries in scope."""
    nets = (
        rewards.filter(state=RewardState.APPROVED)
        .values("campaign__slug", "currency", "participant_id")
        .annotate(net=Sum("amount"))
        .order_by()
    )
    for row in nets.iterator(chunk_size=5000):
        yield (row["campaign__slug"], row["currency"]), row["net"]


def totals_by_currency(lines: list[Line]) -> list[Line]:
    """All campaigns together, per currency (for the admin's last rows)."""
    totals: dict[str, Line] = defaultdict(lambda: Line(campaign="", currency=""))
    for line in lines:
        total = totals[line.currency]
        total.currency = line.currency
        for name in ("granted", "reversed", "paid", "approved_unpaid", "held", "pending",
                     "owed_back", "rejected"):  # fmt: skip
            setattr(total, name, getattr(total, name) + getattr(line, name))
    return [totals[c] for c in sorted(totals)]
