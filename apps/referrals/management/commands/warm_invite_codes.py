from __future__ import annotations

import sqlite3
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.referrals import directory, hostdirectory

# Caches that live inside one process: filling them from this command helps nobody.
_PRIVATE = ("LocMemCache", "DummyCache")


class Command(BaseCommand):
    help = (
        "Write every live invite code to the invite directory in the shared cache "
        "(CACHE_URL) and, where INVITE_HOST_DIRECTORY is set, to this machine's file, so "
        "that no web process asks PostgreSQL (or, with the file, Redis) where a link "
        "leads. Joins and clicks keep both filled; run this after importing participants, "
        "when the cache was emptied, and on each web machine when it is deployed."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        backend = settings.CACHES["default"]["BACKEND"]
        shared = backend.rsplit(".", 1)[-1] not in _PRIVATE
        if not shared and not hostdirectory.enabled():
            raise CommandError(
                f"CACHE_URL names no shared cache ({backend}) and INVITE_HOST_DIRECTORY is "
                "not set: nothing to warm."
            )
        if shared:
            try:
                written = directory.fill()
            except Exception as exc:  # the cache backend's own error type
                raise CommandError(f"The cache failed: {exc}") from exc
            self.stdout.write(f"{written} invite codes written to the directory.")
        if hostdirectory.enabled():
            seconds = settings.FISSION["INVITE_CACHE_SECONDS"]
            if seconds <= 0:
                self.stdout.write("INVITE_CACHE_SECONDS is 0: nothing kept in the host file.")
                return
            try:
                written = hostdirectory.fill(directory.live_targets(), seconds)
            except sqlite3.Error as exc:
                path = settings.FISSION["INVITE_HOST_DIRECTORY"]
                raise CommandError(f"Could not write {path}: {exc}") from exc
            self.stdout.write(
                f"{written} invite codes written to this machine's file, for {seconds:g} s."
            )
