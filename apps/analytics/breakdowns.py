"""The K-factor report's breakdowns (DESIGN.md, "K-factor: the definitions"): the joins
of a range counted in one grouped pass (`joins`: participants, referees, who qualified,
by depth and by day), the generations and cohorts made from them, and the median cycle
time from a referrer's joining to a referee's. Each reads the roll-up's tallies below the
watermarks (`marks`) and counts live only the rows above them; apps.analytics.selectors
puts them together into the report."""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.db.models import Aggregate, Count, DurationField, ExpressionWrapper, F, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from apps.campaigns.models import Campaign
from apps.referrals.models import Participant

from .models import CohortTally, JoinTally, ReferralGap
from .ranges import in_range, site_tz
from .rollup import LIVE, Marks

RATIO_DIGITS = 6  # ratios in the JSON: enough for any campaign, short enough to read
# At most this many gaps of referees who joined since the last roll-up are merged in
# Python; more (a roll-up that has not run for a long while) are sorted by the database.
TAIL_IN_MEMORY = 10_000


class Median(Aggregate):
    """PostgreSQL's continuous median: the mean of the two middle values for an even
    count, exactly DESIGN.md's cycle-time rule. The report reads the median by OFFSET
    (`_median_by_offset`, parallel); tests check it against this."""

    function = "PERCENTILE_CONT"
    name = "Median"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = DurationField()


@dataclass(frozen=True)
class Generation:
    generation: int
    size: int
    k: float


@dataclass(frozen=True)
class Cohort:
    date: date
    size: int
    referred: int
    k: float
    mature: bool


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, rounded for the JSON; 0 when there is nothing to divide by
    (no participants yet, or no tracked visitors: the ratio is not measured)."""
    return round(numerator / denominator, RATIO_DIGITS) if denominator else 0.0


def joined(campaign: Campaign, date_from: date | None, date_to: date | None) -> QuerySet[Any]:
    """The campaign's participants who joined in the range; served by (campaign, joined_at)."""
    queryset = Participant.objects.filter(campaign_id=campaign.pk).order_by()
    return in_range(queryset, "joined_at", date_from, date_to)


@dataclass(frozen=True)
class Joins:
    """One grouped pass over the participants who joined in a range: counts by (depth,
    local day of joining), from which the totals, the generations and the cohort sizes
    are sums. The rows are at most depths × days, whatever the campaign's size."""

    participants: int
    referred: int
    qualified: int  # referees who qualified
    quality: int  # of those, the ones not flagged or blocked (what tiers count)
    by_depth: dict[int, int]
    by_day: dict[date, int]


def joins(
    campaign: Campaign,
    date_from: date | None,
    date_to: date | None,
    *,
    marks: Marks = LIVE,
) -> Joins:
    """The participants who joined in the range, in one index-only pass of
    (campaign, joined_at) grouped by depth and local day. With the tree rolled up
    (`marks`), the counts by depth and day are the tallies plus a grouped pass over the
    participants since, and who qualified (which changes after joining) is one count."""
    referred = Q(referrer_id__isnull=False)
    qualified = referred & Q(qualified_at__isnull=False)
    quality = qualified & Q(status=Participant.Status.ACTIVE)
    people = joined(campaign, date_from, date_to)
    by_depth: dict[int, int] = {}
    by_day: dict[date, int] = {}
    participants = referred_count = 0

    def add(depth: int, day: date, n: int, r: int) -> None:
        nonlocal participants, referred_count
        participants, referred_count = participants + n, referred_count + r
        by_depth[depth] = by_depth.get(depth, 0) + n
        by_day[day] = by_day.get(day, 0) + n

    counts = {"n": Count("id"), "r": Count("id", filter=referred)}
    if marks.participants:
        tallies = JoinTally.objects.filter(campaign_id=campaign.pk)
        if date_from is not None:
            tallies = tallies.filter(day__gte=date_from)
        if date_to is not None:
            tallies = tallies.filter(day__lte=date_to)
        for row in tallies.values_list("depth", "day", "joined", "referred"):
            add(*row)
        # Over the partial index of qualified referees (participant_qualified_referee).
        changing = people.filter(qualified).aggregate(
            q=Count("*"), qa=Count("status", filter=Q(status=Participant.Status.ACTIVE))
        )
        people = people.filter(id__gt=marks.participants)
    else:
        counts |= {"q": Count("id", filter=qualified), "qa": Count("id", filter=quality)}
        changing = {"q": 0, "qa": 0}
    rows = (
        people.annotate(day=TruncDate("joined_at", tzinfo=site_tz()))
        .values_list("depth", "day")
        .annotate(**counts)
        .values("depth", "day", *counts)
    )
    for row in rows:
        add(row["depth"], row["day"], row["n"], row["r"])
        if not marks.participants:
            changing["q"] += row["q"]
            changing["qa"] += row["qa"]
    return Joins(participants, referred_count, changing["q"], changing["qa"], by_depth, by_day)


def generations(
    campaign: Campaign,
    date_from: date | None = None,
    date_to: date | None = None,
    *,
    by_depth: dict[int, int] | None = None,
) -> list[Generation]:
    """Sizes by depth (generation n is depth n) and K per generation, |gen n+1| / |gen n|.

    Within a date range a referee's referrer may have joined before it: generations
    then count only who joined in the range, by their depth in the whole tree, and a
    depth nobody in the range has is listed with size 0 so the list has no gaps.
    `by_depth` is the sizes when the caller has them already (`joins`).
    """
    rows = joins(campaign, date_from, date_to).by_depth if by_depth is None else by_depth
    if not rows:
        return []
    sizes = [rows.get(depth, 0) for depth in range(max(rows) + 1)]
    return [
        Generation(
            generation=n,
            size=size,
            k=ratio(sizes[n + 1], size) if n + 1 < len(sizes) else 0.0,
        )
        for n, size in enumerate(sizes)
    ]


