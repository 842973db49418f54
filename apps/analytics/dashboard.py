"""Reads for the operator's dashboard: the daily series, channels, top referrers, and the
dashboard's whole picture from the newest snapshot (or live, before the first one)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from apps.campaigns.models import Campaign
from apps.referrals.models import Participant
from apps.rewards.models import LIVE_STATES, Reward
from apps.rewards.selectors import reward_totals

from .breakdowns import Cohort, Generation, joined
from .models import DailySnapshot, KAlert
from .outlook import Projection, ViralK, projection, viral_k
from .ranges import day_start, site_tz
from .selectors import (
    Figures,
    KReport,
    distinct_counts,
    kfactor_report,
    report_transaction,
    visits,
)

SERIES_DAYS = 90  # the charts' span: readable on a laptop, a season of a campaign
TRAILING_DAYS = 7  # K over time is the K of the 7 days ending each day, as the alerts use
TOP_REFERRERS = 10
CHANNELS_SHOWN = 12
TRAILING_CHUNK = 31  # days per visitors-over-7-days query: one scan, a bounded SELECT list


@dataclass(frozen=True)
class Day:
    """One local day of a campaign."""

    date: date
    joined: int
    referred: int
    visitors: int
    visitors_7d: int


@dataclass(frozen=True)
class Trailing(Figures):
    """The 7 days ending `date`: K, i and c as the report would give for that range."""

    date: date
    total: int  # everyone who joined up to the end of `date`


def days_between(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def first_day(campaign: Campaign) -> date | None:
    """The local day of the campaign's first join (an index edge of (campaign, joined_at))."""
    first: datetime | None = (
        Participant.objects.filter(campaign_id=campaign.pk)
        .order_by("joined_at")
        .values_list("joined_at", flat=True)
        .first()
    )
    return timezone.localtime(first, site_tz()).date() if first else None


def visitors_trailing(
    campaign: Campaign, days: list[date], span: int = TRAILING_DAYS
) -> dict[date, int]:
    """Distinct visitors over the `span` days ending each of `days`.

    Distinct counts do not add up across days (a visitor who came on Monday and Tuesday
    is one), so each day needs its own COUNT(DISTINCT). They are filtered aggregates of
    one query per chunk of days: one scan of the clicks, not one query a day.
    """
    counts: dict[date, int] = {}
    for n in range(0, len(days), TRAILING_CHUNK):
        chunk = days[n : n + TRAILING_CHUNK]
        clicks = visits(campaign, chunk[0] - timedelta(days=span - 1), chunk[-1])
        result = clicks.aggregate(
            **{
                f"d{index}": Count(
                    "visitor_id",
                    distinct=True,
                    filter=Q(
                        created_at__gte=day_start(day - timedelta(days=span - 1)),
                        created_at__lt=day_start(day + timedelta(days=1)),
                    ),
                )
                for index, day in enumerate(chunk)
            }
        )
        counts.update({day: result[f"d{index}"] for index, day in enumerate(chunk)})
    return counts


def daily_series(campaign: Campaign, start: date, end: date) -> list[Day]:
    """Every local day from `start` to `end`, with zeros on quiet days: three queries."""
    tz = site_tz()
    people = {
        row["day"]: row
        for row in joined(campaign, start, end)
        .annotate(day=TruncDate("joined_at", tzinfo=tz))
        .values("day")
        .annotate(n=Count("id"), r=Count("id", filter=Q(referrer_id__isnull=False)))
    }
    visitors = dict(
        visits(campaign, start, end)
        .annotate(day=TruncDate("created_at", tzinfo=tz))
        .values_list("day")
        .annotate(v=Count("visitor_id", distinct=True))
        .values_list("day", "v")
    )
    days = days_between(start, end)
    trailing = visitors_trailing(campaign, days)
    return [
        Day(
            date=day,
            joined=people[day]["n"] if day in people else 0,
            referred=people[day]["r"] if day in people else 0,
            visitors=visitors.get(day, 0),
            visitors_7d=trailing[day],
        )
        for day in days
    ]


