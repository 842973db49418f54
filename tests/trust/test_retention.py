"""Clicks past their retention are rolled up into the daily snapshots, then deleted; the
figures they made stay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from apps.analytics.models import DailySnapshot
from apps.analytics.ranges import day_start
from apps.analytics.selectors import kfactor_report
from apps.analytics.services import snapshot_campaign
from apps.referrals.models import Click
from apps.trust import retention
from apps.trust.models import ClickRetention
from apps.trust.tasks import purge_old_clicks
from tests.analytics.builders import click
from tests.factories import join

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(campaign):
    """Alice joined 300 days ago. Visitors came through her link 200 days ago (v1, v2,
    and a bot), 199 days ago (v2 again, v3), and 10 days ago (v4)."""
    today = timezone.localdate()
    alice = join(campaign, "alice", joined_at=day_start(today - timedelta(days=300)))
    old, older = today - timedelta(days=199), today - timedelta(days=200)
    for visitor, day in (("v1", older), ("v2", older), ("v2", old), ("v3", old), ("v4", None)):
        when = day_start(day or today - timedelta(days=10)) + timedelta(hours=12)
        click(alice, visitor, when)
    click(alice, "", day_start(older) + timedelta(hours=13), is_bot=True)
    return alice, older, old


def test_old_clicks_are_rolled_up_then_deleted(campaign, history):
    _alice, older, old = history
    assert not DailySnapshot.objects.exists()  # never snapshotted: the purge must do it
    visitors = kfactor_report(campaign).visitors
    assert visitors == 4

    purge_old_clicks()

    rows = dict(DailySnapshot.objects.filter(campaign=campaign).values_list("date", "visitors"))
    assert (rows[older], rows[old]) == (2, 2)
    assert list(Click.objects.values_list("visitor_id", flat=True)) == ["v4"]
    cutoff = timezone.localdate() - timedelta(days=django_settings.FISSION["CLICK_RETENTION_DAYS"])
    state = ClickRetention.objects.get(campaign=campaign)
    assert (state.frozen_through, state.clicks_deleted) == (cutoff - timedelta(days=1), 5)
    # The report reads the purged days from the snapshots: v2 came on two of them, so it
    # counts on each (the clicks that would tell are gone).
    assert kfactor_report(campaign).visitors == visitors + 1
    assert kfactor_report(campaign, old, old).visitors == 2
    assert kfactor_report(campaign, timezone.localdate() - timedelta(days=30)).visitors == 1


def test_nothing_is_deleted_unless_it_was_rolled_up(campaign, history, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("the snapshot failed")

    monkeypatch.setattr(retention, "snapshot_fill_days", broken)
    with pytest.raises(RuntimeError):
        retention.clicks_purge()
    assert Click.objects.count() == 6
    assert not ClickRetention.objects.exists()


def test_a_rebuild_of_the_snapshots_keeps_the_purged_days(campaign, history):
    _alice, older, old = history
    retention.clicks_purge()
    snapshot_campaign(campaign_id=campaign.pk, through=timezone.localdate(), rebuild=True)
    row = DailySnapshot.objects.get(campaign=campaign, date=older)
    assert (row.visitors, row.joined) == (2, 0)
    assert DailySnapshot.objects.get(campaign=campaign, date=old).visitors_7d == 3


def test_purging_twice_deletes_nothing_more(campaign, history):
    assert retention.clicks_purge() == 5
    assert retention.clicks_purge() == 0
    assert Click.objects.count() == 1


def test_clicks_within_the_retention_stay(campaign, history, settings):
    settings.FISSION = {**settings.FISSION, "CLICK_RETENTION_DAYS": 365}
    assert retention.clicks_purge() == 0
    assert Click.objects.count() == 6
    assert not ClickRetention.objects.exists()


def test_the_beat_schedule_runs_the_trust_jobs():
    tasks = {entry["task"] for entry in django_settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"apps.trust.tasks.purge_old_clicks", "apps.trust.tasks.check_referral_quality"} <= tasks
