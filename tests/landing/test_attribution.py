"""Who invited whom: the last link clicked within the window, an explicit code, and
people who click their own link."""

from __future__ import annotations

import time

import pytest
from django.core import signing

from apps.landing import cookies
from apps.referrals.models import Participant
from tests.factories import CampaignFactory, join

from .conftest import WHATSAPP_PREVIEW, invited_by

pytestmark = pytest.mark.django_db

DAY = 24 * 3600


class _Clock:
    """Stands in for the `time` module the signer reads, `offset` seconds from now."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def time(self) -> float:
        return time.time() + self.offset


def join_form(**fields):
    return {"email": "erin@example.com", "name": "Erin", "consent": "on", **fields}


def test_the_landing_page_says_who_invited_you(phone, copy, alice):
    phone.get(f"/r/{alice.code}")
    assert invited_by(phone.get("/c/spring/")) == "Alice"


def test_without_a_click_nobody_is_named(phone, copy, alice):
    assert invited_by(phone.get("/c/spring/")) is None


def test_the_last_link_clicked_wins(phone, copy, alice, bob):
    phone.get(f"/r/{alice.code}?s=wechat")
    phone.get(f"/r/{bob.code}?s=whatsapp")
    assert invited_by(phone.get("/c/spring/")) == "Bob"

    response = phone.post("/c/spring/join", join_form())
    erin = Participant.objects.get(email="erin@example.com")
    assert response.status_code == 303
    assert erin.referrer_id == bob.pk and erin.depth == bob.depth + 1
    assert erin.channel == "whatsapp"


def test_a_click_older_than_the_attribution_window_no_longer_counts(
    phone, copy, alice, campaign, monkeypatch
):
    monkeypatch.setattr(signing, "time", _Clock(-(campaign.attribution_window_days * DAY + 60)))
    phone.get(f"/r/{alice.code}")
    monkeypatch.undo()

    assert invited_by(phone.get("/c/spring/")) is None
    phone.post("/c/spring/join", join_form())
    erin = Participant.objects.get(email="erin@example.com")
    assert erin.referrer_id is None and erin.channel == "web"


def test_a_click_within_the_window_still_counts_days_later(
    phone, copy, alice, campaign, monkeypatch
):
    monkeypatch.setattr(signing, "time", _Clock(-(campaign.attribution_window_days - 1) * DAY))
    phone.get(f"/r/{alice.code}")
    monkeypatch.undo()
    phone.post("/c/spring/join", join_form())
    assert Participant.objects.get(email="erin@example.com").referrer_id == alice.pk


def test_a_window_shortened_after_the_click_applies(phone, copy, alice, campaign, monkeypatch):
    monkeypatch.setattr(signing, "time", _Clock(-3 * DAY))
    phone.get(f"/r/{alice.code}")
    monkeypatch.undo()
    campaign.attribution_window_days = 2
    campaign.save()
    assert invited_by(phone.get("/c/spring/")) is None


def test_an_explicit_code_in_the_address_overrides_the_last_click(phone, copy, alice, dave):
    phone.get(f"/r/{alice.code}")
    page = phone.get(f"/c/spring/?ref={dave.code}")
    assert invited_by(page) == "Dave"
    assert f'name="ref" value="{dave.code}"' in page.content.decode()

    phone.post("/c/spring/join", join_form(ref=dave.code))
    assert Participant.objects.get(email="erin@example.com").referrer_id == dave.pk


def test_an_unknown_or_foreign_explicit_code_falls_back_to_the_click(phone, copy, alice):
    other = join(CampaignFactory(slug="autumn"), "oscar")
    phone.get(f"/r/{alice.code}")
    assert invited_by(phone.get(f"/c/spring/?ref={other.code}")) == "Alice"
    assert invited_by(phone.get("/c/spring/?ref=<script>")) == "Alice"
    phone.post("/c/spring/join", join_form(ref=other.code))
    assert Participant.objects.get(email="erin@example.com").referrer_id == alice.pk


def test_attribution_is_per_campaign(phone, copy, alice):
    autumn = CampaignFactory(slug="autumn")
    oscar = join(autumn, "oscar")
    phone.get(f"/r/{oscar.code}")
    assert invited_by(phone.get("/c/spring/")) is None
    phone.post("/c/spring/join", join_form())
    assert Participant.objects.get(email="erin@example.com").referrer_id is None


def test_clicking_ones_own_link_never_makes_ones_own_referral(phone, copy, alice):
    phone.get(f"/r/{alice.code}")
    response = phone.post(
        "/c/spring/join", join_form(email="Alice+again@Example.com", name="Alice")
    )
    # Alice is only coming back: her own page, no new row, no error.
    assert response.status_code == 303
    assert response["Location"] == f"/p/{alice.token}/"
    assert Participant.objects.filter(campaign=alice.campaign).count() == 1
    alice.refresh_from_db()
    assert alice.referrer_id is None


def test_an_explicit_own_code_also_just_returns_ones_page(phone, copy, alice):
    response = phone.post("/c/spring/join", join_form(email="alice@example.com", ref=alice.code))
    assert response["Location"] == f"/p/{alice.token}/"


def test_a_referrer_once_set_is_not_changed_by_a_later_click(phone, copy, alice, bob, carol):
    phone.get(f"/r/{alice.code}")
    response = phone.post("/c/spring/join", join_form(email="carol@example.com"))
    assert response["Location"] == f"/p/{carol.token}/"
    carol.refresh_from_db()
    assert carol.referrer_id == bob.pk


def test_a_link_preview_does_not_attribute(client, copy, alice):
    client.get(f"/r/{alice.code}", HTTP_USER_AGENT=WHATSAPP_PREVIEW)
    assert invited_by(client.get("/c/spring/")) is None


def test_a_tampered_attribution_cookie_is_ignored(phone, copy, alice, bob):
    phone.get(f"/r/{alice.code}")
    name = cookies.attribution_cookie_name(alice.campaign_id)
    value = phone.cookies[name].value
    phone.cookies[name] = value.replace(alice.code, bob.code)
    assert invited_by(phone.get("/c/spring/")) is None
