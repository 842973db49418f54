"""The benchmark harness: pairs of (subject, baseline) measured alternately in one run.

Every figure is a ratio against a baseline measured on the same machine in the same run,
so the figures say something about the code, not about the machine. Each pair runs
subject, baseline, subject, baseline, … three times and the median ratio is reported
(after one unmeasured pair, for a figure whose server starts just before it: `warmup`).
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROUNDS = 3


@dataclass
class Figure:
    """One row of the table.

    `subject` and `baseline` each run one measurement and return a number: a rate
    (operations per second, `higher_is_better`) or a time in seconds (lower is better).
    The ratio is subject / baseline; `target` is the bound the ratio must meet.

    A figure held to a fixed bound rather than to a measurement (memory: "≤ 64 MB") has
    the bound as its baseline (`baseline` returns it; `baseline_name` says so), target 1,
    and `target_label` to print the bound in the target column. A figure measured only to
    compare with the one held to the target (a design not chosen) has `target` None and
    says why in `target_label`.

    With `warmup`, subject and baseline run once before the measured rounds, unmeasured:
    a server started for the figure is then measured as it serves in production, its
    processes past their first requests (imports, connections, what they remember).
    """

    name: str
    workload: str
    baseline_name: str
    subject: Callable[[], float]
    baseline: Callable[[], float]
    target: float | None
    higher_is_better: bool = True
    unit: str = "ops/s"
    notes: list[str] = field(default_factory=list)
    target_label: str = ""
    warmup: bool = False


@dataclass
class Result:
    name: str
    workload: str
    baseline_name: str
    unit: str
    subject: float
    baseline: float
    ratio: float
    target: str
    met: bool | None  # None: a comparison, held to no target
    ratios: list[float]
    notes: list[str]


def rate(operation: Callable[[], object], *, seconds: float = 2.0, warmup: int = 20) -> float:
    """Operations per second of `operation`, run back to back for about `seconds`."""
    for _ in range(warmup):
        operation()
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        operation()
        count += 1
        if count % 8 == 0 and time.perf_counter() >= deadline:
            break
    return count / (time.perf_counter() - started)


def timed(operation: Callable[[], object], *, repeat: int = 3) -> float:
    """The best of `repeat` wall-clock times of `operation`, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        operation()
        best = min(best, time.perf_counter() - started)
    return best


def measure(figure: Figure) -> Result:
    subjects: list[float] = []
    baselines: list[float] = []
    ratios: list[float] = []
    if figure.warmup:
        figure.subject()
        figure.baseline()
    for _ in range(ROUNDS):
        s = figure.subject()
        b = figure.baseline()
        subjects.append(s)
        baselines.append(b)
        ratios.append(s / b if b else float("inf"))
    ratio = statistics.median(ratios)
    if figure.target is None:
        met, target = None, figure.target_label
    else:
        met = ratio >= figure.target if figure.higher_is_better else ratio <= figure.target
        target = ("≥ " if figure.higher_is_better else "≤ ") + (
            figure.target_label or f"{figure.target:g}"
        )
    return Result(
        name=figure.name,
        workload=figure.workload,
        baseline_name=figure.baseline_name,
        unit=figure.unit,
        subject=statistics.median(subjects),
        baseline=statistics.median(baselines),
        ratio=ratio,
        target=target,
        met=met,
        ratios=ratios,
        notes=figure.notes,
    )


def machine() -> str:
    cpus = "?"
    try:
        with open("/proc/cpuinfo") as f:
            models = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpus = f"{len(models)} × {models[0]}" if models else cpus
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {cpus}, Python {platform.python_version()}"


def _number(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.1f} ms"
    if unit == "MB":
        return f"{value:.1f} MB"
    return f"{value:,.0f} {unit}"


def table(results: list[Result]) -> str:
    lines = [
        "| figure | workload | subject | baseline (same run) | ratio | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.workload} | {_number(r.subject, r.unit)} | "
            f"{r.baseline_name}: {_number(r.baseline, r.unit)} | {r.ratio:.3f} | {r.target} | "
            f"{'—' if r.met is None else 'yes' if r.met else 'NO'} |"
        )
    return "\n".join(lines)


def write(results: list[Result], json_path: Path, readme: Path | None) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = f"Measured {when} on {machine()}.\n\n{table(results)}\n"
    json_path.write_text(
        json.dumps(
            {"measured_at": when, "machine": machine(), "results": [asdict(r) for r in results]},
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )
    if readme is not None:
        replace_marked(readme, "bench", text)
    return text


def replace_marked(path: Path, marker: str, text: str) -> None:
    """Put `text` between `<!-- {marker}:start -->` and `<!-- {marker}:end -->` in `path`
    (README's tables), if both marks are there."""
    if not path.exists():
        return
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    body = path.read_text()
    if start in body and end in body:
        head, rest = body.split(start, 1)
        _, tail = rest.split(end, 1)
        path.write_text(f"{head}{start}\n{text}{end}{tail}")
