"""The report suites: the K-factor report (live and from the daily snapshot) and the
finance export (CSV speed against a bare COPY, and the memory it takes)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from django.core.management import call_command
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from apps.analytics import tasks as analytics_tasks
from apps.analytics.dashboard import snapshot_report
from apps.analytics.rollup import report_rollup
from apps.analytics.selectors import kfactor_report
from apps.campaigns.models import Campaign
from apps.exports.report import REPORT_FIELDS, ReportFilters, report_queryset
from apps.referrals.models import Click
from apps.rewards.models import Reward

from .harness import Figure, timed
from .suites import Context

ROOT = Path(__file__).resolve().parents[2]
MEMORY_BOUND_MB = 64.0


def _count_clicks() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM referrals_click")
        cursor.fetchone()


def kfactor(ctx: Context) -> list[Figure]:
    """The biggest campaign (the viral one: most participants and clicks), live and from
    its snapshot, against COUNT(*) over every click of every campaign."""
    campaign = (
        Campaign.objects.filter(pk__in=[c.pk for c in ctx.campaigns])
        .annotate(n=Count("participants"))
        .order_by("-n")
        .first()
    )
    assert campaign is not None
    participants = campaign.n  # type: ignore[attr-defined]
    clicks = Click.objects.filter(campaign=campaign).count()
    # Production's steady state: beat rolls the report's tallies up every minute, so a
    # report counts at most a minute of joins and clicks live (earlier suites and runs
    # joined and clicked thousands).
    report_rollup()
    total_clicks = Click.objects.count()
    # The nightly task's body, for yesterday: what the dashboard reads.
    yesterday = timezone.localdate() - timedelta(days=1)
    analytics_tasks.snapshot_campaign(campaign.pk, yesterday.isoformat())
    stored = snapshot_report(campaign)
    assert stored is not None, "the snapshot keeps the report"
    workload = f"{campaign.slug} (viral): {participants:,} participants, {clicks:,} clicks"
    return [
        Figure(
            name="K-factor report of one campaign (live)",
            workload=workload,
            baseline_name=f"COUNT(*) over all {total_clicks:,} clicks",
            subject=lambda: timed(lambda: kfactor_report(campaign)),
            baseline=lambda: timed(_count_clicks),
            target=0.5,
            higher_is_better=False,
            unit="s",
        ),
        Figure(
            name="K-factor report from the daily snapshot",
            workload=workload + ", the dashboard's read",
            baseline_name=f"COUNT(*) over all {total_clicks:,} clicks",
            subject=lambda: timed(lambda: snapshot_report(campaign), repeat=20),
            baseline=lambda: timed(_count_clicks),
            target=0.05,
            higher_is_better=False,
            unit="s",
        ),
    ]


def _export_command(target: Path) -> None:
    call_command("export_rewards", "-o", str(target), stdout=io.StringIO(), stderr=io.StringIO())


def _copy_rows() -> int:
    """The report's rows, the same query unformatted, by COPY ... TO STDOUT, read fully."""
    queryset = report_queryset(ReportFilters()).order_by("id").values_list(*REPORT_FIELDS)
    sql, params = queryset.query.sql_with_params()
    rows = 0
    with connection.cursor() as cursor:
        statement = cursor.mogrify(f"COPY ({sql}) TO STDOUT", params)
        with cursor.copy(statement) as copy:
            for _ in copy:
                rows += 1
    return rows


def _rows_per_second(operation: Callable[[], object], rows: int) -> Callable[[], float]:
    def measure() -> float:
        started = time.perf_counter()
        operation()
        return rows / (time.perf_counter() - started)

    return measure


def _peak_rss_mb(*args: str) -> float:
    """Peak resident memory of `manage.py export_rewards *args` in a process of its own."""
    process = subprocess.Popen(  # noqa: S603 (our own interpreter and manage.py)
        [sys.executable, str(ROOT / "manage.py"), "export_rewards", *args],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"export_rewards {' '.join(args)} exited with {process.returncode}")
    return usage.ru_maxrss / 1024  # kilobytes on Linux


def export(ctx: Context) -> list[Figure]:
    """`manage.py export_rewards` to CSV over every reward, against COPY of the same rows;
    and the memory that export takes beyond the same command exporting nothing."""
    rows = Reward.objects.count()
    folder = Path(ctx.stack.enter_context(tempfile.TemporaryDirectory(prefix="fission-bench-")))
    target = folder / "rewards.csv"
    idle: list[float] = []

    def growth() -> float:
        full = _peak_rss_mb("-o", str(target))
        empty = _peak_rss_mb("--from", "2999-12-31", "-o", str(folder / "empty.csv"))
        idle.append(empty)
        return max(full - empty, 0.0)

    notes = [f"idle RSS of the same command (no rows): measured in each round; rows: {rows:,}"]
    return [
        Figure(
            name="finance export: CSV rows/s",
            workload=f"{rows:,} rewards, manage.py export_rewards -o file.csv",
            baseline_name="psycopg COPY (SELECT the same rows) TO STDOUT",
            subject=_rows_per_second(lambda: _export_command(target), rows),
            baseline=_rows_per_second(_copy_rows, rows),
            target=0.5,
            unit="rows/s",
        ),
        Figure(
            name="finance export: peak memory growth",
            workload=f"{rows:,} rewards to CSV, in a process of its own",
            baseline_name="the bound",
            subject=growth,
            baseline=lambda: MEMORY_BOUND_MB,
            target=1.0,
            higher_is_better=False,
            unit="MB",
            notes=notes,
            target_label=f"{MEMORY_BOUND_MB:g} MB",
        ),
    ]
