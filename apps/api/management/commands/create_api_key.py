from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.api.services import api_key_create, api_key_rotate_signing_secret


class Command(BaseCommand):
    help = "Create an API key for a host application. The key is printed once, last."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="Who will use the key, e.g. 'shop backend'.")
        parser.add_argument(
            "--signed",
            action="store_true",
            help="Require Standard Webhooks signatures on this key's events; the signing "
            "secret is printed (on stderr) before the key.",
        )

    def handle(self, *args: Any, name: str, signed: bool = False, **options: Any) -> None:
        try:
            api_key, key = api_key_create(name=name)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if signed:
            secret = api_key_rotate_signing_secret(api_key=api_key)
            self.stderr.write(f"Signing secret for its events, shown only now: {secret}")
        self.stderr.write(f"API key {api_key.name!r} created; it is shown only now:")
        self.stdout.write(key)
