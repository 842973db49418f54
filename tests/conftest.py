from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from apps.api.services import api_key_create
from apps.campaigns.models import Campaign
from apps.landing.images import qr_memory_forget
from apps.referrals.models import Participant
from apps.referrals.selectors import invite_targets_forget
from apps.trust.rules import campaign_rules_forget

from .factories import CampaignFactory, RewardTierFactory, join


@pytest.fixture(autouse=True)
def _fresh_invite_targets() -> None:
    # Each process remembers invite codes, QR codes and fraud rule settings a while, and
    # the invite directory is in the cache; no test sees another's.
    cache.clear()
    invite_targets_forget()
    qr_memory_forget()
    campaign_rules_forget()


@pytest.fixture
def campaign(db: Any) -> Campaign:
    campaign = CampaignFactory(slug="spring", name="Spring invite")
    for threshold, amount in ((3, "50.00"), (5, "100.00")):
        RewardTierFactory(campaign=campaign, threshold=threshold, amount=amount)
    return campaign


@pytest.fixture
def alice(campaign: Campaign) -> Participant:
    return join(campaign, "alice")


@pytest.fixture
def bob(campaign: Campaign, alice: Participant) -> Participant:
    return join(campaign, "bob", referrer=alice)


@pytest.fixture
def carol(campaign: Campaign, bob: Participant) -> Participant:
    return join(campaign, "carol", referrer=bob)


@pytest.fixture
def api_key(db: Any) -> str:
    return api_key_create(name="shop")[1]


@pytest.fixture
def api(api_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    return client


@pytest.fixture
def anon_api() -> APIClient:
    return APIClient()
