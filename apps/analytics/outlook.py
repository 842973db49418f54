"""What a K-factor report says about a campaign's future: the K of its recent mature
cohorts (the verdict's "viral or not"), and where the campaign will be in a month if that
K and the cycle time hold (the projection, by apps.analytics.projection's formula)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from .breakdowns import ratio
from .projection import amplification as amplification_of
from .projection import projected_total
from .selectors import KReport

PROJECTION_DAYS = 30
MATURE_COHORT_DAYS = 28  # the verdict's K: the last four weeks of mature cohorts


@dataclass(frozen=True)
class Projection:
    u0: int
    k: float
    cycle_time_days: float
    start_total: int
    days: list[tuple[int, float]]  # (days from today, expected participants)

    @property
    def final(self) -> float:
        return self.days[-1][1]

    @property
    def unbounded(self) -> bool:
        """Beyond any real population: K > 1 compounding over very short cycles."""
        return not math.isfinite(self.final) or self.final > 1e12


@dataclass(frozen=True)
class ViralK:
    """New participants each participant brings, as the verdict and projection use it."""

    k: float
    cohorts: int  # mature cohorts it was measured on; 0: fell back to the report's K

    @property
    def amplification(self) -> float | None:
        return amplification_of(self.k)


def viral_k(report: KReport, days: int = MATURE_COHORT_DAYS) -> ViralK:
    """K of the recent mature cohorts: friends brought within the attribution window over
    the cohorts' size, for the last `days` days of cohorts whose window has closed.

    The report's K = R / N is below 1 by construction (every tree has a seed, and the
    newest participants have not invited anyone yet), so it cannot say "viral"; a mature
    cohort's K can, and it is what each participant brings. Without a mature cohort, the
    report's K.
    """
    mature = [c for c in report.cohorts if c.mature]
    if not mature:
        return ViralK(k=report.k, cohorts=0)
    since = mature[-1].date - timedelta(days=days - 1)
    recent = [c for c in mature if c.date >= since]
    size = sum(c.size for c in recent)
    return ViralK(k=ratio(sum(c.referred for c in recent), size), cohorts=len(recent))


def projection(
    report: KReport, recent: int, k: float | None = None, days: int = PROJECTION_DAYS
) -> Projection | None:
    """Where the campaign will be in `days` days if K (default: the report's) and the
    cycle time hold.

    U0 is `recent`: who joined within the last cycle time, the generation still inviting
    (older participants have mostly done their inviting, and their referees are already
    counted). Today's total grows by U(t) − U0. None without a measured cycle time.
    """
    if not report.cycle_time_hours or report.cycle_time_hours <= 0:
        return None
    k = report.k if k is None else k
    cycle_days = report.cycle_time_hours / 24
    points = [
        (
            t,
            report.participants
            - recent
            + projected_total(u0=recent, k=k, cycle_time=cycle_days, t=t),
        )
        for t in range(days + 1)
    ]
    return Projection(
        u0=recent,
        k=k,
        cycle_time_days=cycle_days,
        start_total=report.participants,
        days=points,
    )
