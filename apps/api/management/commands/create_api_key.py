from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.api.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for a host application. The key is printed once, last."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="Who will use the key, e.g. 'shop backend'.")

    def handle(self, *args: Any, name: str, **options: Any) -> None:
        try:
            api_key, key = api_key_create(name=name)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stderr.write(f"API key {api_key.name!r} created; it is shown only now:")
        self.stdout.write(key)
