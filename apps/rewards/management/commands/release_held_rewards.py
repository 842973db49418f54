from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from apps.rewards.lifecycle import rewards_release_due


class Command(BaseCommand):
    help = (
        "Approve rewards whose holding period is over (the periodic task does the same; "
        "running both, or this twice, approves each reward once)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        released = rewards_release_due(actor="command: release_held_rewards")
        self.stdout.write(f"{released} rewards approved.")
