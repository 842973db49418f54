"""Reads of campaigns."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from apps.common.errors import NotFound

from .models import Campaign, CommissionLevel, LandingCopy, RewardTier


def campaign_list() -> QuerySet[Campaign]:
    """Campaigns with everything their JSON shows, in a fixed number of queries."""
    return Campaign.objects.select_related("referee_reward").prefetch_related(
        Prefetch("tiers", queryset=RewardTier.objects.order_by("threshold")),
        Prefetch("commission_levels", queryset=CommissionLevel.objects.order_by("level")),
        Prefetch("landing_copies", queryset=LandingCopy.objects.order_by("language")),
    )


def campaign_get(slug: str) -> Campaign:
    try:
        return campaign_list().get(slug=slug)
    except Campaign.DoesNotExist:
        raise NotFound(f"No campaign {slug!r}.", code="campaign_not_found") from None
