"""The report's roll-up (apps.analytics.rollup): whatever has been rolled up, and whatever
joined or clicked since, the K-factor report is the one counted live from the raw rows.

The roll-up runs on PostgreSQL; elsewhere the report is always live (the last test)."""

from __future__ import annotations

import io
import json
import random
import threading
from datetime import date, timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from apps.analytics import breakdowns, rollup, tasks
from apps.analytics.models import JoinTally, ReportRollup, VisitorSeen, VisitorTally
from apps.analytics.rollup import LIVE, report_rollup, watermarks
from apps.analytics.selectors import _report, kfactor_report, report_transaction
from apps.campaigns.models import Campaign
from apps.referrals.models import Participant
from apps.trust.privacy import participant_erase
from apps.trust.retention import clicks_purge
from tests.factories import CampaignFactory

from .builders import T0, at, click, join_at

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the roll-up runs on PostgreSQL"
)
pytestmark = [pytest.mark.django_db, postgres_only]

RANGES = [
    (None, None),
    (at(days=2).date(), None),
    (None, at(days=3).date()),
    (at(days=1).date(), at(days=4).date()),
]


def live(campaign: Campaign, date_from: date | None = None, date_to: date | None = None):
    """The report counted from the raw rows alone, whatever the roll-up holds."""
    with report_transaction():
        return _report(campaign, date_from, date_to, today=None, marks=LIVE)


def grow(campaign: Campaign, rng: random.Random, people: int, *, prefix: str) -> None:
    """`people` joins under random earlier participants, at random gaps (some exactly on
    the attribution window's edge), each followed by a few visits, a bot among them."""
    existing = list(Participant.objects.filter(campaign=campaign))
    window = timedelta(days=campaign.attribution_window_days)
    for n in range(people):
        referrer = rng.choice(existing) if existing and rng.random() < 0.8 else None
        if referrer is None:
            when = at(days=rng.uniform(0, 6))
        else:
            gap = rng.choice(
                [window, window + timedelta(microseconds=1), timedelta(hours=rng.uniform(0, 300))]
            )
            when = referrer.joined_at + gap
        person = join_at(campaign, f"{prefix}{n}", when, referrer)
        existing.append(person)
        for _ in range(rng.randint(0, 3)):
            click(person, f"v{rng.randint(0, 40)}", when - timedelta(minutes=5))
        if rng.random() < 0.2:
            click(person, "", when)  # no visitor cookie: not a visitor
            click(person, "bot", when, is_bot=True)
    qualified = [p.pk for p in existing if rng.random() < 0.4]
    Participant.objects.filter(pk__in=qualified, referrer__isnull=False).update(qualified_at=T0)


@pytest.fixture
def campaign():
    return CampaignFactory(attribution_window_days=3, qualifying_event="purchase")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_report_is_the_live_one_whatever_is_rolled_up(campaign, seed):
    rng = random.Random(seed)
    grow(campaign, rng, 40, prefix="a")
    report_rollup(batch=7)  # several batches
    assert watermarks().participants > 0 and watermarks().clicks > 0
    grow(campaign, rng, 15, prefix="b")  # joined and clicked since the roll-up
    for date_from, date_to in RANGES:
        assert kfactor_report(campaign, date_from, date_to) == live(campaign, date_from, date_to)
    report_rollup()
    assert kfactor_report(campaign) == live(campaign)
    # The operator shortens the window: the rolled-up cohorts follow.
    Campaign.objects.filter(pk=campaign.pk).update(attribution_window_days=1)
    campaign.refresh_from_db()
    assert kfactor_report(campaign) == live(campaign)


def test_many_referees_since_the_roll_up_are_sorted_by_the_database(campaign, monkeypatch):
    grow(campaign, random.Random(4), 30, prefix="a")
    report_rollup()
    grow(campaign, random.Random(9), 12, prefix="b")
    monkeypatch.setattr(breakdowns, "TAIL_IN_MEMORY", 3)
    assert kfactor_report(campaign).cycle_time_hours == live(campaign).cycle_time_hours


