from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.referrals import directory

# Caches that live inside one process: filling them from this command helps nobody.
_PRIVATE = ("LocMemCache", "DummyCache")


class Command(BaseCommand):
    help = (
        "Write every live invite code to the invite directory in the shared cache "
        "(CACHE_URL), so that no web process asks PostgreSQL where a link leads. Joins "
        "and clicks keep it filled; run this after importing participants or when the "
        "cache was emptied."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        backend = settings.CACHES["default"]["BACKEND"]
        if backend.rsplit(".", 1)[-1] in _PRIVATE:
            raise CommandError(f"CACHE_URL names no shared cache ({backend}): nothing to warm.")
        try:
            written = directory.fill()
        except Exception as exc:  # the cache backend's own error type
            raise CommandError(f"The cache failed: {exc}") from exc
        self.stdout.write(f"{written} invite codes written to the directory.")
