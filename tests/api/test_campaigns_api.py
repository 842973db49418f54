from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.campaigns.models import Campaign
from tests.factories import (
    CampaignFactory,
    LandingCopyFactory,
    RefereeRewardFactory,
    RewardTierFactory,
)

pytestmark = pytest.mark.django_db

SPRING = {
    "slug": "spring",
    "name": "Spring invite",
    "status": "active",
    "qualifying_event": "purchase",
    "min_purchase_amount": "10.00",
    "attribution_window_days": 30,
    "holding_days": 14,
    "commission_percents": ["10.0", "5.0"],
    "tiers": [
        {
            "threshold": 3,
            "kind": "coupon",
            "amount": "50.00",
            "currency": "CNY",
            "description": "50 off",
        }
    ],
    "referee_reward": {
        "kind": "coupon",
        "amount": "20.00",
        "currency": "CNY",
        "description": "20 off",
    },
    "landing": {"headline": "邀请好友", "body": "一起赢", "language": "zh-hans"},
}


def _error(response, status, code=None):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "fields"}
    if code:
        assert body["error"]["code"] == code
    return body["error"]


def test_create_a_campaign_from_the_contract_json(api):
    response = api.post("/api/v1/campaigns/", SPRING, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["slug"] == "spring" and body["min_purchase_amount"] == "10.00"
    assert body["commission_percents"] == ["10.00", "5.00"]
    assert body["tiers"] == [SPRING["tiers"][0]]
    assert body["referee_reward"] == SPRING["referee_reward"]
    assert body["landing"] == {
        "headline": "邀请好友",
        "body": "一起赢",
        "language": "zh-hans",
        "reward_text": "",
    }
    campaign = Campaign.objects.get(slug="spring")
    assert campaign.tiers.get().threshold == 3 and campaign.commission_levels.count() == 2


def test_alerts_and_the_leaderboard_are_set_through_the_api(api):
    api.post("/api/v1/campaigns/", SPRING, format="json")
    body = api.patch(
        "/api/v1/campaigns/spring/",
        {"k_alert_drop_fraction": "0.300", "leaderboard_public": True},
        format="json",
    ).json()
    assert body["k_alert_drop_fraction"] == "0.300" and body["leaderboard_public"] is True
    assert Campaign.objects.get().leaderboard_public is True
    error = _error(
        api.patch("/api/v1/campaigns/spring/", {"k_alert_drop_fraction": "1.5"}, format="json"), 400
    )
    assert "k_alert_drop_fraction" in error["fields"]


def test_patch_changes_only_what_it_names(api):
    api.post("/api/v1/campaigns/", SPRING, format="json")
    response = api.patch(
        "/api/v1/campaigns/spring/", {"status": "paused", "tiers": []}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "paused" and body["tiers"] == []
    assert body["commission_percents"] == ["10.00", "5.00"]
    assert body["referee_reward"]["amount"] == "20.00"
    response = api.patch("/api/v1/campaigns/spring/", {"referee_reward": None}, format="json")
    assert response.json()["referee_reward"] is None


def test_list_and_detail_in_a_fixed_number_of_queries(api):
    for _ in range(3):
        campaign = CampaignFactory()
        RewardTierFactory(campaign=campaign)
        RefereeRewardFactory(campaign=campaign)
        LandingCopyFactory(campaign=campaign)
    with CaptureQueriesContext(connection) as few:
        api.get("/api/v1/campaigns/")
    for _ in range(5):
        campaign = CampaignFactory()
        RewardTierFactory(campaign=campaign)
        LandingCopyFactory(campaign=campaign)
    with CaptureQueriesContext(connection) as many:
        response = api.get("/api/v1/campaigns/")
    assert len(response.json()["results"]) == 8 and "next" in response.json()
    assert len(many) == len(few)
    slug = response.json()["results"][0]["slug"]
    assert api.get(f"/api/v1/campaigns/{slug}/").json()["slug"] == slug


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"commission_percents": ["10", "5", "2", "1"]}, "commission_percents"),
        ({"commission_percents": ["0"]}, "commission_percents"),
        ({"commission_percents": ["60", "50"]}, "commission_percents"),
        ({"qualifying_event": "signup"}, "min_purchase_amount"),
        ({"status": "running"}, "status"),
        ({"attribution_window_days": 0}, "attribution_window_days"),
        ({"tiers": [{"threshold": 0, "amount": "1.00"}]}, "tiers"),
        ({"tiers": [{"threshold": 3}, {"threshold": 3}]}, "tiers"),
        ({"tiers": [{"threshold": 3, "currency": "yuan"}]}, "tiers"),
        ({"referee_reward": {"amount": "1.005", "currency": "CNY"}}, "referee_reward"),
        ({"slug": "not a slug!"}, "slug"),
        ({"name": "x" * 10_000}, "name"),
        ({"landing": {"headline": "x", "language": "fr"}}, "landing"),
    ],
)
def test_invalid_campaigns_are_refused_with_the_field_and_nothing_stored(api, change, field):
    error = _error(api.post("/api/v1/campaigns/", {**SPRING, **change}, format="json"), 400)
    assert field in error["fields"], error
    assert not Campaign.objects.exists()


def test_a_taken_slug_is_a_conflict(api):
    api.post("/api/v1/campaigns/", SPRING, format="json")
    error = _error(api.post("/api/v1/campaigns/", {**SPRING, "name": "Other"}, format="json"), 409)
    assert error["code"] == "slug_taken" and "slug" in error["fields"]
    assert Campaign.objects.get().name == "Spring invite"
    api.post("/api/v1/campaigns/", {**SPRING, "slug": "autumn"}, format="json")
    renamed = api.patch("/api/v1/campaigns/autumn/", {"slug": "spring"}, format="json")
    assert _error(renamed, 409)["code"] == "slug_taken"


def test_malformed_json_and_unknown_campaigns(api):
    response = api.generic(
        "POST", "/api/v1/campaigns/", "{not json", content_type="application/json"
    )
    _error(response, 400, "malformed_json")
    _error(api.get("/api/v1/campaigns/nope/"), 404, "campaign_not_found")
    _error(api.patch("/api/v1/campaigns/nope/", {"status": "paused"}, format="json"), 404)


def test_the_api_wants_a_valid_key(anon_api, api_key):
    _error(anon_api.get("/api/v1/campaigns/"), 401, "not_authenticated")
    anon_api.credentials(HTTP_AUTHORIZATION="Bearer fsn_wrong")
    _error(anon_api.get("/api/v1/campaigns/"), 401)
    anon_api.credentials(HTTP_AUTHORIZATION=f"Token {api_key}")
    _error(anon_api.get("/api/v1/campaigns/"), 401)


def test_a_revoked_key_stops_working(api, admin_client):
    from apps.api.models import ApiKey

    assert api.get("/api/v1/campaigns/").status_code == 200
    key = ApiKey.objects.get()
    admin_client.post("/admin/api/apikey/", {"action": "revoke", "_selected_action": [key.pk]})
    assert api.get("/api/v1/campaigns/").status_code == 401


def test_the_schema_describes_every_call(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    for path in (
        "/api/v1/campaigns/",
        "/api/v1/campaigns/{slug}/",
        "/api/v1/campaigns/{slug}/participants/",
        "/api/v1/participants/{id}/",
    ):
        assert path in paths, path
    post = paths["/api/v1/campaigns/{slug}/participants/"]["post"]
    assert "requestBody" in post and {"200", "201", "400", "401", "404"} <= set(post["responses"])
    assert client.get("/api/docs/").status_code == 200
