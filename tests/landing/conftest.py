from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client

from apps.campaigns.models import Campaign, LandingCopy
from apps.referrals.models import Participant
from tests.factories import LandingCopyFactory, join

PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
WHATSAPP_PREVIEW = "WhatsApp/2.23.20.0 A"


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    # Rate-limit counts and rendered images live in the cache; no test sees another's.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def phone(client: Client) -> Client:
    """A person's browser on a phone."""
    client.defaults["HTTP_USER_AGENT"] = PHONE
    return client


@pytest.fixture
def copy(campaign: Campaign) -> LandingCopy:
    LandingCopyFactory(
        campaign=campaign,
        language="zh-hans",
        headline="邀请好友，一起赢奖励",
        body="分享你的专属链接。",
        reward_text="好友首单立减 20 元。",
    )
    return LandingCopyFactory(
        campaign=campaign,
        language="en",
        headline="Invite friends, earn rewards",
        body="Share your link.\nFriends who join get a coupon.",
        reward_text="You both get 20 CNY.",
    )


@pytest.fixture
def dave(campaign: Campaign, alice: Participant) -> Participant:
    return join(campaign, "dave", referrer=alice)


@pytest.fixture
def mallory(campaign: Campaign) -> Participant:
    return join(campaign, "mallory")


def invited_by(response: Any) -> str | None:
    """The inviter's name as the landing page shows it, or None."""
    html = response.content.decode()
    marker = 'data-testid="inviter">'
    if marker not in html:
        return None
    return html.split(marker, 1)[1].split("<", 1)[0].replace(" invited you", "")
