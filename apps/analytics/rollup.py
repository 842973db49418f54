"""Folding the append-only tables into the report tallies (PostgreSQL).

Participants never leave the tree and their joining times never change; clicks are only
added. So what the K-factor report needs of them can be added up once, as they arrive:
every run (beat, every minute) reads the rows above each table's watermark, up to the
highest id below which every insert has committed (`committed_top`), adds them to the
tallies in a few INSERT … SELECT … ON CONFLICT statements, and moves the watermark, all
in one transaction per batch. The report reads the tallies and counts the rows above
the watermark live (apps.analytics.selectors), so it is exact at any moment; the
roll-up only decides how much of it is already added up.

From participants: JoinTally (by local day and depth), CohortTally (by the referrer's
local day and the gap in whole days) and ReferralGap (each referee's gap, for the
median). From clicks: VisitorSeen (each campaign's distinct visitors) and VisitorTally
(how many). Figures that change after the fact (who qualified, who was flagged) are not
tallied; the report counts them live.

Elsewhere than PostgreSQL nothing is rolled up and the report counts everything live.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from apps.referrals.models import Click, Participant
from apps.referrals.rollup import roll_up

from .models import CohortTally, JoinTally, ReferralGap, ReportRollup, VisitorSeen, VisitorTally

logger = logging.getLogger(__name__)

BATCH = 200_000
Source = ReportRollup.Source

# Each statement reads the source rows with ids in (low, high]. Constant SQL; the bounds
# and the time zone are parameters.
_PARTICIPANT_SQL = [
    """
    INSERT INTO analytics_jointally (campaign_id, day, depth, joined, referred)
    SELECT campaign_id, (joined_at AT TIME ZONE %(tz)s)::date, depth, count(*), count(referrer_id)
    FROM referrals_participant
    WHERE id > %(low)s AND id <= %(high)s
    GROUP BY 1, 2, 3
    ON CONFLICT (campaign_id, day, depth) DO UPDATE
    SET joined = analytics_jointally.joined + EXCLUDED.joined,
        referred = analytics_jointally.referred + EXCLUDED.referred
    """,
    """
    INSERT INTO analytics_cohorttally (campaign_id, day, gap_days, referees)
    SELECT p.campaign_id, (r.joined_at AT TIME ZONE %(tz)s)::date,
           ceil(extract(epoch FROM p.joined_at - r.joined_at) / 86400)::int, count(*)
    FROM referrals_participant p JOIN referrals_participant r ON r.id = p.referrer_id
    WHERE p.id > %(low)s AND p.id <= %(high)s
    GROUP BY 1, 2, 3
    ON CONFLICT (campaign_id, day, gap_days) DO UPDATE
    SET referees = analytics_cohorttally.referees + EXCLUDED.referees
    """,
    """
    INSERT INTO analytics_referralgap (campaign_id, gap)
    SELECT p.campaign_id, p.joined_at - r.joined_at
    FROM referrals_participant p JOIN referrals_participant r ON r.id = p.referrer_id
    WHERE p.id > %(low)s AND p.id <= %(high)s
    """,
]
# Visits as the report counts them (not bots, with a visitor cookie), of campaigns whose
# clicks are all kept (no retention freeze: trust.ClickRetention).
_CLICK_SQL = [
    """
    WITH new AS (
        INSERT INTO analytics_visitorseen (campaign_id, visitor_id)
        SELECT DISTINCT c.campaign_id, c.visitor_id
        FROM referrals_click c
        WHERE c.id > %(low)s AND c.id <= %(high)s AND NOT c.is_bot AND c.visitor_id <> ''
          AND NOT EXISTS (
              SELECT 1 FROM trust_clickretention f WHERE f.campaign_id = c.campaign_id
          )
        ON CONFLICT (campaign_id, visitor_id) DO NOTHING
        RETURNING campaign_id
    )
    INSERT INTO analytics_visitortally (campaign_id, visitors)
    SELECT campaign_id, count(*) FROM new GROUP BY campaign_id
    ON CONFLICT (campaign_id) DO UPDATE
    SET visitors = analytics_visitortally.visitors + EXCLUDED.visitors
    """,
]


def report_rollup(*, batch: int = BATCH) -> dict[str, int]:
    """Roll every committed participant and click above the watermarks into the tallies;
    returns how far each watermark moved (ids). Safe to run twice, or at once: each
    table's watermark row is locked for each batch."""
    if connection.vendor != "postgresql":
        return {"participants": 0, "clicks": 0}
    return {
        "participants": _roll(Source.PARTICIPANTS, Participant, _PARTICIPANT_SQL, batch),
        "clicks": _roll(Source.CLICKS, Click, _CLICK_SQL, batch),
    }


