"""Every published worked example of ORACLES.md, recomputed by Fission's own code."""

from __future__ import annotations

import pytest

from apps.analytics.projection import amplification, new_per_cycle, projected_total
from apps.analytics.selectors import Figures, kfactor_report
from tests.factories import CampaignFactory

from .builders import bulk_clicks, bulk_people, join_at

pytestmark = pytest.mark.django_db


# --- K = i × c ---------------------------------------------------------------------------


def test_morgan_brown_viral_coefficient():
    """i = 3.5 invites per user, c = 20 %: K = 0.7; users per seed after generations
    0..3: 1, 1.70, 2.19, 2.533; amplification 3.33."""
    ten_users = Figures(participants=10, referred=7, visitors=35)
    assert (ten_users.i, ten_users.c, ten_users.k) == (3.5, 0.2, 0.7)
    per_seed = [projected_total(u0=1, k=0.7, cycle_time=1, t=n) for n in range(4)]
    assert per_seed == pytest.approx([1, 1.70, 2.19, 2.533])
    assert amplification(0.7) == pytest.approx(3.33, abs=0.005)


def test_morgan_brown_through_the_report():
    """The same figures measured on a campaign: 3 seeds, 7 referees, 35 visitors."""
    campaign = CampaignFactory()
    seeds = bulk_people(campaign, 3)
    bulk_people(campaign, 7, referrer=seeds[0], prefix="r")
    bulk_clicks(seeds[0], 35)
    report = kfactor_report(campaign)
    assert (report.i, report.c, report.k) == (3.5, 0.2, 0.7)
    assert report.amplification == pytest.approx(3.33, abs=0.005)


def test_lean_analytics_through_the_report():
    """2,000 users sent 5,000 invites, 500 accepted: i = 2.5, c = 0.1, K = 0.25.

    In the report's terms, 1,500 seeds and 500 referees make the 2,000 users, and the
    5,000 invites are the 5,000 visitors who arrived through them.
    """
    campaign = CampaignFactory()
    seeds = bulk_people(campaign, 1500)
    bulk_people(campaign, 500, referrer=seeds[0], prefix="r")
    bulk_clicks(seeds[0], 5000)
    report = kfactor_report(campaign)
    assert (report.participants, report.visitors, report.referred) == (2000, 5000, 500)
    assert (report.i, report.c, report.k) == (2.5, 0.1, 0.25)


def test_chinese_operations_guide_k_factor():
    """100 users sent 500 invites, 100 invitees joined: i = 5, c = 0.2, K = 1.0; at 30 %
    conversion K = 1.5. At K ≥ 1 there is no finite amplification."""
    guide = Figures(participants=100, referred=100, visitors=500)
    assert (guide.i, guide.c, guide.k) == (5.0, 0.2, 1.0)
    better = Figures(participants=100, referred=150, visitors=500)
    assert (better.c, better.k) == (0.3, 1.5)
    assert amplification(1.0) is None and amplification(1.5) is None


def test_yunderson_viral_loop_generations():
    """K = 3 from one seed: generations of 1, 3, 9, 27, 81 (the model and a real tree)."""
    assert new_per_cycle(u0=1, k=3, cycles=4) == [1, 3, 9, 27, 81]
    campaign = CampaignFactory()
    generation = [join_at(campaign, "seed", campaign.created_at)]
    for n in range(1, 5):
        generation = [
            person
            for parent in generation
            for person in bulk_people(campaign, 3, referrer=parent, prefix=f"g{n}-{parent.pk}-")
        ]
    report = kfactor_report(campaign)
    assert [(g.generation, g.size) for g in report.generations] == [
        (0, 1), (1, 3), (2, 9), (3, 27), (4, 81),
    ]  # fmt: skip
    assert [g.k for g in report.generations] == [3.0, 3.0, 3.0, 3.0, 0.0]


# --- Growth over time with cycle time ct ------------------------------------------------


@pytest.mark.parametrize(
    ("source", "u0", "k", "cycle_time", "t", "expected"),
    [
        ("Skok, ct = 2 days", 10, 2, 2, 20, 20_470),
        ("Skok, ct = 1 day", 10, 2, 1, 20, 20_971_510),
        ("Ekman, K = 2", 1_000, 2, 2, 10, 63_000),
        ("Ekman, K = 4", 1_000, 4, 2, 10, 1_365_000),
        ("Ekman, ct = 1 month", 1_000, 2, 1, 10, 2_047_000),
    ],
)
def test_growth_over_time(source, u0, k, cycle_time, t, expected):
    assert projected_total(u0=u0, k=k, cycle_time=cycle_time, t=t) == pytest.approx(expected)


def test_lawler_viral_loop_per_cycle():
    """U0 = 10, K = 2: new 10, 20, 40, 80, 160, 320; totals 10, 30, 70, 150, 310, 630."""
    assert new_per_cycle(u0=10, k=2, cycles=5) == [10, 20, 40, 80, 160, 320]
    totals = [projected_total(u0=10, k=2, cycle_time=1, t=n) for n in range(6)]
    assert totals == pytest.approx([10, 30, 70, 150, 310, 630])


def test_k_of_exactly_one_grows_by_u0_each_cycle():
    """The Chinese guide's K = 1: U0 · (t/ct + 1)."""
    assert projected_total(u0=100, k=1.0, cycle_time=3, t=30) == 1_100
    assert projected_total(u0=100, k=1 + 1e-15, cycle_time=3, t=30) == pytest.approx(1_100)


def test_projection_refuses_nonsense():
    with pytest.raises(ValueError, match="cycle_time"):
        projected_total(u0=1, k=0.5, cycle_time=0, t=1)
    with pytest.raises(ValueError, match="negative"):
        projected_total(u0=1, k=-0.5, cycle_time=1, t=1)


def test_k_below_one_levels_off_at_the_amplification():
    far = projected_total(u0=1, k=0.7, cycle_time=1, t=200)
    assert far == pytest.approx(amplification(0.7))
