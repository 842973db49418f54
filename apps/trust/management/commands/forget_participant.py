from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.common.errors import NotFound
from apps.trust.privacy import participant_erase


class Command(BaseCommand):
    help = (
        "Erase a participant's personal data (data-subject erasure): email, name, external "
        "id, IP hashes, visitor ids and device classes. Their place in the referral tree and "
        "their conversions and rewards stay, with the identity removed. Running it again "
        "changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("participant_id", type=int, metavar="ID", help="The participant.")

    def handle(self, *args: Any, participant_id: int, **options: Any) -> None:
        try:
            log = participant_erase(participant_id=participant_id, actor="forget_participant")
        except NotFound as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"Participant {participant_id}: personal data erased at "
            f"{log.erased_at.isoformat()} ({log.clicks_scrubbed} visits scrubbed)."
        )
