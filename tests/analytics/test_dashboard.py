"""The operator's dashboard in admin: with data and without, from snapshots, staff only."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.analytics.dashboard import channel_breakdown, dashboard_data
from apps.analytics.models import DailySnapshot, KAlert
from apps.analytics.services import snapshot_campaign
from apps.referrals.models import Participant
from tests.factories import CampaignFactory

from .builders import bulk_people, click, join_at

pytestmark = pytest.mark.django_db


def url(campaign):
    return f"/admin/campaigns/campaign/{campaign.pk}/dashboard/"


def main_part(response) -> str:
    """The dashboard's own markup (not the admin frame around it)."""
    html = response.content.decode()
    return html[html.index('id="content-main"') : html.index("<!-- /fx-main -->")]


@pytest.fixture
def spring():
    """90 days of a campaign: alice and bob seed on day 0; every day one of the people who
    joined the day before refers someone, and there are two visits a day."""
    campaign = CampaignFactory(slug="spring", name="Spring invite", k_alert_threshold="0.5")
    today = timezone.localdate()
    start = timezone.localtime().replace(hour=12, minute=0, second=0, microsecond=0)
    start -= timedelta(days=89)
    alice = join_at(campaign, "alice", start)
    join_at(campaign, "bob", start + timedelta(minutes=5))
    inviter = alice
    for day in range(1, 90):
        when = start + timedelta(days=day)
        if when.date() > today:
            break
        person = join_at(campaign, f"friend{day}", when, inviter)
        Participant.objects.filter(pk=person.pk).update(channel="wechat" if day % 2 else "sms")
        click(inviter, f"v{day}a", when - timedelta(hours=1), channel="wechat")
        click(inviter, f"v{day}b", when - timedelta(hours=2), channel="sms")
        inviter = person
    return campaign


def test_the_dashboard_renders_without_data(operator_client):
    campaign = CampaignFactory(name="Quiet launch")
    response = operator_client.get(url(campaign))
    assert response.status_code == 200
    html = main_part(response)
    assert "Nobody has joined yet." in html
    assert "No data yet." in html and "No visitors or joins yet." in html
    assert "<svg" not in html  # no empty axes pretending to be charts


def test_the_dashboard_renders_live_before_the_first_snapshot(operator_client, spring):
    response = operator_client.get(url(spring))
    assert response.status_code == 200
    html = main_part(response)
    assert "Computed live: no snapshot yet." in html
    report = response.context["report"]
    assert report.participants == 91 and report.referred == 89
    # K = R / N is 0.98 (the seeds), but each participant brings one more: a chain
    # sustains itself, as its mature cohorts show.
    assert report.k == 0.978022
    assert "Viral: each participant brings 1.00 more" in html
    assert "K of the last 28 mature cohorts" in html
    assert html.count("<svg") == 6  # K, i, c, growth, funnel, generations
    assert "wechat" in html and "sms" in html  # channels
    assert "Alice" in html  # top referrers
    assert "still growing" in html and "yes" in html  # young and mature cohorts


def test_ninety_days_stay_readable(operator_client, spring):
    response = operator_client.get(url(spring))
    k_chart = response.context["charts"]["k"]
    assert len(k_chart.series[0].points) == 90  # every day hoverable
    assert 5 <= len(k_chart.x_ticks) <= 9  # but only a few dates under the axis
    assert [r.label for r in k_chart.rules] == ["alert threshold"]
    growth = response.context["charts"]["growth"]
    assert len(growth.series) == 2  # actual and projected, side by side
    actual, projected = growth.series
    assert actual.points[-1].x == projected.points[0].x  # the projection starts from today


def test_the_dashboard_reads_the_snapshot_in_a_few_queries(operator_client, spring):
    snapshot_campaign(campaign_id=spring.pk, through=timezone.localdate())
    with CaptureQueriesContext(connection) as queries:
        response = operator_client.get(url(spring))
    assert response.status_code == 200
    assert "Figures up to" in main_part(response)
    campaign_reads = [q for q in queries if "referrals_participant" in q["sql"]]
    assert len(campaign_reads) <= 2  # names of top referrers, joins of the last cycle
    assert len(queries) <= 12


def test_the_snapshot_and_live_pictures_agree(spring):
    live = dashboard_data(spring)
    snapshot_campaign(campaign_id=spring.pk, through=timezone.localdate())
    stored = dashboard_data(spring)
    assert stored.computed_at is not None and live.computed_at is None
    assert stored.report == live.report
    assert stored.series == live.series
    assert stored.trailing == live.trailing
    assert stored.channels == live.channels and stored.qualified == live.qualified
    assert [r["id"] for r in stored.top_referrers] == [r["id"] for r in live.top_referrers]


def test_the_page_carries_no_inline_style_or_script(operator_client, spring):
    html = main_part(operator_client.get(url(spring)))
    assert "style=" not in html and "<script" not in html


def test_charts_use_dots_in_numbers_whatever_the_language(operator_client, spring):
    response = operator_client.get(url(spring), HTTP_ACCEPT_LANGUAGE="zh-hans")
    points = re.findall(r'points="([^"]+)"', main_part(response))
    assert points and all("," in p and ";" not in p for p in points)


