"""The finance report: one query, streamed, for the command, the admin and the job.

Rows come from a server-side cursor (`QuerySet.iterator`) in chunks, as plain tuples, so
memory stays flat however many there are; totals per currency and state are added up
from the same rows as they pass, so they always match what was written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from django.db.models import Count, QuerySet, Sum

from apps.analytics.ranges import in_range, report_range
from apps.campaigns.models import Campaign
from apps.common.errors import FissionError
from apps.common.money import format_amount
from apps.rewards.models import PayoutBatch, Reward, RewardState

# DESIGN.md, "Finance report columns, in this order".
COLUMNS = (
    "reward_id", "campaign", "participant_id", "external_id", "participant_name", "source",
    "level", "tier_threshold", "order_id", "amount", "currency", "state", "created_at",
    "approved_at", "paid_at", "payout_batch",
)  # fmt: skip
# The query's fields, one per column.
REPORT_FIELDS = (
    "id", "campaign__slug", "participant_id", "participant__external_id", "participant__name",
    "source", "level", "tier_threshold", "order_id", "amount", "currency", "state",
    "created_at", "approved_at", "paid_at", "payout_batch_id",
)  # fmt: skip
AMOUNT, CURRENCY, STATE = COLUMNS.index("amount"), COLUMNS.index("currency"), COLUMNS.index("state")
# Rows fetched per round trip of the server-side cursor.
CHUNK_SIZE = 2000
# Which timestamp --from and --to apply to.
DATE_FIELDS = ("created", "approved", "paid")

Row = tuple[Any, ...]
Progress = Callable[[int], object]


@dataclass(frozen=True)
class ReportFilters:
    campaign: Campaign | None = None
    date_from: date | None = None
    date_to: date | None = None
    state: str | None = None
    date_field: str = "created"
    batch: PayoutBatch | None = None

    def as_json(self) -> dict[str, Any]:
        """The filters as asked, for an ExportJob and the finance log (report_filters
        reads them back)."""
        return {
            "campaign": self.campaign.slug if self.campaign else None,
            "from": self.date_from.isoformat() if self.date_from else None,
            "to": self.date_to.isoformat() if self.date_to else None,
            "state": self.state,
            "date_field": self.date_field,
            "batch": self.batch.pk if self.batch else None,
        }

    def describe(self) -> str:
        """In words, for file names and messages."""
        parts = [self.campaign.slug if self.campaign else "all"]
        if self.batch:
            parts.append(f"batch-{self.batch.pk}")
        if self.state:
            parts.append(self.state)
        if self.date_from or self.date_to:
            parts.append(f"{self.date_field}-{self.date_from or ''}..{self.date_to or ''}")
        return "_".join(parts)


def report_filters(
    *,
    campaign: str | None = None,
    date_from: str | None = None,
    date_to: str | None = None,
    state: str | None = None,
    date_field: str | None = None,
    batch: str | int | None = None,
) -> ReportFilters:
    """Parse and check the filters (dates YYYY-MM-DD, local days, both included). Raises
    FissionError naming every bad field: the command's error, the form's errors."""
    problems: dict[str, str] = {}
    start = end = None
    try:
        start, end = report_range(date_from, date_to)
    except FissionError as exc:
        problems.update({name: errors[0] for name, errors in exc.fields.items()})
    found: Campaign | None = None
    if campaign:
        found = Campaign.objects.filter(slug=campaign).first()
        if found is None:
            problems["campaign"] = f"no campaign {campaign!r}"
    if state and state not in RewardState.values:
        problems["state"] = f"must be one of {', '.join(RewardState.values)}"
    date_field = date_field or "created"
    if date_field not in DATE_FIELDS:
        problems["date_field"] = f"must be one of {', '.join(DATE_FIELDS)}"
    payout_batch: PayoutBatch | None = None
    if batch not in (None, ""):
        if str(batch).isdigit():
            payout_batch = PayoutBatch.objects.filter(pk=int(batch)).first()
        if payout_batch is None:
            problems["batch"] = f"no payout batch {batch!r}"
    if problems:
        raise FissionError(
            "The report's filters are not valid: "
            + "; ".join(f"{name} {problem}" for name, problem in problems.items()),
            code="invalid_filters",
            fields=problems,
        )
    return ReportFilters(
        campaign=found,
        date_from=start,
        date_to=end,
        state=state or None,
        date_field=date_field,
        batch=payout_batch,
    )


def report_queryset(filters: ReportFilters) -> QuerySet[Reward]:
    """The report's rewards, oldest first (by id: the primary key's order is stable)."""
    rewards = Reward.objects.all()
    if filters.campaign is not None:
        rewards = rewards.filter(campaign=filters.campaign)
    if filters.state:
        rewards = rewards.filter(state=filters.state)
    if filters.batch is not None:
        rewards = rewards.filter(payout_batch=filters.batch)
    return in_range(rewards, f"{filters.date_field}_at", filters.date_from, filters.date_to)


def report_rows(filters: ReportFilters, *, progress: Progress | None = None) -> Iterator[Row]:
    """The rows, as tuples in COLUMNS order (amounts Decimal, times aware datetimes).
    `progress(n)` is told each time n more rows have been read."""
    rows = report_queryset(filters).order_by("id").values_list(*REPORT_FIELDS)
    done = 0
    for row in rows.iterator(chunk_size=CHUNK_SIZE):
        yield row
        done += 1
        if progress is not None and done == CHUNK_SIZE:
            progress(done)
            done = 0
    if progress is not None and done:
        progress(done)


def report_count(filters: ReportFilters) -> int:
    return report_queryset(filters).count()


class Totals:
    """Rows and amount per (currency, state), added up as rows pass."""

    def __init__(self) -> None:
        self.sums: dict[tuple[str, str], list[Any]] = {}
        self.rows = 0

    def add(self, row: Row) -> None:
        self.rows += 1
        key = (row[CURRENCY], row[STATE])
        entry = self.sums.get(key)
        if entry is None:
            self.sums[key] = [1, row[AMOUNT]]
        else:
            entry[0] += 1
            entry[1] += row[AMOUNT]

    @classmethod
    def of(cls, items: list[tuple[str, str, int, Decimal]]) -> Totals:
        """Totals from (currency, state, rows, amount) tuples, as report_totals gives."""
        totals = cls()
        for currency, state, rows, amount in items:
            totals.sums[(currency, state)] = [rows, amount]
            totals.rows += rows
        return totals

    def items(self) -> list[tuple[str, str, int, Decimal]]:
        """(currency, state, rows, amount), by currency then state."""
        return [(c, s, n, amount) for (c, s), (n, amount) in sorted(self.sums.items())]

    def as_json(self) -> list[dict[str, Any]]:
        return [
            {"currency": c, "state": s, "rows": n, "amount": format_amount(amount, c)}
            for c, s, n, amount in self.items()
        ]


def report_totals(filters: ReportFilters) -> list[tuple[str, str, int, Decimal]]:
    """The same totals from the database (for checks and the admin's summary)."""
    rows = (
        report_queryset(filters)
        .values("currency", "state")
        .annotate(n=Count("id"), amount=Sum("amount"))
        .order_by("currency", "state")
    )
    return [(r["currency"], r["state"], r["n"], r["amount"]) for r in rows]
