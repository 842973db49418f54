from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from apps.campaigns.models import Campaign
from apps.referrals.models import Participant
from tests.factories import (
    CampaignFactory,
    CommissionLevelFactory,
    RefereeRewardFactory,
    RewardTierFactory,
    join,
)


@pytest.fixture
def shop(db: Any) -> Campaign:
    """A purchase campaign: 10 % and 5 % commissions on purchases of 10.00 CNY or more,
    20.00 for the invited friend, 50.00 at 2 qualified friends, 14 days' holding."""
    campaign = CampaignFactory(
        slug="shop",
        qualifying_event=Campaign.QualifyingEvent.PURCHASE,
        min_purchase_amount=Decimal("10.00"),
        holding_days=14,
        attribution_window_days=30,
    )
    CommissionLevelFactory(campaign=campaign, level=1, percent=Decimal("10.00"))
    CommissionLevelFactory(campaign=campaign, level=2, percent=Decimal("5.00"))
    RefereeRewardFactory(campaign=campaign, amount=Decimal("20.00"))
    RewardTierFactory(campaign=campaign, threshold=2, amount=Decimal("50.00"))
    return campaign


@pytest.fixture
def alice(shop: Campaign) -> Participant:
    return join(shop, "alice")


@pytest.fixture
def bob(shop: Campaign, alice: Participant) -> Participant:
    return join(shop, "bob", referrer=alice)


@pytest.fixture
def carol(shop: Campaign, bob: Participant) -> Participant:
    return join(shop, "carol", referrer=bob)


@pytest.fixture
def dave(shop: Campaign, bob: Participant) -> Participant:
    return join(shop, "dave", referrer=bob)
