"""The chart geometry and the dashboard's projection: plain functions, no database."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from apps.analytics.breakdowns import Cohort
from apps.analytics.charts import bar_chart, funnel, nice_max, nice_step, time_chart
from apps.analytics.outlook import projection, viral_k
from apps.analytics.projection import projected_total
from apps.analytics.selectors import KReport


def report(**fields) -> KReport:
    base = {
        "participants": 100, "referred": 50, "seeds": 50, "visitors": 200,
        "i": 2.0, "c": 0.25, "k": 0.5, "k_qualified": 0.3, "cycle_time_hours": 48.0,
        "amplification": 2.0,
    }  # fmt: skip
    return KReport(**{**base, **fields})


@pytest.mark.parametrize(
    ("value", "top"), [(0, 1), (0.07, 0.1), (0.3, 0.5), (0.8, 1), (3.5, 5), (1234, 2000)]
)
def test_axes_end_on_a_round_number(value, top):
    assert nice_max(value) == pytest.approx(top)


@pytest.mark.parametrize(("value", "step"), [(0.0625, 0.05), (0.25, 0.25), (125, 100), (3, 2.5)])
def test_ticks_are_even_steps(value, step):
    assert nice_step(value) == pytest.approx(step)


def test_a_time_chart_breaks_its_line_where_there_is_no_value():
    days = [date(2025, 3, 1) + timedelta(days=n) for n in range(5)]
    chart = time_chart("K", days, [("K", "line-k", [0.5, 0.6, None, 0.4, 0.5])])
    (series,) = chart.series
    assert len(series.paths) == 2 and len(series.points) == 4
    assert series.points[0].title == "2025-03-01 K: 0.5"
    assert chart.y_ticks[0].label == "0" and chart.y_ticks[-1].label == "1"
    # Higher values are drawn higher (smaller y), within the plot box.
    assert chart.top <= series.points[1].y < series.points[0].y <= chart.bottom


def test_ninety_days_get_a_handful_of_date_labels():
    days = [date(2025, 1, 1) + timedelta(days=n) for n in range(90)]
    chart = time_chart("K", days, [("K", "line-k", [0.5] * 90)])
    assert len(chart.x_ticks) <= 9 and chart.x_ticks[0].label == "01-01"


def test_empty_charts_say_so():
    assert time_chart("K", [], []).empty
    assert time_chart("K", [date(2025, 1, 1)], [("K", "k", [None])]).empty
    assert bar_chart("gens", []).empty
    assert funnel("funnel", [("visitors", 0), ("joins", 0)]).empty


def test_the_funnel_shows_each_steps_share_of_the_one_before():
    chart = funnel("f", [("visitors", 200), ("joined", 50), ("qualified", 20)])
    assert [b.value_label for b in chart.bars] == ["200", "50 (25%)", "20 (40%)"]
    assert chart.bars[0].width > chart.bars[1].width > chart.bars[2].width


def test_the_projection_starts_at_todays_total_and_follows_the_model():
    plan = projection(report(), recent=10, days=30)
    assert plan is not None and plan.days[0] == (0, 100)
    assert plan.cycle_time_days == 2
    expected = 100 - 10 + projected_total(u0=10, k=0.5, cycle_time=2, t=30)
    assert plan.final == pytest.approx(expected)
    assert plan.final == pytest.approx(110, abs=0.01)  # K = 0.5: the last 10 bring 10 more


def test_a_viral_campaign_keeps_growing():
    plan = projection(report(k=1.5), recent=10, days=30)
    assert plan.final > 100 + 10 * 1.5**14


def test_no_projection_without_a_cycle_time():
    assert projection(report(cycle_time_hours=None, referred=0, k=0.0), recent=0) is None


def test_an_explosive_projection_is_infinite_not_an_error():
    assert projected_total(u0=10, k=3, cycle_time=0.001, t=30) == float("inf")
    plan = projection(report(k=3.0, cycle_time_hours=0.01), recent=10)
    assert plan is not None and plan.unbounded


def cohort(day: int, size: int, referred: int, mature: bool = True) -> Cohort:
    return Cohort(date(2025, 3, 1) + timedelta(days=day), size, referred, referred / size, mature)


def test_viral_k_is_the_k_of_the_recent_mature_cohorts():
    cohorts = [
        cohort(0, 10, 1),  # more than 28 days before the newest mature one: left out
        cohort(30, 4, 6),
        cohort(40, 6, 9),
        cohort(50, 5, 0, mature=False),  # still growing: left out
    ]
    current = viral_k(report(cohorts=cohorts, k=0.6))
    assert (current.k, current.cohorts) == (1.5, 2)  # 15 friends from 10 people
    assert current.amplification is None


def test_viral_k_falls_back_to_the_reports_k_before_any_cohort_matures():
    current = viral_k(report(cohorts=[cohort(0, 3, 1, mature=False)], k=0.25))
    assert (current.k, current.cohorts) == (0.25, 0)
    assert current.amplification == pytest.approx(4 / 3)


def test_the_projection_uses_the_k_it_is_given():
    assert projection(report(), recent=10, k=2.0).final > projection(report(), recent=10).final
