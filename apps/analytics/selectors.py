"""Reads: the K-factor report of DESIGN.md ("K-factor: the definitions"), in SQL.

Every figure is an aggregate the database computes over the campaign's rows (counts,
GROUP BY depth and day, a join from referee to referrer, a median); no participant is
ever loaded into Python. Counted live, the report costs a few scans of the campaign's
index range: one grouped pass for the counts, generations and cohort sizes (`joins`),
the distinct visitors, and two joins from referee to referrer (the cohorts' referees,
the median). On PostgreSQL the append-only part of that is rolled up every minute
(apps.analytics.rollup): the report reads the tallies and counts live only the rows
above their watermarks (`marks`), plus who qualified, which changes after joining. The
ORM expressions used here run on PostgreSQL and SQLite alike; the median is the one or
two middle values in order, read by OFFSET (the same answer as `percentile_cont`,
tested). The breakdowns (the joins' pass, generations, cohorts, the cycle time) are in
apps.analytics.breakdowns; this module puts them together with the visitors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Sum
from django.utils import timezone

from apps.campaigns.models import Campaign
from apps.common.names import leaderboard_name
from apps.referrals.models import Click, Participant
from apps.trust.models import ClickRetention

from . import rollup
from .breakdowns import (
    RATIO_DIGITS,
    Cohort,
    Generation,
    cohorts,
    cycle_time_hours,
    generations,
    joined,
    joins,
    ratio,
)
from .models import DailySnapshot, VisitorSeen, VisitorTally
from .projection import amplification as amplification_of
from .ranges import in_range
from .rollup import LIVE, Marks


@dataclass(frozen=True)
class KReport:
    """The Stats JSON of DESIGN.md; `as_dict()` gives it with exactly the contract's keys."""

    participants: int
    referred: int
    seeds: int
    visitors: int
    i: float
    c: float
    k: float
    k_qualified: float
    generations: list[Generation] = field(default_factory=list)
    cohorts: list[Cohort] = field(default_factory=list)
    cycle_time_hours: float | None = None
    amplification: float | None = None
    # K counting only referees who qualified and are not flagged or blocked: what tiers
    # count. Beside the contract's fields; None in snapshots stored before it existed.
    k_quality: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "participants": self.participants,
            "referred": self.referred,
            "seeds": self.seeds,
            "visitors": self.visitors,
            "i": self.i,
            "c": self.c,
            "k": self.k,
            "k_qualified": self.k_qualified,
            "k_quality": self.k_quality,
            "generations": [
                {"generation": g.generation, "size": g.size, "k": g.k} for g in self.generations
            ],
            "cohorts": [
                {
                    "date": c.date.isoformat(),
                    "size": c.size,
                    "referred": c.referred,
                    "k": c.k,
                    "mature": c.mature,
                }
                for c in self.cohorts
            ],
            "cycle_time_hours": self.cycle_time_hours,
            "amplification": self.amplification,
        }


@dataclass(frozen=True)
class Figures:
    """N, R and V over a period, with the ratios they make."""

    participants: int
    referred: int
    visitors: int

    @property
    def i(self) -> float:
        return ratio(self.visitors, self.participants)

    @property
    def c(self) -> float:
        return ratio(self.referred, self.visitors)

    @property
    def k(self) -> float:
        return ratio(self.referred, self.participants)


def visits(campaign: Campaign, date_from: date | None, date_to: date | None) -> QuerySet[Any]:
    """Clicks that count as visits: not bots, with a visitor cookie (a click without one
    cannot be told apart from the next, so it is not a visitor we can count)."""
    queryset = (
        Click.objects.filter(campaign_id=campaign.pk, is_bot=False)
        .exclude(visitor_id="")
        .order_by()
    )
    return in_range(queryset, "created_at", date_from, date_to)


def figures(campaign: Campaign, date_from: date | None, date_to: date | None) -> Figures:
    """N, R and V for joins (and visits) in the range: the 7-day K of the alerts."""
    counts = joined(campaign, date_from, date_to).aggregate(
        n=Count("id"), r=Count("id", filter=Q(referrer_id__isnull=False))
    )
    return Figures(
        participants=counts["n"],
        referred=counts["r"],
        visitors=visitor_count(campaign, date_from, date_to),
    )


