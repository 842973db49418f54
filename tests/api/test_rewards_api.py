"""GET /api/v1/rewards/ and the rewards on a participant's detail."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from urllib.parse import quote

import pytest
from django.utils import timezone

from apps.campaigns.models import Campaign
from apps.rewards.lifecycle import rewards_release_due
from apps.rewards.models import Reward
from tests.factories import CampaignFactory, RefereeRewardFactory, join

pytestmark = pytest.mark.django_db
URL = "/api/v1/rewards/"
FIELDS = {
    "id", "campaign", "participant_id", "source", "level", "tier_threshold", "order_id",
    "amount", "currency", "state", "created_at", "updated_at",
}  # fmt: skip


def _friends(campaign: Campaign, referrer, names):
    return [join(campaign, n, referrer=referrer) for n in names]


def test_rewards_are_listed_with_exactly_the_contract_fields(api, campaign, alice):
    RefereeRewardFactory(campaign=campaign, amount=Decimal("20.00"))
    _friends(campaign, alice, ["bob", "carol", "dave"])
    response = api.get(URL)
    assert response.status_code == 200
    data = response.json()
    assert set(data) >= {"results", "next"}
    rows = data["results"]
    assert len(rows) == 4 and all(set(r) == FIELDS for r in rows)
    tier = next(r for r in rows if r["source"] == "tier")
    assert tier == {
        **tier,
        "campaign": "spring", "participant_id": alice.pk, "level": None, "tier_threshold": 3,
        "order_id": None, "amount": "50.00", "currency": "CNY", "state": "held",
    }  # fmt: skip
    assert rows == sorted(rows, key=lambda r: -r["id"])


def test_rewards_are_filtered_by_campaign_state_and_update_time(api, campaign, alice):
    _friends(campaign, alice, ["bob", "carol", "dave"])
    other = CampaignFactory(slug="other")
    seed = join(other, "zed")
    RefereeRewardFactory(campaign=other)
    join(other, "yan", referrer=seed)
    assert len(api.get(URL, {"campaign": "spring"}).json()["results"]) == 1
    assert len(api.get(URL, {"campaign": "other"}).json()["results"]) == 1
    assert api.get(URL, {"state": "approved"}).json()["results"] == []
    rewards_release_due(now=timezone.now() + timedelta(days=30))
    assert len(api.get(URL, {"state": "approved"}).json()["results"]) == 2
    since = (timezone.now() + timedelta(seconds=1)).isoformat()
    assert api.get(URL + "?updated_since=" + quote(since)).json()["results"] == []
    since = (timezone.now() - timedelta(minutes=1)).isoformat()
    assert len(api.get(URL + "?updated_since=" + quote(since)).json()["results"]) == 2


def test_the_reward_list_is_paginated(api, campaign, alice):
    RefereeRewardFactory(campaign=campaign)
    _friends(campaign, alice, [f"f{i}" for i in range(6)])
    total = Reward.objects.count()
    seen, url = [], URL + "?limit=3"
    while url:
        page = api.get(url).json()
        seen += [r["id"] for r in page["results"]]
        url = page["next"]
    assert len(seen) == len(set(seen)) == total


def test_bad_filters_are_400_and_an_unknown_campaign_404(api, anon_api, campaign):
    assert api.get(URL, {"state": "lost"}).status_code == 400
    assert api.get(URL, {"updated_since": "last week"}).status_code == 400
    assert api.get(URL, {"campaign": "nope"}).status_code == 404
    assert anon_api.get(URL).status_code == 401


def test_a_participant_s_detail_lists_their_rewards(api, campaign, alice):
    RefereeRewardFactory(campaign=campaign, amount=Decimal("20.00"))
    bob = _friends(campaign, alice, ["bob", "carol", "dave"])[0]
    detail = api.get(f"/api/v1/participants/{alice.pk}/").json()
    assert [(r["source"], r["tier_threshold"]) for r in detail["rewards"]] == [("tier", 3)]
    assert detail["progress"]["qualified_referrals"] == 3
    bob_rewards = api.get(f"/api/v1/participants/{bob.pk}/").json()["rewards"]
    assert [(r["source"], r["amount"], r["state"]) for r in bob_rewards] == [
        ("referee", "20.00", "held")
    ]
    assert set(bob_rewards[0]) == FIELDS


def test_the_schema_describes_events_and_rewards(api):
    schema = api.get("/api/schema/?format=json")
    assert schema.status_code == 200
    text = schema.content.decode()
    assert "/api/v1/events/" in text and "/api/v1/rewards/" in text
