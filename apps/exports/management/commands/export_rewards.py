from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from apps.common.errors import FissionError
from apps.common.money import format_amount
from apps.exports.report import DATE_FIELDS, report_count, report_filters
from apps.exports.services import report_export
from apps.rewards.models import RewardState


class Command(BaseCommand):
    help = (
        "The finance report: every reward entry with its participant, amount, state and "
        "payout batch, as CSV (UTF-8 with a BOM) or XLSX (rows, then totals per currency "
        "and state). Streams: memory stays flat however many rows."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--campaign", metavar="SLUG", help="Only this campaign.")
        parser.add_argument(
            "--from", dest="date_from", metavar="D", help="On or after local day D (YYYY-MM-DD)."
        )
        parser.add_argument(
            "--to", dest="date_to", metavar="D", help="On or before local day D (YYYY-MM-DD)."
        )
        parser.add_argument(
            "--date-field",
            default="created",
            metavar="|".join(DATE_FIELDS),
            help="Which time --from and --to apply to (default: created).",
        )
        parser.add_argument(
            "--state", metavar="S", help=f"Only this state: {', '.join(RewardState.values)}."
        )
        parser.add_argument("--batch", metavar="ID", help="Only the entries of payout batch ID.")
        parser.add_argument(
            "--format", dest="fmt", choices=("csv", "xlsx"), help="Default: from -o's suffix."
        )
        parser.add_argument("-o", "--output", required=True, metavar="FILE", help="Write here.")

    def handle(self, *args: Any, output: str, fmt: str | None, **options: Any) -> None:
        path = Path(output)
        fmt = fmt or ("xlsx" if path.suffix.lower() == ".xlsx" else "csv")
        try:
            filters = report_filters(
                campaign=options["campaign"],
                date_from=options["date_from"],
                date_to=options["date_to"],
                state=options["state"],
                date_field=options["date_field"],
                batch=options["batch"],
            )
        except FissionError as exc:
            raise CommandError(exc.message) from exc
        if path.is_dir() or not path.parent.is_dir():
            raise CommandError(f"Cannot write {output}: not a file in an existing directory.")
        total = report_count(filters)
        # Written beside the target and renamed at the end: an interrupted export never
        # leaves a truncated file under the name asked for.
        partial = path.with_name(f".{path.name}.partial")
        try:
            with (
                partial.open("wb") as handle,
                tqdm(
                    total=total, unit=" rows", desc="exporting", file=self.stderr._out, disable=None
                ) as bar,
            ):
                totals = report_export(
                    filters=filters,
                    fmt=fmt,
                    file=handle,
                    actor=f"cli:{_system_user()}",
                    progress=bar.update,
                )
            os.replace(partial, path)
        except OSError as exc:
            raise CommandError(f"Cannot write {output}: {exc.strerror}") from exc
        finally:
            partial.unlink(missing_ok=True)
        self.stdout.write(f"{totals.rows} rows written to {output} ({fmt}).")
        for currency, state, rows, amount in totals.items():
            self.stdout.write(
                f"  {currency} {state}: {rows} rows, {format_amount(amount, currency)}"
            )


def _system_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return str(os.getuid())
