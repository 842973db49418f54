"""Viral growth projection: pure arithmetic, no Django.

With a constant K and cycle time ct, a starting population U0 brings U0·K people in the
first cycle, U0·K² in the second, and so on, so after time t (t/ct cycles):

    U(t) = U0 · (K^(t/ct + 1) − 1) / (K − 1)      and U0 · (t/ct + 1) when K = 1.

This is the formula of David Skok's "Lessons learned – Viral Marketing" and of the other
worked examples in ORACLES.md; tests hold it to every one of them.
"""

from __future__ import annotations

import math


def projected_total(*, u0: float, k: float, cycle_time: float, t: float) -> float:
    """Everyone there after time `t` (the U0 included), starting from `u0` at t = 0.

    `t` and `cycle_time` are in the same unit (hours, days, months: the formula does not
    care). Fractions of a cycle are allowed: the curve is drawn continuous. Infinite when
    the number is beyond a float (K > 1 over thousands of cycles).
    """
    if cycle_time <= 0:
        raise ValueError("cycle_time must be positive")
    if k < 0:
        raise ValueError("K cannot be negative")
    if t < 0:
        raise ValueError("t cannot be negative")
    cycles = t / cycle_time
    # At K = 1 the geometric sum degenerates to one U0 per cycle; near 1 the closed form
    # loses precision to cancellation, so both go the linear way.
    if math.isclose(k, 1.0, rel_tol=1e-12, abs_tol=1e-12):
        return u0 * (cycles + 1)
    try:
        return u0 * (k ** (cycles + 1) - 1) / (k - 1)
    except OverflowError:  # K > 1 over thousands of cycles: more than any population
        return math.inf


def new_per_cycle(*, u0: float, k: float, cycles: int) -> list[float]:
    """People arriving in cycle 0 (the U0 themselves), 1, ..., `cycles`: U0·K^n."""
    return [u0 * k**n for n in range(cycles + 1)]


def amplification(k: float) -> float | None:
    """Total participants each seed ends up bringing, itself included: 1 / (1 − K).

    None (infinite) when K ≥ 1: the campaign grows without bound while K holds.
    """
    if k >= 1:
        return None
    return 1 / (1 - k)