def channel_breakdown(campaign: Campaign, date_to: date | None = None) -> list[dict[str, Any]]:
    """Per channel (the invite link's `?s=`, or web/api/import for joins): distinct
    visitors, joins and referred joins; the busiest first, the long tail summed as
    "other" (channels are free text from links, so there may be many)."""
    visitors = distinct_counts(visits(campaign, None, date_to), "channel", "visitor_id")
    joins = {
        row["channel"]: row
        for row in joined(campaign, None, date_to)
        .values("channel")
        .annotate(n=Count("id"), r=Count("id", filter=Q(referrer_id__isnull=False)))
    }
    rows = [
        {
            "channel": channel,
            "visitors": visitors.get(channel, 0),
            "joins": joins[channel]["n"] if channel in joins else 0,
            "referred": joins[channel]["r"] if channel in joins else 0,
        }
        for channel in set(visitors) | set(joins)
    ]
    rows.sort(key=lambda r: (-(r["visitors"] + r["joins"]), r["channel"]))
    if len(rows) > CHANNELS_SHOWN:
        tail = rows[CHANNELS_SHOWN - 1 :]
        other = {
            "channel": "*other",
            "visitors": sum(r["visitors"] for r in tail),
            "joins": sum(r["joins"] for r in tail),
            "referred": sum(r["referred"] for r in tail),
        }
        rows = [*rows[: CHANNELS_SHOWN - 1], other]
    return rows


def top_referrers(campaign: Campaign, date_to: date | None = None) -> list[dict[str, int]]:
    """The participants who brought the most people: ids and counts only (names are read
    live, so a snapshot never keeps personal data)."""
    rows = (
        joined(campaign, None, date_to)
        .filter(referrer_id__isnull=False)
        .values("referrer_id")
        .annotate(referred=Count("id"), qualified=Count("id", filter=Q(qualified_at__isnull=False)))
        .order_by("-referred", "referrer_id")[:TOP_REFERRERS]
    )
    return [
        {"id": r["referrer_id"], "referred": r["referred"], "qualified": r["qualified"]}
        for r in rows
    ]


def dashboard_extras(campaign: Campaign, date_to: date | None = None) -> dict[str, Any]:
    """What the dashboard shows beyond the Stats JSON, kept with each snapshot."""
    with report_transaction():
        qualified = (
            joined(campaign, None, date_to)
            .filter(referrer_id__isnull=False, qualified_at__isnull=False)
            .count()
        )
        # Referees whose joining or buying earned anyone a reward that still stands.
        rewarded = (
            Reward.objects.filter(
                campaign_id=campaign.pk,
                state__in=LIVE_STATES,
                referee_id__in=joined(campaign, None, date_to)
                .filter(referrer_id__isnull=False)
                .values("id"),
            )
            .values("referee_id")
            .distinct()
            .count()
        )
        return {
            "qualified": qualified,
            "rewarded": rewarded,
            "spend": {
                currency: str(total)
                for currency, total in sorted(reward_totals(campaign=campaign).items())
            },
            "channels": channel_breakdown(campaign, date_to),
            "top_referrers": top_referrers(campaign, date_to),
        }


def trailing(series: list[Day], totals_before: int = 0) -> list[Trailing]:
    """The 7-day figures ending each day of `series` (a day's own row carries V over 7
    days; joins and referred joins add up)."""
    out: list[Trailing] = []
    total = totals_before
    for n, day in enumerate(series):
        window = series[max(0, n - TRAILING_DAYS + 1) : n + 1]
        total += day.joined
        out.append(
            Trailing(
                date=day.date,
                participants=sum(d.joined for d in window),
                referred=sum(d.referred for d in window),
                visitors=day.visitors_7d,
                total=total,
            )
        )
    return out


def joined_since(campaign: Campaign, since: datetime, until: datetime) -> int:
    return Participant.objects.filter(
        campaign_id=campaign.pk, joined_at__gte=since, joined_at__lt=until
    ).count()


def report_from_dict(data: dict[str, Any]) -> KReport:
    """A stored Stats JSON back into a KReport."""
    return KReport(
        participants=data["participants"],
        referred=data["referred"],
        seeds=data["seeds"],
        visitors=data["visitors"],
        i=data["i"],
        c=data["c"],
        k=data["k"],
        k_qualified=data["k_qualified"],
        generations=[Generation(**g) for g in data["generations"]],
        cohorts=[
            Cohort(
                date=date.fromisoformat(c["date"]),
                size=c["size"],
                referred=c["referred"],
                k=c["k"],
                mature=c["mature"],
            )
            for c in data["cohorts"]
        ],
        cycle_time_hours=data["cycle_time_hours"],
        amplification=data["amplification"],
        k_quality=data.get("k_quality"),
    )


