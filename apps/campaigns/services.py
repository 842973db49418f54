"""Writes to campaigns: create and change a campaign with its tiers, referee reward,
commission levels and landing copy, from plain values."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction

from apps.common.errors import Conflict, FissionError
from apps.common.money import is_currency

from .models import (
    MAX_COMMISSION_LEVELS,
    Campaign,
    CommissionLevel,
    LandingCopy,
    RefereeReward,
    RewardTier,
)

CAMPAIGN_FIELDS = (
    "slug", "name", "status", "starts_at", "ends_at", "qualifying_event",
    "min_purchase_amount", "currency", "attribution_window_days", "holding_days",
    "budget_cap", "per_referrer_cap", "k_alert_threshold", "k_alert_drop_fraction",
    "leaderboard_public",
)  # fmt: skip


class Keep(enum.Enum):
    """Leave a nested part of the campaign as it is."""

    KEEP = "keep"


KEEP = Keep.KEEP


def _check_rules(campaign: Campaign, commission_percents: Sequence[Decimal] | None) -> None:
    problems: dict[str, str] = {}
    if campaign.ends_at and campaign.starts_at and campaign.ends_at <= campaign.starts_at:
        problems["ends_at"] = "must be after starts_at"
    if campaign.currency and not is_currency(campaign.currency):
        problems["currency"] = "must be a three-letter ISO 4217 code such as CNY"
    if commission_percents is not None:
        if len(commission_percents) > MAX_COMMISSION_LEVELS:
            problems["commission_percents"] = (
                f"at most {MAX_COMMISSION_LEVELS} levels; deeper schemes are pyramid selling"
            )
        elif any(not Decimal(0) < p <= Decimal(100) for p in commission_percents):
            problems["commission_percents"] = "each percent must be above 0 and at most 100"
        elif sum(commission_percents, Decimal(0)) > 100:
            problems["commission_percents"] = "the levels together may not exceed 100 percent"
        elif commission_percents and campaign.qualifying_event != "purchase":
            problems["commission_percents"] = "commissions need a purchase campaign"
    if problems:
        raise FissionError(
            "The campaign is not valid: " + "; ".join(f"{k} {v}" for k, v in problems.items()),
            code="invalid_campaign",
            fields=problems,
        )


def _check_tiers(tiers: Sequence[Mapping[str, Any]]) -> None:
    thresholds = [t["threshold"] for t in tiers]
    if len(set(thresholds)) != len(thresholds):
        raise FissionError(
            "Two tiers have the same threshold.",
            code="invalid_campaign",
            fields={"tiers": "each threshold may appear once"},
        )
    for tier in tiers:
        if not is_currency(tier.get("currency", "CNY")):
            raise FissionError(
                "A tier's currency is not an ISO 4217 code.",
                code="invalid_campaign",
                fields={"tiers": "currency must be a three-letter code such as CNY"},
            )


@transaction.atomic
def campaign_save(
    *,
    campaign: Campaign | None = None,
    fields: Mapping[str, Any],
    tiers: Sequence[Mapping[str, Any]] | None = None,
    referee_reward: Mapping[str, Any] | bool | None = False,
    commission_percents: Sequence[Decimal] | None = None,
    landing: Mapping[str, Any] | None = None,
) -> Campaign:
    """Create a campaign (campaign=None) or change one.

    Nested parts replace what the campaign had when given: `tiers` (a list), the
    `referee_reward` (a mapping; None removes it; KEEP leaves it alone),
    `commission_percents` (level 1 first) and the `landing` copy of one language.
    """
    campaign = campaign or Campaign()
    for name, value in fields.items():
        if name not in CAMPAIGN_FIELDS:
            raise FissionError(f"Unknown campaign field {name!r}.", fields={name: "unknown"})
        setattr(campaign, name, value)
    _check_rules(campaign, commission_percents)
    if tiers is not None:
        _check_tiers(tiers)
    try:
        with transaction.atomic():
            campaign.save()
    except IntegrityError as exc:
        if Campaign.objects.filter(slug=campaign.slug).exclude(pk=campaign.pk).exists():
            raise Conflict(
                f"A campaign with slug {campaign.slug!r} exists already.",
                code="slug_taken",
                fields={"slug": "taken"},
            ) from exc
        raise FissionError("The campaign breaks a rule of the database.") from exc

    if tiers is not None:
        campaign.tiers.all().delete()
        RewardTier.objects.bulk_create(RewardTier(campaign=campaign, **t) for t in tiers)
    if referee_reward is None:
        RefereeReward.objects.filter(campaign=campaign).delete()
    elif isinstance(referee_reward, Mapping):
        RefereeReward.objects.update_or_create(campaign=campaign, defaults=dict(referee_reward))
    if commission_percents is not None:
        campaign.commission_levels.all().delete()
        CommissionLevel.objects.bulk_create(
            CommissionLevel(campaign=campaign, level=n, percent=p)
            for n, p in enumerate(commission_percents, start=1)
        )
    if landing is not None:
        LandingCopy.objects.update_or_create(
            campaign=campaign,
            language=landing.get("language") or "en",
            defaults={k: v for k, v in landing.items() if k != "language"},
        )
    return campaign
