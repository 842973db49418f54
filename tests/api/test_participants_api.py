from __future__ import annotations

import pytest

from apps.referrals.models import FraudFlag, Participant
from tests.factories import CampaignFactory, join

pytestmark = pytest.mark.django_db

URL = "/api/v1/campaigns/spring/participants/"
FIELDS = {"id", "code", "invite_url", "qr_url", "personal_url", "referrer_code", "depth"}


def test_register_a_referred_participant(api, campaign, alice, settings):
    response = api.post(
        URL,
        {"email": "bob@example.com", "name": "Bob", "referral_code": alice.code, "consent": True},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == FIELDS
    bob = Participant.objects.get(pk=body["id"])
    assert body["referrer_code"] == alice.code and body["depth"] == 1 and bob.referrer == alice
    site = settings.SITE_URL
    assert body["invite_url"] == f"{site}/r/{bob.code}"
    assert body["personal_url"] == f"{site}/p/{bob.token}/"
    assert body["qr_url"] == f"{site}/p/{bob.token}/qr.png"
    assert bob.channel == "api" and bob.consent_at is not None


def test_the_same_person_again_gets_200_and_the_same_body(api, campaign):
    first = api.post(
        URL, {"email": "Zoe@Example.com", "external_id": "u-1", "consent": True}, format="json"
    )
    by_email = api.post(URL, {"email": "zoe+shop@example.com", "consent": True}, format="json")
    by_external = api.post(
        URL, {"email": "other@example.com", "external_id": "u-1", "consent": True}, format="json"
    )
    assert first.status_code == 201
    assert by_email.status_code == 200 and by_external.status_code == 200
    assert first.json() == by_email.json() == by_external.json()
    assert Participant.objects.count() == 1


def _refused(api, body, field=None, status=400, url=URL):
    before = Participant.objects.count()
    response = api.post(url, body, format="json")
    assert response.status_code == status, response.content
    error = response.json()["error"]
    if field:
        assert field in error["fields"], error
    assert Participant.objects.count() == before
    return error


def test_bad_registrations_are_refused_and_store_nothing(api, campaign, alice):
    _refused(api, {"email": "not-an-email", "consent": True}, "email")
    _refused(api, {"email": "x@example.com", "name": "n" * 10_000, "consent": True}, "name")
    _refused(api, {"email": "x@example.com", "consent": False}, "consent")
    _refused(api, {"email": "x@example.com"}, "consent")
    _refused(
        api,
        {"email": "x@example.com", "consent": True, "referral_code": "zzzzzzzz"},
        "referral_code",
    )
    error = _refused(
        api,
        {"email": "alice+me@example.com", "consent": True, "referral_code": alice.code},
        "referral_code",
    )
    assert error["code"] == "self_referral"
    other = CampaignFactory(slug="other")
    stranger = join(other, "stranger")
    error = _refused(
        api,
        {"email": "x@example.com", "consent": True, "referral_code": stranger.code},
        "referral_code",
    )
    assert error["code"] == "referral_code_other_campaign"
    _refused(
        api,
        {"email": "x@example.com", "consent": True},
        status=404,
        url="/api/v1/campaigns/nope/participants/",
    )


def test_email_and_external_id_of_two_people_conflict(api, campaign, alice, bob):
    Participant.objects.filter(pk=bob.pk).update(external_id="u-bob")
    error = _refused(
        api, {"email": "alice@example.com", "external_id": "u-bob", "consent": True}, status=409
    )
    assert error["code"] == "identity_conflict"


@pytest.mark.parametrize(("status", "http"), [("draft", 400), ("paused", 409), ("ended", 409)])
def test_closed_campaigns_refuse_registrations(api, status, http):
    CampaignFactory(slug="closed", status=status)
    error = _refused(
        api,
        {"email": "x@example.com", "consent": True},
        status=http,
        url="/api/v1/campaigns/closed/participants/",
    )
    assert error["code"] == f"campaign_{status}"


def test_participant_detail(api, campaign, alice, bob, carol):
    from django.utils import timezone

    Participant.objects.filter(pk=bob.pk).update(qualified_at=timezone.now())
    FraudFlag.objects.create(
        participant=alice,
        code="ip_burst",
        score=40,
        reason="5 joins from one network in 10 minutes",
    )
    FraudFlag.objects.create(
        participant=alice, code="disposable_email", score=50, reason="x", resolution="overturned"
    )
    body = api.get(f"/api/v1/participants/{alice.pk}/").json()
    assert FIELDS | {"status", "flags", "verified", "progress"} <= set(body)
    assert body["status"] == "active" and body["verified"] is False
    assert body["flags"] == [
        {"code": "ip_burst", "score": 40, "reason": "5 joins from one network in 10 minutes"}
    ]
    assert body["progress"] == {
        "qualified_referrals": 1,
        "next_tier": {"threshold": 3, "remaining": 2, "description": "50.00 CNY coupon"},
    }
    assert api.get(f"/api/v1/participants/{carol.pk}/").json()["referrer_code"] == bob.code
    assert api.get("/api/v1/participants/999999/").status_code == 404
    assert api.get("/api/v1/participants/99999999999999999999/").status_code == 404