@dataclass
class Spend:
    currency: str
    total: Decimal
    cap: Decimal | None  # the campaign's budget cap, when it is in this currency
    share: float | None  # total ÷ cap

    @classmethod
    def of(cls, campaign: Campaign, currency: str, total: Decimal) -> Spend:
        cap = campaign.budget_cap if currency == campaign.currency else None
        share = float(total / cap) if cap else None
        return cls(currency, total, cap, share)

    @property
    def percent(self) -> int | None:
        return None if self.share is None else round(self.share * 100)


@dataclass
class DashboardData:
    campaign: Campaign
    computed_at: datetime | None  # when the snapshot was made; None: computed live now
    through: date  # the last day the figures cover
    report: KReport
    series: list[Day]
    trailing: list[Trailing]
    qualified: int  # referees who qualified
    rewarded: int  # referees whose qualification or purchases earned a standing reward
    spend: list[Spend]  # what the campaign's standing rewards add up to, per currency
    channels: list[dict[str, Any]]
    top_referrers: list[dict[str, Any]]  # with "participant": the row, read live
    viral: ViralK
    projection: Projection | None
    alerts: list[KAlert]  # the open one first, then the latest resolved ones


def newest_snapshot(campaign: Campaign) -> DailySnapshot | None:
    """The newest daily row that keeps a whole report: one read of the (campaign, date)
    index, whatever the campaign's size."""
    return (
        DailySnapshot.objects.filter(campaign_id=campaign.pk, report__isnull=False)
        .order_by("-date")
        .first()
    )


def snapshot_report(campaign: Campaign) -> KReport | None:
    """The K-factor report as of the newest snapshot, as the dashboard shows it; None
    before the first snapshot."""
    snapshot = newest_snapshot(campaign)
    return report_from_dict(snapshot.report) if snapshot and snapshot.report else None


def dashboard_data(campaign: Campaign, *, today: date | None = None) -> DashboardData:
    """Everything the dashboard shows, in a fixed number of queries.

    From the newest snapshot when there is one (instant at any size: a handful of
    indexed reads); computed live before the first snapshot, which is quick for the new,
    small campaigns that have none.
    """
    today = today or timezone.localdate()
    span = SERIES_DAYS + TRAILING_DAYS - 1
    snapshot = newest_snapshot(campaign)
    if snapshot is not None and snapshot.report and snapshot.extras is not None:
        through, computed_at = snapshot.date, snapshot.computed_at
        report = report_from_dict(snapshot.report)
        extras = snapshot.extras
        loaded = [
            Day(**row)
            for row in DailySnapshot.objects.filter(
                campaign_id=campaign.pk, date__gt=through - timedelta(days=span), date__lte=through
            )
            .order_by("date")
            .values("date", "joined", "referred", "visitors", "visitors_7d")
        ]
    else:
        through, computed_at = today, None
        report = kfactor_report(campaign, None, through, today=today)
        extras = dashboard_extras(campaign, through)
        start = max(first_day(campaign) or through, through - timedelta(days=span - 1))
        loaded = daily_series(campaign, start, through)
    # The 6 days before the charts' first day are loaded too, so that its 7-day figures
    # cover 7 days; everyone before them is counted from the report's total.
    before = report.participants - sum(day.joined for day in loaded)
    series = loaded[-SERIES_DAYS:]
    end = day_start(through + timedelta(days=1))
    if computed_at is None or computed_at < end:
        end = min(end, timezone.now())
    recent = (
        joined_since(campaign, end - timedelta(hours=report.cycle_time_hours), end)
        if report.cycle_time_hours and report.cycle_time_hours > 0
        else 0
    )
    current = viral_k(report)
    referrers = extras.get("top_referrers", [])
    people = Participant.objects.only("id", "name", "email", "code", "depth").in_bulk(
        [r["id"] for r in referrers]
    )
    alerts = list(
        KAlert.objects.filter(campaign_id=campaign.pk).order_by(
            F("resolved_at").desc(nulls_first=True), "-started_on"
        )[:5]
    )
    return DashboardData(
        campaign=campaign,
        computed_at=computed_at,
        through=through,
        report=report,
        series=series,
        trailing=trailing(loaded, before)[-SERIES_DAYS:],
        qualified=extras.get("qualified", 0),
        rewarded=extras.get("rewarded", 0),
        spend=[
            Spend.of(campaign, currency, Decimal(total))
            for currency, total in extras.get("spend", {}).items()
        ],
        channels=extras.get("channels", []),
        top_referrers=[{**r, "participant": people.get(r["id"])} for r in referrers],
        viral=current,
        projection=projection(report, recent, current.k),
        alerts=alerts,
    )
