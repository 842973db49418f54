"""The report's structure: one grouped pass (`joins`) gives the totals, generations and
cohort sizes the standalone selectors compute, and the median by OFFSET takes the count
it is given."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.db import connection
from django.db.models import DurationField, ExpressionWrapper, F
from django.test.utils import CaptureQueriesContext

from apps.analytics.breakdowns import _median_by_offset, cohorts, generations, joins
from apps.analytics.rollup import LIVE, report_rollup, watermarks
from apps.analytics.selectors import kfactor_report
from apps.referrals.models import Participant
from tests.factories import CampaignFactory

from .builders import at, bulk_clicks, join_at

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign():
    return CampaignFactory(attribution_window_days=7, qualifying_event="purchase")


@pytest.fixture
def tree(campaign):
    """Three generations over four local days, some referees qualified, one flagged."""
    seed = join_at(campaign, "seed", at())
    other = join_at(campaign, "other", at(days=1))
    first = join_at(campaign, "first", at(hours=3), seed)
    second = join_at(campaign, "second", at(days=1, hours=2), seed)
    join_at(campaign, "third", at(days=2), first)
    late = join_at(campaign, "late", at(days=3), other)
    Participant.objects.filter(pk__in=[first.pk, second.pk, late.pk]).update(qualified_at=at())
    Participant.objects.filter(pk=second.pk).update(status=Participant.Status.FLAGGED)
    bulk_clicks(seed, 5)
    return campaign


RANGES = [(None, None), (at(days=1).date(), None), (None, at(days=1).date())]


@pytest.mark.parametrize(("date_from", "date_to"), RANGES)
def test_one_pass_gives_what_the_standalone_selectors_give(tree, date_from, date_to):
    counts = joins(tree, date_from, date_to)
    people = Participant.objects.filter(campaign=tree)
    if date_from is not None:
        people = people.filter(joined_at__gte=at(days=1).replace(hour=0))
    if date_to is not None:
        people = people.filter(joined_at__lt=at(days=2).replace(hour=0))
    assert counts.participants == people.count()
    assert counts.referred == people.filter(referrer__isnull=False).count()
    qualified = people.filter(referrer__isnull=False, qualified_at__isnull=False)
    assert counts.qualified == qualified.count()
    assert counts.quality == qualified.filter(status=Participant.Status.ACTIVE).count()
    assert sum(counts.by_depth.values()) == sum(counts.by_day.values()) == people.count()
    assert generations(tree, date_from, date_to) == generations(tree, by_depth=counts.by_depth)
    today = date(2030, 1, 1)
    assert cohorts(tree, date_from, date_to, today=today) == cohorts(
        tree, date_from, date_to, today=today, sizes=counts.by_day
    )


def test_the_whole_range_in_numbers(tree):
    counts = joins(tree, None, None)
    assert (counts.participants, counts.referred, counts.qualified, counts.quality) == (6, 4, 3, 2)
    assert counts.by_depth == {0: 2, 1: 3, 2: 1}
    assert counts.by_day == {
        at().date(): 2,
        at(days=1).date(): 2,
        at(days=2).date(): 1,
        at(days=3).date(): 1,
    }


def test_the_median_uses_the_count_it_is_given(campaign):
    alice = join_at(campaign, "alice", at())
    for n, minutes in enumerate((7, 1, 400, 95, 33)):
        join_at(campaign, f"f{n}", at(hours=minutes / 60), alice)
    pairs = Participant.objects.filter(campaign=campaign, referrer__isnull=False)
    gap = ExpressionWrapper(F("joined_at") - F("referrer__joined_at"), output_field=DurationField())
    pairs = pairs.annotate(gap=gap).values_list("gap", flat=True)
    assert _median_by_offset(pairs) == _median_by_offset(pairs, count=5) == timedelta(minutes=33)
    # The count decides which rows are the middle: given 4, the middle two of the first 4.
    assert _median_by_offset(pairs, count=4) == timedelta(minutes=(7 + 33) / 2)
    assert _median_by_offset(pairs, count=0) is None


def test_the_report_reads_the_participants_in_three_queries(tree):
    """The grouped pass, the cohorts' referees and the median (and the visitors' one)."""
    with CaptureQueriesContext(connection) as queries:
        kfactor_report(tree)
    participant_queries = [q for q in queries if "referrals_participant" in q["sql"]]
    assert len(participant_queries) == 3


@pytest.mark.skipif(connection.vendor == "postgresql", reason="elsewhere than PostgreSQL")
def test_elsewhere_nothing_is_rolled_up_and_the_report_is_live(tree):
    assert report_rollup() == {"participants": 0, "clicks": 0}
    assert watermarks() == LIVE
    assert kfactor_report(tree).participants == 6