def _roll(source: int, model: type[Participant | Click], statements: list[str], batch: int) -> int:
    tz = timezone.get_default_timezone_name()

    def lock() -> ReportRollup:
        state = locked_state(source)
        if source == Source.PARTICIPANTS and state.time_zone != tz:
            _restart_participants(state, tz)
        return state

    def fold(low: int, high: int) -> int:
        with connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql, {"low": low, "high": high, "tz": tz})
        return high - low

    return roll_up(model, lock=lock, fold=fold, batch=batch)


def locked_state(source: int) -> ReportRollup:
    """The source's watermark row, locked until the end of the transaction: a roll-up of
    that table waits for whoever holds it (an erasure renaming a visitor, a retention
    freeze dropping a campaign's visitors)."""
    ReportRollup.objects.get_or_create(source=source)
    return ReportRollup.objects.select_for_update().get(source=source)


def _restart_participants(state: ReportRollup, tz: str) -> None:
    """TIME_ZONE changed: local days are now other days. Start the tallies again."""
    if state.time_zone:
        logger.warning("report tallies start again: TIME_ZONE %s -> %s", state.time_zone, tz)
    for model in (JoinTally, CohortTally, ReferralGap):
        model.objects.all().delete()
    state.watermark, state.time_zone = 0, tz


@dataclass(frozen=True)
class Marks:
    """How far the tallies go: participants and clicks with ids at or below these are in
    them, those above are counted live (0: everything live). `stamp` tells one roll-up
    state from the next, so that a report can tell if a roll-up committed while it read."""

    participants: int = 0
    clicks: int = 0
    stamp: tuple[Any, ...] = ()


LIVE = Marks()


def watermarks() -> Marks:
    """The roll-up as it stands (one read). Nothing is rolled up on SQLite, before the
    first run, or for participant tallies of another TIME_ZONE."""
    if connection.vendor != "postgresql":
        return LIVE
    rows = list(ReportRollup.objects.values_list("source", "watermark", "time_zone", "updated_at"))
    tz = timezone.get_default_timezone_name()
    marks = {
        source: watermark if source == Source.CLICKS or time_zone == tz else 0
        for source, watermark, time_zone, _ in rows
    }
    return Marks(
        participants=marks.get(Source.PARTICIPANTS, 0),
        clicks=marks.get(Source.CLICKS, 0),
        stamp=tuple(sorted(rows)),
    )


def visitor_renamed(campaign_id: int, old: str, new: str) -> None:
    """An erasure replaced a visitor id in the campaign's clicks (in the caller's
    transaction): replace it among the visitors seen, with the click roll-up held off so
    that it cannot add the old id back from clicks it read before."""
    locked_state(Source.CLICKS)
    VisitorSeen.objects.filter(campaign_id=campaign_id, visitor_id=old).update(visitor_id=new)


def visitors_forget(campaign_id: int) -> None:
    """The campaign's clicks are past their retention (frozen): its visitors are counted
    from the daily snapshots from now on, so the ids seen are dropped (and never added
    again: the roll-up skips frozen campaigns)."""
    with transaction.atomic():
        locked_state(Source.CLICKS)
        VisitorSeen.objects.filter(campaign_id=campaign_id).delete()
        VisitorTally.objects.filter(campaign_id=campaign_id).delete()