def test_the_tallies_hold_only_the_rows_up_to_the_watermark(campaign):
    seed = join_at(campaign, "seed", at())
    join_at(campaign, "friend", at(hours=5), seed)
    click(seed, "v1")
    click(seed, "v1")
    tasks.roll_up_reports.delay()  # beat's task, in-process without a broker
    join_at(campaign, "late", at(days=1), seed)
    click(seed, "v2")
    assert sum(JoinTally.objects.values_list("joined", flat=True)) == 2
    assert VisitorTally.objects.get(campaign=campaign).visitors == 1
    report = kfactor_report(campaign)
    assert (report.participants, report.referred, report.visitors) == (3, 2, 2)
    assert report.cycle_time_hours == 14.5  # the median of 5 h and 24 h


@pytest.mark.django_db(transaction=True)
def test_rolling_up_twice_at_once_counts_each_row_once(campaign):
    grow(campaign, random.Random(5), 30, prefix="c")
    expected = live(campaign)
    barrier = threading.Barrier(2)

    def roll() -> None:
        try:
            barrier.wait()
            report_rollup(batch=5)
        finally:
            connection.close()

    threads = [threading.Thread(target=roll) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert kfactor_report(campaign) == expected


def test_a_roll_up_committing_while_the_report_reads_is_read_again(campaign, monkeypatch):
    grow(campaign, random.Random(6), 20, prefix="d")
    report_rollup()
    reads = []
    real = rollup.watermarks

    def moving() -> rollup.Marks:
        marks = real()
        reads.append(marks)
        # The first read sees an older state: the check after the first attempt differs.
        return rollup.Marks(0, 0, ("older",)) if len(reads) == 1 else marks

    monkeypatch.setattr(rollup, "watermarks", moving)
    assert kfactor_report(campaign) == live(campaign)
    assert len(reads) == 4  # before and after each of two attempts


def test_another_time_zone_starts_the_participant_tallies_again(campaign):
    grow(campaign, random.Random(7), 20, prefix="e")
    report_rollup()
    with override_settings(TIME_ZONE="America/Los_Angeles"):
        assert watermarks().participants == 0  # the local days were another zone's
        assert kfactor_report(campaign) == live(campaign)
        report_rollup()
        state = ReportRollup.objects.get(source=ReportRollup.Source.PARTICIPANTS)
        assert state.time_zone == "America/Los_Angeles"
        assert watermarks().participants > 0
        assert kfactor_report(campaign) == live(campaign)


def test_an_erased_visitor_stays_one_visitor_under_an_id_that_leads_nowhere(campaign):
    seed = join_at(campaign, "seed", at())
    friend = join_at(campaign, "friend", at(hours=1), seed)
    Participant.objects.filter(pk=friend.pk).update(join_visitor_id="v-friend")
    for visitor in ("v-friend", "v-friend", "v-other"):
        click(seed, visitor)
    report_rollup()
    participant_erase(participant_id=friend.pk, actor="test")
    click(seed, "v-late")
    assert not VisitorSeen.objects.filter(visitor_id="v-friend").exists()
    assert kfactor_report(campaign).visitors == 3 == live(campaign).visitors
    report_rollup()
    assert kfactor_report(campaign).visitors == 3


def test_a_campaign_past_its_click_retention_keeps_no_visitor_ids(campaign, settings):
    settings.FISSION = {**settings.FISSION, "CLICK_RETENTION_DAYS": 30}
    seed = join_at(campaign, "seed", at())
    click(seed, "v-old", at())
    report_rollup()
    assert VisitorSeen.objects.filter(campaign=campaign).exists()
    clicks_purge(now=at(days=60))
    assert not VisitorSeen.objects.filter(campaign=campaign).exists()
    assert not VisitorTally.objects.filter(campaign=campaign).exists()
    click(seed, "v-new", at(days=59))
    report_rollup()  # skips frozen campaigns
    assert not VisitorSeen.objects.filter(campaign=campaign).exists()
    assert kfactor_report(campaign) == live(campaign)
    assert kfactor_report(campaign).visitors == 2  # the old day's snapshot, and the new click


def test_the_stats_api_and_the_command_answer_from_the_tallies_as_live(campaign, api):
    grow(campaign, random.Random(12), 25, prefix="g")
    report_rollup()
    grow(campaign, random.Random(13), 5, prefix="h")
    expected = live(campaign).as_dict()
    response = api.get(f"/api/v1/campaigns/{campaign.slug}/stats/")
    assert response.status_code == 200
    assert response.json() == expected
    out = io.StringIO()
    call_command("kfactor", campaign.slug, "--json", stdout=out)
    assert json.loads(out.getvalue()) == response.json()
