"""Periodic reward work. Thin: the services hold the rules."""

from __future__ import annotations

from celery import shared_task

from . import lifecycle


@shared_task(acks_late=True, ignore_result=True)
def release_held_rewards() -> None:
    """Periodic (CELERY_BEAT_SCHEDULE): approve rewards whose holding period is over.
    Running it twice at once approves each reward once."""
    lifecycle.rewards_release_due(actor="release job (beat)")
