"""Every definition of DESIGN.md's "K-factor: the definitions" on hand-computed trees."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import DurationField, ExpressionWrapper, F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.analytics.breakdowns import Median, _median_by_offset, cycle_time_hours
from apps.analytics.selectors import figures, kfactor_report, report_transaction
from apps.referrals.models import Participant
from tests.factories import CampaignFactory

from .builders import T0, at, bulk_clicks, bulk_people, click, join_at

pytestmark = pytest.mark.django_db

KEYS = {
    "participants", "referred", "seeds", "visitors", "i", "c", "k", "k_qualified",
    "generations", "cohorts", "cycle_time_hours", "amplification",
    "k_quality",  # beside the contract's fields (issue 7)
}  # fmt: skip


@pytest.fixture
def campaign():
    # A purchase campaign: referees qualify only when a test says so (in a sign-up
    # campaign the join itself qualifies them).
    return CampaignFactory(attribution_window_days=7, qualifying_event="purchase")


def test_an_empty_campaign_reports_zeros_not_errors(campaign):
    report = kfactor_report(campaign).as_dict()
    assert set(report) == KEYS
    assert report == {
        "participants": 0, "referred": 0, "seeds": 0, "visitors": 0, "i": 0.0, "c": 0.0,
        "k": 0.0, "k_qualified": 0.0, "generations": [], "cohorts": [],
        "cycle_time_hours": None, "amplification": 1.0, "k_quality": 0.0,
    }  # fmt: skip


def test_seeds_only(campaign):
    for name in ("alice", "bob", "carol"):
        join_at(campaign, name, at())
    report = kfactor_report(campaign).as_dict()
    assert (report["participants"], report["referred"], report["seeds"]) == (3, 0, 3)
    assert report["k"] == 0.0 and report["k_qualified"] == 0.0
    assert report["generations"] == [{"generation": 0, "size": 3, "k": 0.0}]
    assert report["cohorts"] == [
        {"date": "2025-03-01", "size": 3, "referred": 0, "k": 0.0, "mature": True}
    ]
    assert report["cycle_time_hours"] is None
    assert report["amplification"] == 1.0


def test_a_chain(campaign):
    """alice → bob (10 h later) → carol (20 h after bob) → dave (30 h after carol)."""
    alice = join_at(campaign, "alice", at())
    bob = join_at(campaign, "bob", at(hours=10), alice)
    carol = join_at(campaign, "carol", at(hours=30), bob)
    join_at(campaign, "dave", at(hours=60), carol)
    # Four distinct visitors; bots, a repeat visit and a click without a cookie don't count.
    for person, visitor in ((alice, "v1"), (alice, "v2"), (bob, "v3"), (carol, "v4")):
        click(person, visitor, at(hours=1))
    click(alice, "v1", at(hours=2))
    click(alice, "", at(hours=2))
    click(bob, "preview", at(hours=2), is_bot=True)
    report = kfactor_report(campaign)
    assert (report.participants, report.referred, report.seeds, report.visitors) == (4, 3, 1, 4)
    assert (report.i, report.c, report.k) == (1.0, 0.75, 0.75)
    assert report.k == pytest.approx(report.i * report.c)
    assert [(g.generation, g.size, g.k) for g in report.generations] == [
        (0, 1, 1.0), (1, 1, 1.0), (2, 1, 1.0), (3, 1, 0.0),
    ]  # fmt: skip
    assert report.cycle_time_hours == 20.0  # the middle of 10, 20, 30
    assert report.amplification == 4.0  # 1 / (1 − 0.75): the whole chain per seed


def test_a_chain_cohorts_by_local_day(campaign):
    alice = join_at(campaign, "alice", at())  # 1 March 10:00
    bob = join_at(campaign, "bob", at(hours=10), alice)  # 1 March 20:00
    carol = join_at(campaign, "carol", at(hours=30), bob)  # 2 March 16:00
    join_at(campaign, "dave", at(hours=60), carol)  # 3 March 22:00
    assert [(c.date, c.size, c.referred, c.k) for c in kfactor_report(campaign).cohorts] == [
        (date(2025, 3, 1), 2, 2, 1.0),
        (date(2025, 3, 2), 1, 1, 1.0),
        (date(2025, 3, 3), 1, 0, 0.0),
    ]


def test_a_star_with_an_even_count_takes_the_mean_of_the_two_middle_gaps(campaign):
    alice = join_at(campaign, "alice", at())
    for n, hours in enumerate((9, 1, 5, 2)):
        join_at(campaign, f"friend{n}", at(hours=hours), alice)
    report = kfactor_report(campaign)
    assert (report.participants, report.referred, report.seeds) == (5, 4, 1)
    assert report.k == 0.8
    assert [(g.size, g.k) for g in report.generations] == [(1, 4.0), (4, 0.0)]
    assert report.cycle_time_hours == 3.5  # (2 + 5) / 2
    assert report.amplification == 5.0


def test_referees_outside_the_attribution_window_leave_the_cohort_but_not_k(campaign):
    """Window 7 days: a referee 7 days later still counts for the cohort, 8 days not."""
    alice = join_at(campaign, "alice", at())
    bob = join_at(campaign, "bob", at(hours=1))
    join_at(campaign, "r1", at(days=1), alice)
    join_at(campaign, "r2", at(days=7), alice)  # exactly the window: counts
    join_at(campaign, "r3", at(days=8), alice)  # outside
    join_at(campaign, "r4", at(days=3), bob)
    report = kfactor_report(campaign)
    first = report.cohorts[0]
    assert (first.date, first.size, first.referred, first.k) == (date(2025, 3, 1), 2, 3, 1.5)
    assert all(c.referred == 0 for c in report.cohorts[1:])
    assert report.k == round(4 / 6, 6)  # K counts every referee, window or not
    # Gaps 24, 71 (bob joined an hour late), 168, 192 hours.
    assert report.cycle_time_hours == (71 + 168) / 2


def test_cohorts_younger_than_the_window_are_immature(campaign):
    today = date(2025, 3, 20)
    for days in (0, 11, 12, 13, 19):  # joined on 1, 12, 13, 14 and 20 March
        join_at(campaign, f"p{days}", at(days=days))
    mature = {c.date: c.mature for c in kfactor_report(campaign, today=today).cohorts}
    assert mature == {
        date(2025, 3, 1): True,
        date(2025, 3, 12): True,  # 12 + 7 = 19 March has ended
        date(2025, 3, 13): False,  # 13 + 7 = 20 March is today
        date(2025, 3, 14): False,
        date(2025, 3, 20): False,
    }


def test_a_cohort_from_yesterday_is_immature_by_default(campaign):
    join_at(campaign, "alice", timezone.now() - timedelta(days=1))
    assert kfactor_report(campaign).cohorts[0].mature is False


def test_cohorts_follow_the_sites_time_zone(campaign, settings):
    tz = timezone.get_default_timezone()
    join_at(campaign, "late", datetime(2025, 3, 1, 23, 30, tzinfo=tz))
    join_at(campaign, "early", datetime(2025, 3, 2, 0, 30, tzinfo=tz))
    assert [c.date for c in kfactor_report(campaign).cohorts] == [
        date(2025, 3, 1),
        date(2025, 3, 2),
    ]


def test_in_a_signup_campaign_every_referee_qualifies_on_joining():
    campaign = CampaignFactory(qualifying_event="signup")
    alice = join_at(campaign, "alice", at())
    for n in range(2):
        join_at(campaign, f"f{n}", at(hours=n + 1), alice)
    report = kfactor_report(campaign)
    assert report.k_qualified == report.k == pytest.approx(2 / 3, abs=1e-6)


def test_qualified_k_counts_only_referees_who_qualified(campaign):
    alice = join_at(campaign, "alice", at())
    people = [join_at(campaign, f"f{n}", at(hours=n + 1), alice) for n in range(3)]
    Participant.objects.filter(pk__in=[people[0].pk, people[2].pk]).update(qualified_at=at(days=2))
    Participant.objects.filter(pk=alice.pk).update(qualified_at=at(days=2))  # a seed: not a referee
    report = kfactor_report(campaign)
    assert report.k == 0.75 and report.k_qualified == 0.5


def test_a_date_range_counts_joins_and_visits_in_it_only(campaign):
    """Range 2–3 March: bob and carol joined then, both referred: K = 1, amplification
    is infinite (null); visitors are the visits of those days."""
    alice = join_at(campaign, "alice", at())
    bob = join_at(campaign, "bob", at(days=1), alice)
    join_at(campaign, "carol", at(days=2), bob)
    join_at(campaign, "dave", at(days=5), bob)
    click(alice, "v-before", at(hours=1))
    click(alice, "v-in", at(days=1, hours=-1))
    click(bob, "v-in2", at(days=2, hours=-1))
    report = kfactor_report(campaign, date(2025, 3, 2), date(2025, 3, 3))
    assert (report.participants, report.referred, report.seeds, report.visitors) == (2, 2, 0, 2)
    assert report.k == 1.0 and report.amplification is None
    assert [(g.generation, g.size) for g in report.generations] == [(0, 0), (1, 1), (2, 1)]
    assert [c.date for c in report.cohorts] == [date(2025, 3, 2), date(2025, 3, 3)]
    # bob's cohort counts carol (in range) and dave (after it, but within 7 days).
    assert report.cohorts[0].referred == 2
    assert report.cycle_time_hours == 24.0


def test_figures_match_the_report_for_the_same_range(campaign):
    alice = join_at(campaign, "alice", at())
    join_at(campaign, "bob", at(days=1), alice)
    click(alice, "v1", at(hours=2))
    click(alice, "v2", at(days=1))
    window = (date(2025, 3, 1), date(2025, 3, 7))
    report, small = kfactor_report(campaign, *window), figures(campaign, *window)
    assert (small.participants, small.referred, small.visitors) == (
        report.participants,
        report.referred,
        report.visitors,
    )
    assert (small.i, small.c, small.k) == (report.i, report.c, report.k)


def test_other_campaigns_do_not_leak_in(campaign):
    other = CampaignFactory()
    alice = join_at(other, "alice", at())
    join_at(other, "bob", at(hours=1), alice)
    click(alice, "v1")
    join_at(campaign, "carol", at())
    report = kfactor_report(campaign)
    assert (report.participants, report.referred, report.visitors) == (1, 0, 0)


def test_the_report_is_a_fixed_number_of_queries(campaign):
    """No participant is loaded: the query count does not grow with the tree."""

    def count_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            kfactor_report(campaign)
        return sum("referrals_" in query["sql"] for query in queries)

    seed = join_at(campaign, "seed", at())
    join_at(campaign, "first", at(hours=1), seed)
    small = count_queries()
    referees = bulk_people(campaign, 200, referrer=seed, when=at(hours=5))
    bulk_people(campaign, 300, referrer=referees[0], when=at(days=2), prefix="q")
    bulk_clicks(seed, 50)
    assert count_queries() == small <= 7


def test_the_portable_median_agrees_with_percentile_cont(campaign):
    """SQLite's path (OFFSET into the sorted gaps) gives PostgreSQL's answer."""
    alice = join_at(campaign, "alice", at())
    for n, minutes in enumerate((7, 1, 400, 95, 33, 1000)):
        join_at(campaign, f"f{n}", at(hours=minutes / 60), alice)
    pairs = Participant.objects.filter(campaign=campaign, referrer__isnull=False)
    gap = ExpressionWrapper(F("joined_at") - F("referrer__joined_at"), output_field=DurationField())
    portable = _median_by_offset(pairs.annotate(gap=gap).values_list("gap", flat=True))
    assert portable == timedelta(minutes=(33 + 95) / 2)
    if connection.vendor == "postgresql":
        assert pairs.aggregate(m=Median(gap))["m"] == portable
    assert cycle_time_hours(campaign) == round((33 + 95) / 2 / 60, 3)


def test_t0_is_in_the_sites_time_zone():
    assert T0.tzinfo == timezone.get_default_timezone()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="work_mem is PostgreSQL's")
def test_the_report_transaction_raises_work_mem(settings):
    settings.FISSION = {**settings.FISSION, "REPORT_WORK_MEM": "48MB"}
    with report_transaction(), connection.cursor() as cursor:
        cursor.execute("SHOW work_mem")
        assert cursor.fetchone()[0] == "48MB"
