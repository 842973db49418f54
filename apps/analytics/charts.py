"""Geometry for the dashboard's server-drawn SVG charts (no JavaScript, no CDN).

Python computes coordinates in a fixed viewBox; the templates draw them, and CSS scales
the SVG to the column's width, so a chart looks the same on any laptop. Colours and
line styles are CSS classes (the Content-Security-Policy allows no inline style), and
every point carries a <title> so hovering shows its exact value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date

WIDTH = 720  # a full-width chart; HALF for one of two side by side, so text keeps its size
HALF = 480
HEIGHT = 200
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 12, 26  # room for the axis labels
X_LABELS = 8  # at most this many dates under a time axis: 90 days stay legible


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    title: str


@dataclass(frozen=True)
class Series:
    label: str
    css: str  # a class of dashboard.css: colour and dashes
    paths: list[str]  # polyline "x,y x,y ..." strings; a None value breaks the line
    points: list[Point]


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Rule:
    """A horizontal reference line (the alert threshold, K = 1)."""

    y: float
    label: str
    css: str


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value_label: str
    title: str


@dataclass
class Chart:
    title: str
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM
    series: list[Series] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    empty: bool = False


def nice_max(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 × 10^n at or above `value` (an axis that reads well)."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude + 1e-12:
            return step * magnitude
    return 10 * magnitude  # pragma: no cover (the loop ends at 10)


def nice_step(value: float) -> float:
    """The largest 1, 2, 2.5 or 5 × 10^n at or below `value`: a tick spacing that reads."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    return max(step * magnitude for step in (1, 2, 2.5, 5) if step * magnitude <= value + 1e-12)


def _ticks(top: float) -> list[float]:
    """0 to `top` in 4 to 6 even steps."""
    step = nice_step(top / 4)
    count = round(top / step)
    return [step * n for n in range(count + 1)]


def _number(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value == int(value):
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")


def time_chart(
    title: str,
    dates: Sequence[date],
    series: Sequence[tuple[str, str, Sequence[float | None]]],
    *,
    fmt: Callable[[float], str] = _number,
    rules: Sequence[tuple[float, str, str]] = (),
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Chart:
    """Lines over days: `series` is (label, css class, one value or None per date)."""
    chart = Chart(
        title=title, width=width, right=width - RIGHT, height=height, bottom=height - BOTTOM
    )
    values = [v for _, _, vs in series for v in vs if v is not None]
    if not dates or not values:
        chart.empty = True
        return chart
    top_value = nice_max(max([*values, *(r[0] for r in rules)]))
    span = max(len(dates) - 1, 1)

    def x_at(index: int) -> float:
        return round(chart.left + (chart.right - chart.left) * index / span, 1)

    def y_at(value: float) -> float:
        return round(chart.bottom - (chart.bottom - chart.top) * value / top_value, 1)

    for label, css, vals in series:
        paths: list[str] = []
        current: list[str] = []
        points: list[Point] = []
        for index, value in enumerate(vals):
            if value is None:
                if current:
                    paths.append(" ".join(current))
                current = []
                continue
            x, y = x_at(index), y_at(value)
            current.append(f"{x},{y}")
            points.append(Point(x, y, f"{dates[index].isoformat()} {label}: {fmt(value)}"))
        if current:
            paths.append(" ".join(current))
        chart.series.append(Series(label=label, css=css, paths=paths, points=points))
    step = max(1, math.ceil(len(dates) / X_LABELS))
    chart.x_ticks = [
        Tick(x_at(index), dates[index].strftime("%m-%d")) for index in range(0, len(dates), step)
    ]
    chart.y_ticks = [Tick(y_at(value), fmt(value)) for value in _ticks(top_value)]
    chart.rules = [Rule(y_at(value), label, css) for value, label, css in rules]
    return chart


def bar_chart(
    title: str,
    bars: Sequence[tuple[str, float, str]],
    *,
    fmt: Callable[[float], str] = _number,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Chart:
    """Vertical bars: (label under the bar, value, hover text)."""
    chart = Chart(
        title=title, width=width, right=width - RIGHT, height=height, bottom=height - BOTTOM
    )
    if not bars:
        chart.empty = True
        return chart
    top_value = nice_max(max(value for _, value, _ in bars))
    slot = (chart.right - chart.left) / len(bars)
    gap = min(slot * 0.2, 8)
    for index, (label, value, title_text) in enumerate(bars):
        bar_height = (chart.bottom - chart.top) * value / top_value
        chart.bars.append(
            Bar(
                x=round(chart.left + slot * index + gap / 2, 1),
                y=round(chart.bottom - bar_height, 1),
                width=round(slot - gap, 1),
                height=round(bar_height, 1),
                label=label,
                value_label=fmt(value),
                title=title_text,
            )
        )
    # Label every bar while they fit, then every n-th (deep chains have many generations).
    step = max(1, math.ceil(len(bars) / 24))
    chart.x_ticks = [Tick(round(b.x + b.width / 2, 1), b.label) for b in chart.bars[::step]]
    chart.y_ticks = [
        Tick(round(chart.bottom - (chart.bottom - chart.top) * value / top_value, 1), fmt(value))
        for value in _ticks(top_value)
    ]
    return chart


def funnel(title: str, steps: Sequence[tuple[str, int]], *, width: int = WIDTH) -> Chart:
    """Horizontal bars, each step's width against the first, with its share of the one
    before ("visitors → joins: 29 %")."""
    row, label_width = 34, 150
    chart = Chart(
        title=title,
        width=width,
        height=row * len(steps) + 8,
        left=label_width,
        right=width - 110,
        top=4,
        bottom=row * len(steps) + 4,
    )
    if all(value == 0 for _, value in steps):
        chart.empty = True
        return chart
    widest = max(value for _, value in steps) or 1
    previous: int | None = None
    for index, (label, value) in enumerate(steps):
        share = "" if previous is None else (f"{value / previous:.0%}" if previous else "–")
        bar_width = (chart.right - chart.left) * value / widest
        chart.bars.append(
            Bar(
                x=chart.left,
                y=chart.top + row * index + 4,
                width=round(max(bar_width, 1), 1),
                height=row - 10,
                label=label,
                value_label=f"{value:,}" + (f" ({share})" if share else ""),
                title=f"{label}: {value:,}",
            )
        )
        previous = value
    return chart
