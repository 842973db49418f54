"""Reads of rewards and conversions."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal

from django.db.models import QuerySet, Sum

from apps.campaigns.models import Campaign
from apps.common.errors import NotFound
from apps.referrals.models import Participant

from .models import LIVE_STATES, Reward


def reward_list(
    *,
    campaign_slug: str | None = None,
    state: str | None = None,
    updated_since: datetime | None = None,
) -> QuerySet[Reward]:
    """Rewards for the API, newest first; served by reward_campaign_state/_updated."""
    rewards = Reward.objects.select_related("campaign")
    if campaign_slug:
        campaign = Campaign.objects.filter(slug=campaign_slug).only("pk").first()
        if campaign is None:
            raise NotFound(f"No campaign {campaign_slug!r}.", code="campaign_not_found")
        rewards = rewards.filter(campaign=campaign)
    if state:
        rewards = rewards.filter(state=state)
    if updated_since is not None:
        rewards = rewards.filter(updated_at__gte=updated_since)
    return rewards


def participant_rewards(participant: Participant) -> list[Reward]:
    """A participant's rewards, oldest first, for their API detail and personal page."""
    rewards = list(Reward.objects.filter(participant=participant).order_by("id"))
    for reward in rewards:
        reward.campaign = participant.campaign
    return rewards


def reward_totals(
    *, campaign: Campaign | None = None, participant: Participant | None = None
) -> dict[str, Decimal]:
    """What is owed or paid, per currency: the sum of entries that count (reversals of
    paid rewards are negative entries, so they net out here)."""
    rewards = Reward.objects.filter(state__in=LIVE_STATES)
    if campaign is not None:
        rewards = rewards.filter(campaign=campaign)
    if participant is not None:
        rewards = rewards.filter(participant=participant)
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for row in rewards.values("currency").annotate(total=Sum("amount")):
        totals[row["currency"]] += row["total"]
    return dict(totals)
