from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.referrals import clickbuffer


class Command(BaseCommand):
    help = (
        "Write the invite clicks waiting in the click buffer (CLICK_BUFFER_URL) to the click "
        "log now, including batches of a flush that died. Run it before unsetting "
        "CLICK_BUFFER_URL, so that no click is left behind in Redis."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if not clickbuffer.enabled():
            raise CommandError("CLICK_BUFFER_URL is not set: clicks are inserted directly.")
        # Batch after batch until the buffer is empty (or keeps up with the redirects).
        written = clickbuffer.flush(max_batches=10_000)
        self.stdout.write(f"{written} clicks written; {clickbuffer.pending()} waiting.")
