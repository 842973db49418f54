from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.analytics.ranges import report_range
from apps.analytics.selectors import KReport, kfactor_report
from apps.campaigns.models import Campaign
from apps.common.errors import FissionError


class Command(BaseCommand):
    help = (
        "The K-factor report of a campaign: participants, visitors, i, c, K, generations, "
        "cohorts, cycle time; quality K counts only qualified referees the fraud rules did "
        "not hold. --json prints the API's Stats JSON."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="The campaign.")
        parser.add_argument(
            "--json", dest="as_json", action="store_true", help="Print the Stats JSON."
        )
        parser.add_argument(
            "--from", dest="date_from", metavar="D", help="Joined on or after D (YYYY-MM-DD)."
        )
        parser.add_argument(
            "--to", dest="date_to", metavar="D", help="Joined on or before D (YYYY-MM-DD)."
        )

    def handle(
        self,
        *args: Any,
        slug: str,
        as_json: bool,
        date_from: str | None,
        date_to: str | None,
        **options: Any,
    ) -> None:
        campaign = Campaign.objects.filter(slug=slug).first()
        if campaign is None:
            raise CommandError(f"No campaign {slug!r}.")
        try:
            start, end = report_range(date_from, date_to)
        except FissionError as exc:
            raise CommandError(exc.message) from exc
        report = kfactor_report(campaign, start, end)
        if as_json:
            self.stdout.write(_dumps(report))
            return
        period = {
            (False, False): "all joins",
            (True, False): f"joined from {start}",
            (False, True): f"joined up to {end}",
            (True, True): f"joined {start} to {end}",
        }[(start is not None, end is not None)]
        self.stdout.write(f"K-factor report: {campaign.name} ({campaign.slug}), {period}\n")
        self.stdout.write(_table(report))


def _dumps(report: KReport) -> str:
    return json.dumps(report.as_dict(), ensure_ascii=False, indent=2)


def _ratio(value: float) -> str:
    return f"{value:.3f}"


def _table(report: KReport) -> str:
    amplification = (
        "infinite (K >= 1)" if report.amplification is None else f"{report.amplification:.2f}"
    )
    cycle = "-" if report.cycle_time_hours is None else f"{report.cycle_time_hours:.1f} h"
    summary = [
        ("participants (N)", f"{report.participants:,}"),
        ("referred (R)", f"{report.referred:,}"),
        ("seeds (N - R)", f"{report.seeds:,}"),
        ("visitors (V)", f"{report.visitors:,}"),
        ("i = V / N", _ratio(report.i)),
        ("c = R / V", _ratio(report.c)),
        ("K = R / N", _ratio(report.k)),
        ("qualified K", _ratio(report.k_qualified)),
        ("quality K", "-" if report.k_quality is None else _ratio(report.k_quality)),
        ("cycle time (median)", cycle),
        ("amplification", amplification),
    ]
    lines = [f"  {label:<22}{value:>18}" for label, value in summary]
    lines += ["", f"  {'generation':>10}{'size':>12}{'K':>10}"]
    lines += [f"  {g.generation:>10}{g.size:>12,}{g.k:>10.3f}" for g in report.generations]
    lines += ["", f"  {'cohort':<12}{'size':>10}{'referred':>10}{'K':>8}  mature"]
    lines += [
        f"  {c.date.isoformat():<12}{c.size:>10,}{c.referred:>10,}{c.k:>8.3f}  "
        + ("yes" if c.mature else "no")
        for c in report.cohorts
    ]
    return "\n".join(lines) + "\n"
