from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from apps.campaigns.models import Campaign
from apps.referrals.importing import COLUMNS, ImportFailed, participants_import


class Command(BaseCommand):
    help = (
        f"Import participants from another tool's CSV ({', '.join(COLUMNS)}). "
        "All or nothing: a bad row is reported with its line number and nothing is stored."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="The campaign to import into.")
        parser.add_argument("file", type=Path, help="A UTF-8 CSV file with a header row.")

    def handle(self, *args: Any, slug: str, file: Path, **options: Any) -> None:
        campaign = Campaign.objects.filter(slug=slug).first()
        if campaign is None:
            raise CommandError(f"No campaign {slug!r}.")
        try:
            handle = file.open(newline="", encoding="utf-8-sig")
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}") from exc
        with (
            handle,
            tqdm(unit=" rows", desc="importing", file=self.stderr._out, disable=None) as bar,
        ):
            try:
                result = participants_import(campaign=campaign, file=handle, progress=bar.update)
            except ImportFailed as exc:
                raise CommandError(f"Nothing was imported.\n{exc.message}") from exc
            except UnicodeDecodeError as exc:
                raise CommandError(
                    f"Nothing was imported: {file} is not UTF-8 ({exc.reason})."
                ) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {result.created} participants into {slug}; "
                f"{result.skipped} were there already."
            )
        )