def test_the_dashboard_speaks_chinese(operator_client, spring):
    response = operator_client.get(url(spring), HTTP_ACCEPT_LANGUAGE="zh-hans")
    html = main_part(response)
    assert "邀请率" in html and "转化率" in html and "同期群" in html


def test_recompute_now_rebuilds_the_snapshots(operator_client, spring):
    response = operator_client.post(url(spring))
    assert response.status_code == 303 and response["Location"] == url(spring)
    today = timezone.localdate()
    rows = DailySnapshot.objects.filter(campaign=spring)
    assert rows.count() == 90 and rows.order_by("-date").first().date == today
    assert rows.get(date=today).report is not None


def test_staff_only(client, spring):
    response = client.get(url(spring))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    clerk = get_user_model().objects.create_user("clerk", "c@example.com", "pw", is_staff=True)
    staff = Client()
    staff.force_login(clerk)
    assert staff.get(url(spring)).status_code == 403  # staff, but may not view campaigns
    assert staff.post(url(spring)).status_code == 403
    assert not DailySnapshot.objects.exists()


def test_an_unknown_campaign_is_404(operator_client):
    assert operator_client.get("/admin/campaigns/campaign/999999/dashboard/").status_code == 404


def test_the_campaign_pages_link_to_the_dashboard_and_show_the_alert(operator_client, spring):
    KAlert.objects.create(
        campaign=spring, started_on=date(2025, 6, 15), reason="threshold", factor="c",
        k=0.2, i=2.0, c=0.1, previous_k=0.5, previous_i=2.0, previous_c=0.25,
        threshold="0.5", last_checked_on=date(2025, 6, 15), last_k=0.2,
    )  # fmt: skip
    listing = operator_client.get("/admin/campaigns/campaign/").content.decode()
    assert url(spring) in listing
    assert "Spring invite: the 7-day K-factor is 0.20, below the alert threshold 0.50." in listing
    change = operator_client.get(f"/admin/campaigns/campaign/{spring.pk}/change/").content.decode()
    assert url(spring) in change and "richer reward" in change
    dashboard = main_part(operator_client.get(url(spring)))
    assert "below the alert threshold" in dashboard and "richer reward" in dashboard


def test_deep_generations_fold_into_one_bar(operator_client):
    campaign = CampaignFactory()
    person = join_at(campaign, "root", timezone.now() - timedelta(days=3))
    for depth in range(1, 45):
        person = bulk_people(campaign, 1, referrer=person, prefix=f"d{depth}-")[0]
    chart = operator_client.get(url(campaign)).context["charts"]["generations"]
    assert len(chart.bars) == 40 and chart.bars[-1].label == "39+"


def test_channels_count_distinct_visitors_and_joins_per_channel():
    campaign = CampaignFactory()
    alice = join_at(campaign, "alice", timezone.now() - timedelta(days=2))
    join_at(campaign, "zoe", timezone.now() - timedelta(days=2))
    Participant.objects.filter(campaign=campaign).update(channel="web")
    for visitor, channel in [("v1", "wechat"), ("v1", "wechat"), ("v2", "wechat"), ("v1", "sms")]:
        click(alice, visitor, channel=channel)
    click(alice, "bot", channel="wechat", is_bot=True)
    bob = join_at(campaign, "bob", timezone.now() - timedelta(days=1), alice)
    Participant.objects.filter(pk=bob.pk).update(channel="wechat")
    for n in range(15):  # a long tail of one-off channels
        click(alice, f"t{n}", channel=f"tail{n:02}")
    rows = {row["channel"]: row for row in channel_breakdown(campaign)}
    assert rows["wechat"] == {"channel": "wechat", "visitors": 2, "joins": 1, "referred": 1}
    assert rows["web"] == {"channel": "web", "visitors": 0, "joins": 2, "referred": 0}
    assert rows["sms"]["visitors"] == 1
    # The busiest 11 (wechat, web, then by name sms, tail00 … tail07), the rest summed.
    assert len(rows) == 12 and "tail07" in rows and "tail08" not in rows
    assert rows["*other"] == {"channel": "*other", "visitors": 7, "joins": 0, "referred": 0}


def test_the_funnel_ends_in_rewards_and_spend_is_shown_against_the_budget(operator_client):
    """A sign-up campaign with a 20.00 welcome reward and a cap of 100.00: bob and carol
    join through alice and qualify at once; each earns a standing reward."""
    from tests.factories import RefereeRewardFactory, join

    campaign = CampaignFactory(
        qualifying_event="signup", budget_cap=Decimal("100.00"), currency="CNY"
    )
    RefereeRewardFactory(campaign=campaign, amount="20.00", currency="CNY")
    alice = join(campaign, "alice")
    join(campaign, "bob", referrer=alice)
    join(campaign, "carol", referrer=alice)
    join(campaign, "dave")  # a seed: neither referred nor rewarded
    data = dashboard_data(campaign)
    assert (data.qualified, data.rewarded) == (2, 2)
    assert [(s.currency, s.total, s.cap, s.percent) for s in data.spend] == [("CNY", 40, 100, 40)]
    html = main_part(operator_client.get(url(campaign)))
    assert "Visitors → joins → qualified → rewarded" in html
    assert "Reward spend" in html and "40 % of the cap" in html
    assert '<meter min="0" max="1" high="0.9" value="0.400000">' in html