def frozen_through(campaign_id: int) -> date | None:
    """The last local day whose clicks were rolled up into the daily snapshots for good
    (and may be deleted: apps.trust.retention); None while every click is kept."""
    return (
        ClickRetention.objects.filter(campaign_id=campaign_id)
        .values_list("frozen_through", flat=True)
        .first()
    )


def visitor_count(
    campaign: Campaign, date_from: date | None, date_to: date | None, *, marks: Marks = LIVE
) -> int:
    """Distinct visitors in the range. Days whose clicks are past their retention count
    from their daily snapshots: the sum of each day's distinct visitors, so a visitor
    who came on several such days counts once a day (the clicks that would tell are
    gone). All of a campaign's visitors, with the clicks rolled up (`marks`), are the
    visitors seen plus the new ones among the clicks since."""
    frozen = frozen_through(campaign.pk)
    if frozen is None and date_from is None and date_to is None and marks.clicks:
        return _seen_visitors(campaign, marks.clicks)
    if frozen is None or (date_from is not None and date_from > frozen):
        return _distinct_visitors(campaign, date_from, date_to)
    stored = DailySnapshot.objects.filter(
        campaign_id=campaign.pk, date__lte=frozen if date_to is None else min(frozen, date_to)
    )
    if date_from is not None:
        stored = stored.filter(date__gte=date_from)
    total = stored.aggregate(v=Sum("visitors"))["v"] or 0
    if date_to is None or date_to > frozen:
        total += _distinct_visitors(campaign, frozen + timedelta(days=1), date_to)
    return int(total)


def _distinct_visitors(campaign: Campaign, date_from: date | None, date_to: date | None) -> int:
    # COUNT(*) over SELECT DISTINCT, not COUNT(DISTINCT ...): PostgreSQL hashes the former
    # and sorts the latter, and on millions of clicks the hash is about twice as fast.
    return visits(campaign, date_from, date_to).values("visitor_id").distinct().count()


def _seen_visitors(campaign: Campaign, watermark: int) -> int:
    seen = VisitorTally.objects.filter(campaign_id=campaign.pk).values_list("visitors", flat=True)
    new = (
        visits(campaign, None, None)
        .filter(id__gt=watermark)
        .exclude(
            Exists(
                VisitorSeen.objects.filter(
                    campaign_id=campaign.pk, visitor_id=OuterRef("visitor_id")
                )
            )
        )
        .values("visitor_id")
        .distinct()
        .count()
    )
    return (seen.first() or 0) + new


def distinct_counts(queryset: QuerySet[Any], group: str, field: str) -> dict[Any, int]:
    """COUNT(DISTINCT `field`) per `group` (a model field) as COUNT(*) over SELECT
    DISTINCT group, field: the same answer, and PostgreSQL hashes the pairs rather than
    sorting each group, about twice as fast on millions of clicks."""
    sql, params = queryset.values(group, field).distinct().order_by().query.sql_with_params()
    column = connection.ops.quote_name(group)
    with connection.cursor() as cursor:
        # Both names are model fields chosen by the caller, never input; params stay params.
        cursor.execute(
            f"SELECT {column}, COUNT(*) FROM ({sql}) AS pairs GROUP BY {column}",  # noqa: S608
            params,
        )
        return dict(cursor.fetchall())


@contextmanager
def report_transaction() -> Iterator[None]:
    """One transaction for a report's queries; on PostgreSQL it may use more memory.

    The visitor count hashes every distinct visitor id and the median sorts every gap:
    with the default 4 MB these spill to disk at a few hundred thousand rows and run two
    to three times slower. SET LOCAL (set_config(..., true)) ends with the transaction,
    so a pooled connection goes back to the server default.
    """
    work_mem = settings.FISSION["REPORT_WORK_MEM"]
    with transaction.atomic():
        if connection.vendor == "postgresql" and work_mem:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('work_mem', %s, true)", [work_mem])
        yield


def kfactor_report(
    campaign: Campaign,
    date_from: date | None = None,
    date_to: date | None = None,
    *,
    today: date | None = None,
) -> KReport:
    """The K-factor report for joins from `date_from` to `date_to` (local days, both
    included; None for open ends). Visitors are the visits in the same days."""
    for _attempt in range(REPORT_ATTEMPTS):
        with report_transaction():
            marks = rollup.watermarks()
            report = _report(campaign, date_from, date_to, today=today, marks=marks)
            if rollup.watermarks() == marks:
                return report
    # The roll-up kept committing while we read: count everything live.
    with report_transaction():
        return _report(campaign, date_from, date_to, today=today, marks=LIVE)


