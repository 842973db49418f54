from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.campaigns.models import Campaign, CommissionLevel, RewardTier
from tests.factories import CampaignFactory, CommissionLevelFactory, RewardTierFactory

pytestmark = pytest.mark.django_db


def _violates(**kwargs):
    with pytest.raises(IntegrityError), transaction.atomic():
        CampaignFactory(**kwargs)


def test_campaign_constraints_are_enforced_by_the_database():
    now = timezone.now()
    _violates(starts_at=now, ends_at=now - timedelta(days=1))
    _violates(attribution_window_days=0)
    _violates(holding_days=400)
    _violates(status="running")
    _violates(qualifying_event="click")
    CampaignFactory(slug="taken")
    _violates(slug="taken")


def test_tier_threshold_is_unique_and_positive(campaign):
    with pytest.raises(IntegrityError), transaction.atomic():
        RewardTierFactory(campaign=campaign, threshold=3)
    with pytest.raises(IntegrityError), transaction.atomic():
        RewardTier.objects.create(campaign=campaign, threshold=0, amount=Decimal(1))


def test_commission_levels_stop_at_three(campaign):
    CommissionLevelFactory(campaign=campaign, level=3)
    with pytest.raises(IntegrityError), transaction.atomic():
        CommissionLevel.objects.create(campaign=campaign, level=4, percent=Decimal(1))
    with pytest.raises(IntegrityError), transaction.atomic():
        CommissionLevel.objects.create(campaign=campaign, level=1, percent=Decimal(0))


def test_is_open_follows_status_and_dates():
    now = timezone.now()
    assert CampaignFactory().is_open()
    assert not CampaignFactory(status=Campaign.Status.DRAFT).is_open()
    later = CampaignFactory(starts_at=now + timedelta(days=1))
    assert not later.is_open() and later.closed_reason() == "not_started"
    over = CampaignFactory(starts_at=now - timedelta(days=2), ends_at=now - timedelta(days=1))
    assert over.closed_reason() == "ended"
