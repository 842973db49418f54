"""Daily snapshots: the right figures per day, once per campaign and day, however often run."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.analytics import tasks
from apps.analytics.dashboard import daily_series, trailing
from apps.analytics.models import DailySnapshot
from apps.analytics.ranges import day_start
from apps.analytics.selectors import campaigns_to_snapshot, figures, kfactor_report
from apps.analytics.services import REFRESH_DAYS, snapshot_campaign
from apps.campaigns.models import Campaign
from tests.factories import CampaignFactory

from .builders import click, join_at

pytestmark = pytest.mark.django_db

D1 = date(2025, 3, 1)


def noon(day: date, hours: float = 0):
    return day_start(day) + timedelta(hours=12 + hours)


@pytest.fixture
def campaign():
    """Days 1–4 of March: alice (1st) refers bob (2nd) and carol (4th); bob refers dave
    (4th). Visitor v1 comes on the 1st and the 2nd, v2 on the 2nd, a bot on the 3rd."""
    campaign = CampaignFactory(qualifying_event="purchase")  # nobody qualifies by joining
    alice = join_at(campaign, "alice", noon(D1))
    bob = join_at(campaign, "bob", noon(D1 + timedelta(1)), alice)
    join_at(campaign, "carol", noon(D1 + timedelta(3)), alice)
    join_at(campaign, "dave", noon(D1 + timedelta(3), 1), bob)
    click(alice, "v1", noon(D1, 1))
    click(alice, "v1", noon(D1 + timedelta(1), -2))
    click(alice, "v2", noon(D1 + timedelta(1), -1))
    click(bob, "bot", noon(D1 + timedelta(2)), is_bot=True)
    return campaign


def rows(campaign):
    return list(
        DailySnapshot.objects.filter(campaign=campaign)
        .order_by("date")
        .values_list("date", "joined", "referred", "visitors", "visitors_7d")
    )


def test_one_row_a_day_from_the_first_join(campaign):
    written = snapshot_campaign(campaign_id=campaign.pk, through=D1 + timedelta(4))
    assert written == 5
    assert rows(campaign) == [
        (D1, 1, 0, 1, 1),
        (D1 + timedelta(1), 1, 1, 2, 2),  # v1 again and v2: 2 that day, still 2 over 7 days
        (D1 + timedelta(2), 0, 0, 0, 2),  # the bot is no visitor
        (D1 + timedelta(3), 2, 2, 0, 2),
        (D1 + timedelta(4), 0, 0, 0, 2),
    ]


def test_the_newest_row_keeps_the_report_as_of_its_day(campaign):
    through = D1 + timedelta(2)
    snapshot_campaign(campaign_id=campaign.pk, through=through)
    newest = DailySnapshot.objects.get(campaign=campaign, date=through)
    assert newest.report == kfactor_report(campaign, None, through).as_dict()
    assert newest.report["participants"] == 2  # carol and dave joined after the 3rd
    assert newest.extras["qualified"] == 0
    assert {c["channel"] for c in newest.extras["channels"]} == {""}
    assert newest.extras["top_referrers"] == [
        {"id": campaign.participants.get(name="Alice").pk, "referred": 1, "qualified": 0}
    ]
    assert DailySnapshot.objects.filter(campaign=campaign, report__isnull=False).count() == 1


def test_running_twice_changes_nothing(campaign):
    through = D1 + timedelta(4)
    snapshot_campaign(campaign_id=campaign.pk, through=through)
    first = rows(campaign)
    snapshot_campaign(campaign_id=campaign.pk, through=through)
    snapshot_campaign(campaign_id=campaign.pk, through=through, rebuild=True)
    assert rows(campaign) == first
    assert DailySnapshot.objects.filter(campaign=campaign).count() == 5


def test_the_database_refuses_a_second_row_for_a_day(campaign):
    DailySnapshot.objects.create(campaign=campaign, date=D1)
    with pytest.raises(IntegrityError), transaction.atomic():
        DailySnapshot.objects.create(campaign=campaign, date=D1)


def test_a_later_run_recomputes_the_recent_days_only(campaign):
    """A late import on the 1st is left alone by the nightly run (older than the refresh
    span) and picked up by a rebuild; a change within the span is picked up at once."""
    later = D1 + timedelta(REFRESH_DAYS + 5)
    snapshot_campaign(campaign_id=campaign.pk, through=later)
    join_at(campaign, "late-import", noon(D1, 3))
    join_at(campaign, "recent", noon(later - timedelta(2)))
    snapshot_campaign(campaign_id=campaign.pk, through=later + timedelta(1))
    by_day = {row[0]: row for row in rows(campaign)}
    assert by_day[D1][1] == 1  # not recomputed
    assert by_day[later - timedelta(2)][1] == 1  # recomputed
    assert by_day[later + timedelta(1)][1] == 0  # the new day
    snapshot_campaign(campaign_id=campaign.pk, through=later + timedelta(1), rebuild=True)
    assert DailySnapshot.objects.get(campaign=campaign, date=D1).joined == 2


def test_the_seven_day_figures_equal_the_report_for_those_seven_days(campaign):
    """The chart's K, i and c per day are exactly the report's for the 7 days ending
    that day: the same definition everywhere."""
    alice = campaign.participants.get(name="Alice")
    for n in range(12):
        day = D1 + timedelta(days=n)
        click(alice, f"w{n % 5}", noon(day, 2))
        if n % 3 == 0:
            join_at(campaign, f"extra{n}", noon(day, 3), alice if n % 2 else None)
    series = daily_series(campaign, D1, D1 + timedelta(11))
    for window in trailing(series):
        expected = figures(campaign, window.date - timedelta(days=6), window.date)
        assert (window.participants, window.referred, window.visitors) == (
            expected.participants,
            expected.referred,
            expected.visitors,
        ), window.date
        assert (window.k, window.i, window.c) == (expected.k, expected.i, expected.c)


def test_a_campaign_without_participants_gets_a_row_for_the_day(db):
    campaign = CampaignFactory()
    assert snapshot_campaign(campaign_id=campaign.pk, through=D1) == 1
    assert rows(campaign) == [(D1, 0, 0, 0, 0)]
    assert snapshot_campaign(campaign_id=123456789, through=D1) == 0  # deleted since


def test_the_nightly_task_snapshots_every_live_campaign_up_to_yesterday(db):
    active = CampaignFactory(status=Campaign.Status.ACTIVE)
    paused = CampaignFactory(status=Campaign.Status.PAUSED)
    ended_lately = CampaignFactory(status=Campaign.Status.ENDED)
    draft = CampaignFactory(status=Campaign.Status.DRAFT)
    ended_long_ago = CampaignFactory(status=Campaign.Status.ENDED)
    Campaign.objects.filter(pk=ended_long_ago.pk).update(
        updated_at=timezone.now() - timedelta(days=90)
    )
    assert campaigns_to_snapshot() == [active.pk, paused.pk, ended_lately.pk]
    tasks.snapshot_all.delay()  # in-process without a broker, as in development
    yesterday = timezone.localdate() - timedelta(days=1)
    snapped = set(DailySnapshot.objects.values_list("campaign_id", "date"))
    assert snapped == {(c.pk, yesterday) for c in (active, paused, ended_lately)}
    assert draft.pk not in {c for c, _ in snapped}


def test_the_beat_schedule_runs_the_analytics_jobs():
    schedule = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {
        "apps.analytics.tasks.snapshot_all",
        "apps.analytics.tasks.check_k_alerts",
        "apps.analytics.tasks.roll_up_reports",
    } <= schedule