# A report reads the tallies and the rows above the watermarks in several statements; a
# roll-up committing in between (once a minute) would count some rows twice, so the
# report is read again.
REPORT_ATTEMPTS = 3


def _report(
    campaign: Campaign,
    date_from: date | None,
    date_to: date | None,
    *,
    today: date | None,
    marks: Marks,
) -> KReport:
    counts = joins(campaign, date_from, date_to, marks=marks)
    base = Figures(
        participants=counts.participants,
        referred=counts.referred,
        visitors=visitor_count(campaign, date_from, date_to, marks=marks),
    )
    return KReport(
        participants=base.participants,
        referred=base.referred,
        seeds=base.participants - base.referred,
        visitors=base.visitors,
        i=base.i,
        c=base.c,
        k=base.k,
        k_qualified=ratio(counts.qualified, base.participants),
        k_quality=ratio(counts.quality, base.participants),
        generations=generations(campaign, by_depth=counts.by_depth),
        cohorts=cohorts(
            campaign, date_from, date_to, today=today, sizes=counts.by_day, marks=marks
        ),
        cycle_time_hours=cycle_time_hours(
            campaign, date_from, date_to, count=counts.referred, marks=marks
        ),
        amplification=_amplification(base.referred, base.participants),
    )


def _amplification(referred: int, participants: int) -> float | None:
    if participants == 0:
        return 1.0  # nobody yet: no one is amplified, and K = 0
    # From the exact fraction, not the rounded K, so that 1/(1 − K) carries no rounding.
    value = amplification_of(referred / participants)
    return None if value is None else round(value, RATIO_DIGITS)


# How long after ending a campaign still gets its nightly snapshot: late referees of its
# last cohorts (the attribution window) and qualifications still change its report.
ENDED_SNAPSHOT_DAYS = 35


def campaigns_to_snapshot() -> list[int]:
    """Campaigns whose figures may still change: active, paused, or recently ended."""
    recent = timezone.now() - timedelta(days=ENDED_SNAPSHOT_DAYS)
    return list(
        Campaign.objects.exclude(status=Campaign.Status.DRAFT)
        .exclude(status=Campaign.Status.ENDED, updated_at__lt=recent)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def campaigns_to_check() -> list[int]:
    """Active campaigns with an alert setting, and any with an open alert (to resolve it
    when K recovers or the operator switches the alert off)."""
    return list(
        Campaign.objects.filter(
            Q(status=Campaign.Status.ACTIVE)
            & (Q(k_alert_threshold__isnull=False) | Q(k_alert_drop_fraction__isnull=False))
            | Q(k_alerts__resolved_at__isnull=True, k_alerts__isnull=False)
        )
        .distinct()
        .order_by("pk")
        .values_list("pk", flat=True)
    )


@dataclass
class LeaderboardRow:
    rank: int
    name: str
    friends: int


LEADERBOARD_SIZE = 20


def leaderboard(campaign: Campaign, *, size: int = LEADERBOARD_SIZE) -> list[LeaderboardRow]:
    """The participants who brought the most friends who count (qualified, not flagged:
    what tiers count), with names cut to a first name and an initial. Equal counts share
    a rank; the earlier referrer comes first."""
    rows = list(
        Participant.objects.filter(
            campaign_id=campaign.pk,
            referrer_id__isnull=False,
            qualified_at__isnull=False,
            status=Participant.Status.ACTIVE,
        )
        .order_by()
        .values("referrer_id")
        .annotate(friends=Count("id"))
        .order_by("-friends", "referrer_id")[:size]
    )
    names = Participant.objects.only("name").in_bulk([r["referrer_id"] for r in rows])
    board: list[LeaderboardRow] = []
    for index, row in enumerate(rows):
        rank = board[-1].rank if board and board[-1].friends == row["friends"] else index + 1
        person = names.get(row["referrer_id"])
        board.append(
            LeaderboardRow(rank, leaderboard_name(person.name if person else ""), row["friends"])
        )
    return board