def cohorts(
    campaign: Campaign,
    date_from: date | None = None,
    date_to: date | None = None,
    *,
    today: date | None = None,
    sizes: dict[date, int] | None = None,
    marks: Marks = LIVE,
) -> list[Cohort]:
    """Cohorts by local day of joining: size, referees who joined within the attribution
    window of their referrer's joining, K, and whether the window has closed for all.

    Sizes by day come from `joins` (or `sizes`, when the caller has them); referees by
    their referrer's day from a join on referrer_id. Referees are counted whenever they
    joined, inside the range or not: the window, not the range, bounds a cohort.
    """
    tz = site_tz()
    window = timedelta(days=campaign.attribution_window_days)
    today = today or timezone.localdate()
    if sizes is None:
        sizes = joins(campaign, date_from, date_to).by_day
    referees = Participant.objects.filter(
        campaign_id=campaign.pk,
        # Always true (a referrer is in its referee's campaign), but it lets the planner
        # read only this campaign's rows for the referrer side of the join.
        referrer__campaign_id=campaign.pk,
        joined_at__lte=F("referrer__joined_at") + window,
    ).order_by()
    referees = in_range(referees, "referrer__joined_at", date_from, date_to)
    referred: dict[date, int] = {}
    if marks.participants:
        # Rolled up: by the referrer's day and the gap in whole days rounded up, which is
        # within a window of W days exactly when it is at most W.
        tallies = CohortTally.objects.filter(
            campaign_id=campaign.pk, gap_days__lte=campaign.attribution_window_days
        )
        if date_from is not None:
            tallies = tallies.filter(day__gte=date_from)
        if date_to is not None:
            tallies = tallies.filter(day__lte=date_to)
        referred = dict(
            tallies.values_list("day").annotate(n=Sum("referees")).values_list("day", "n")
        )
        referees = referees.filter(id__gt=marks.participants)
    for day, n in (
        referees.annotate(day=TruncDate("referrer__joined_at", tzinfo=tz))
        .values_list("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    ):
        referred[day] = referred.get(day, 0) + n
    return [
        Cohort(
            date=day,
            size=size,
            referred=referred.get(day, 0),
            k=ratio(referred.get(day, 0), size),
            # Mature once day d + window has ended for everyone who joined on d.
            mature=day + window < today,
        )
        for day, size in sorted(sizes.items())
    ]


def cycle_time_hours(
    campaign: Campaign,
    date_from: date | None = None,
    date_to: date | None = None,
    *,
    count: int | None = None,
    marks: Marks = LIVE,
) -> float | None:
    """Median of (referee joined − referrer joined) in hours over the referees who joined
    in the range; the mean of the two middle values for an even count; None if none.
    `count` is the number of those referees when the caller has it (`joins`' referred:
    a referrer is always in its referee's campaign)."""
    pairs = joined(campaign, date_from, date_to).filter(referrer__campaign_id=campaign.pk)
    gap = ExpressionWrapper(F("joined_at") - F("referrer__joined_at"), output_field=DurationField())
    gaps = pairs.annotate(gap=gap).values_list("gap", flat=True)
    if marks.participants and date_from is None and date_to is None:
        # The rolled-up gaps in their index's order, and the few joined since.
        since = list(gaps.filter(id__gt=marks.participants)[: TAIL_IN_MEMORY + 1])
        rolled = ReferralGap.objects.filter(campaign_id=campaign.pk).values_list("gap", flat=True)
        if len(since) <= TAIL_IN_MEMORY:
            median = _median_merged(rolled, sorted(since), count=count)
            return None if median is None else round(median.total_seconds() / 3600, 3)
        gaps = rolled.union(gaps.filter(id__gt=marks.participants), all=True)
    median = _median_by_offset(gaps, count=count)
    if median is None:
        return None
    return round(median.total_seconds() / 3600, 3)


def _median_by_offset(gaps: QuerySet[Any], *, count: int | None = None) -> timedelta | None:
    """The median: count (unless given), then read the one or two middle values in order.

    The database sorts; Python sees at most two values. On PostgreSQL the join and the
    sort run in parallel workers (ORDER BY … OFFSET under a Gather Merge), which an
    ordered-set aggregate such as `Median` cannot: on the viral benchmark campaign this
    takes about half of percentile_cont's time. Tests check the two agree.
    """
    if count is None:
        count = gaps.count()
    if count == 0:
        return None
    middle = list(gaps.order_by("gap")[(count - 1) // 2 : count // 2 + 1])
    return sum(middle, timedelta()) / len(middle)


def _median_merged(
    rolled: QuerySet[Any], since: list[timedelta], *, count: int | None
) -> timedelta | None:
    """The median of the rolled-up gaps (`rolled`, read in order along their index) and
    the sorted gaps `since`, reading only the t + 2 rolled-up values around the middle
    (t = len(since)).

    For the k-th value (from 0) of the two lists together: with lo = max(0, k − t), the
    merge M of rolled[lo : k + 2] and `since` holds it at M[k − lo]. Among M's first
    k − lo + 1 values at most t come from `since`, so at least one comes from rolled[lo:],
    so each of the lo values before it is no larger: exactly lo values precede M[0] in
    the whole order, whatever `since` holds.
    """
    if count is None:
        count = rolled.count() + len(since)
    if count == 0:
        return None
    first, last = (count - 1) // 2, count // 2
    lo = max(0, first - len(since))
    merged = list(heapq.merge(rolled.order_by("gap")[lo : last + 1], since))
    middle = merged[first - lo : last - lo + 1]
    return sum(middle, timedelta()) / len(middle)
