"""GET /c/<slug>/ and POST /c/<slug>/join."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.common.errors import FissionError
from apps.common.ip import ip_hash
from apps.landing import cookies
from apps.referrals.models import Participant
from tests.factories import CampaignFactory, LandingCopyFactory, join

from .conftest import invited_by

pytestmark = pytest.mark.django_db

XSS = '<img src=x onerror="alert(1)">'


def form(**fields):
    return {"email": "erin@example.com", "name": "Erin Wu", "consent": "on", **fields}


def test_the_landing_page_shows_the_operators_copy_and_the_tiers(phone, copy, campaign):
    html = phone.get("/c/spring/").content.decode()
    assert "Invite friends, earn rewards" in html
    assert "You both get 20 CNY." in html
    assert "<p>Share your link.<br>Friends who join get a coupon.</p>" in html
    assert "3 friends" in html and "50.00 CNY coupon" in html
    assert "100.00 CNY coupon" in html
    assert 'name="email"' in html and 'name="consent"' in html and "csrfmiddlewaretoken" in html


def test_the_page_sets_a_visitor_cookie(phone, copy):
    response = phone.get("/c/spring/")
    assert response.cookies[cookies.VISITOR_COOKIE]["httponly"]


def test_the_operators_copy_is_shown_as_written_but_never_run(phone, campaign):
    LandingCopyFactory(campaign=campaign, headline=XSS, body=XSS, reward_text=XSS)
    html = phone.get("/c/spring/").content.decode()
    assert XSS not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html


def test_a_campaign_without_copy_shows_its_name(phone, campaign):
    assert "Spring invite" in phone.get("/c/spring/").content.decode()


def test_the_page_is_in_chinese_for_a_chinese_browser(phone, copy, alice):
    phone.get(f"/r/{alice.code}")
    response = phone.get("/c/spring/", HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9,en;q=0.5")
    html = response.content.decode()
    assert response["Content-Language"] == "zh-hans"
    assert '<html lang="zh-Hans">' in html
    assert "邀请好友，一起赢奖励" in html and "好友首单立减 20 元。" in html
    assert "Alice 邀请你加入" in html
    assert "加入并获取我的链接" in html
    assert "Join and get my link" not in html


def test_the_page_is_in_english_otherwise(phone, copy):
    response = phone.get("/c/spring/", HTTP_ACCEPT_LANGUAGE="fr-FR,en;q=0.5")
    assert response["Content-Language"] == "en"
    assert "Join and get my link" in response.content.decode()


def test_an_unknown_campaign_is_a_friendly_404(phone):
    response = phone.get("/c/nosuch/")
    assert response.status_code == 404
    assert "Page not found" in response.content.decode()
    assert phone.post("/c/nosuch/join", form()).status_code == 404


@pytest.mark.parametrize(
    ("status", "says"),
    [
        ("draft", "This campaign has not started yet"),
        ("paused", "This campaign is paused"),
        ("ended", "This campaign has ended"),
    ],
)
def test_closed_campaigns_say_so_instead_of_taking_joins(phone, status, says):
    CampaignFactory(slug="closed", status=status)
    html = phone.get("/c/closed/").content.decode()
    assert says in html and 'name="email"' not in html

    response = phone.post("/c/closed/join", form())
    assert response.status_code in (400, 409)
    assert says in response.content.decode()
    assert not Participant.objects.exists()


def test_joining_creates_the_participant_and_sees_the_personal_page(phone, copy, campaign, alice):
    phone.get(f"/r/{alice.code}?s=wechat", REMOTE_ADDR="203.0.113.9")
    response = phone.post(
        "/c/spring/join", form(), REMOTE_ADDR="203.0.113.9", HTTP_ACCEPT_LANGUAGE="zh-CN"
    )

    erin = Participant.objects.get(email="erin@example.com")
    assert response.status_code == 303
    assert response["Location"] == f"/p/{erin.token}/"
    assert erin.name == "Erin Wu"
    assert erin.referrer_id == alice.pk
    assert erin.consent_at is not None and erin.consent_version == "1"
    assert erin.channel == "wechat"
    assert erin.language == "zh-hans"
    assert erin.join_ip_hash == ip_hash("203.0.113.9")
    assert erin.join_visitor_id == phone.cookies[cookies.VISITOR_COOKIE].value.split(":")[0]
    assert phone.get(response["Location"]).status_code == 200


def test_the_consent_version_comes_from_the_settings(phone, copy, settings):
    settings.FISSION = {**settings.FISSION, "CONSENT_VERSION": "2025-06-terms"}
    phone.post("/c/spring/join", form())
    assert Participant.objects.get(email="erin@example.com").consent_version == "2025-06-terms"


def test_a_join_without_a_link_is_a_seed_from_the_web(phone, copy):
    phone.post("/c/spring/join", form())
    erin = Participant.objects.get(email="erin@example.com")
    assert erin.referrer_id is None and erin.depth == 0 and erin.channel == "web"


def test_a_returning_email_gets_its_existing_page(phone, copy, bob):
    response = phone.post("/c/spring/join", form(email="BOB@example.com", name="Someone"))
    assert response.status_code == 303
    assert response["Location"] == f"/p/{bob.token}/"
    bob.refresh_from_db()
    assert bob.name == "Bob"
    assert Participant.objects.count() == 2  # alice and bob


def test_a_returning_email_gets_its_page_even_when_the_campaign_is_paused(phone, campaign, bob):
    campaign.status = "paused"
    campaign.save()
    response = phone.post("/c/spring/join", form(email="bob@example.com"))
    assert response["Location"] == f"/p/{bob.token}/"


def test_a_missing_consent_box_is_said_on_the_form_and_nothing_is_stored(phone, copy):
    data = form()
    del data["consent"]
    response = phone.post("/c/spring/join", data)
    html = response.content.decode()
    assert response.status_code == 400
    assert "Please tick the box to agree before joining." in html
    assert 'aria-describedby="consent-error"' in html and 'aria-invalid="true"' in html
    assert 'value="erin@example.com"' in html  # what was typed is kept
    assert not Participant.objects.filter(email="erin@example.com").exists()


def test_a_missing_consent_box_is_said_in_chinese_too(phone, copy):
    response = phone.post(
        "/c/spring/join", {"email": "erin@example.com"}, HTTP_ACCEPT_LANGUAGE="zh-CN"
    )
    assert "加入前请先勾选同意。" in response.content.decode()


@pytest.mark.parametrize("email", ["", "not-an-email", "a@", "@example.com", "x" * 300 + "@a.com"])
def test_a_bad_email_is_said_on_the_form_and_nothing_is_stored(phone, copy, email):
    response = phone.post("/c/spring/join", form(email=email))
    assert response.status_code == 400
    assert "email" in response.content.decode().lower()
    assert not Participant.objects.exists()


def test_a_too_long_name_is_refused(phone, copy):
    response = phone.post("/c/spring/join", form(name="n" * 101))
    assert response.status_code == 400
    assert not Participant.objects.exists()


def test_a_name_with_html_is_stored_as_typed_and_escaped_on_every_page(phone, copy, alice):
    phone.get(f"/r/{alice.code}")
    response = phone.post("/c/spring/join", form(name=f"{XSS} Evil"))
    evil = Participant.objects.get(email="erin@example.com")
    assert evil.name == f"{XSS} Evil"

    personal = phone.get(response["Location"]).content.decode()
    assert XSS not in personal and "&lt;img" in personal

    # Evil's name, as their friend sees it on the landing page and as Alice sees it.
    friend = Client(HTTP_USER_AGENT="Mozilla/5.0 (iPhone) Mobile")
    friend.get(f"/r/{evil.code}")
    landing = friend.get("/c/spring/")
    assert XSS not in landing.content.decode()
    assert invited_by(landing) == "&lt;img"
    alices_page = phone.get(f"/p/{alice.token}/").content.decode()
    assert XSS not in alices_page and "&lt;img" in alices_page


def test_a_join_without_a_csrf_token_is_a_friendly_403(copy):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/c/spring/join", form())
    assert response.status_code == 403
    html = response.content.decode()
    assert "Please try again" in html and "CSRF" not in html
    assert not Participant.objects.exists()


def test_a_join_with_the_pages_csrf_token_works(copy):
    client = Client(enforce_csrf_checks=True)
    client.get("/c/spring/")
    token = client.cookies["csrftoken"].value
    response = client.post("/c/spring/join", form(csrfmiddlewaretoken=token))
    assert response.status_code == 303


def test_the_join_address_takes_only_posts(phone, copy):
    assert phone.get("/c/spring/join").status_code == 405


def test_too_many_joins_from_one_address_get_a_friendly_429(phone, copy, settings):
    settings.FISSION = {**settings.FISSION, "JOIN_RATE_LIMIT": "3/m"}
    for n in range(3):
        response = phone.post("/c/spring/join", form(email=f"m{n}@example.com"))
        assert response.status_code == 303

    # Mallory keeps going from the same address.
    response = phone.post("/c/spring/join", form(email="mallory9@example.com"))
    assert response.status_code == 429
    assert "Too many tries" in response.content.decode()
    assert int(response["Retry-After"]) > 0
    assert not Participant.objects.filter(email="mallory9@example.com").exists()

    # Someone on another address is not held back by Mallory.
    other = phone.post("/c/spring/join", form(email="frank@example.com"), REMOTE_ADDR="192.0.2.5")
    assert other.status_code == 303


def test_ipv6_joins_are_counted_per_64(phone, copy, settings):
    settings.FISSION = {**settings.FISSION, "JOIN_RATE_LIMIT": "1/m"}
    first = phone.post("/c/spring/join", form(), REMOTE_ADDR="2001:db8:1:2::1")
    second = phone.post(
        "/c/spring/join", form(email="x@example.com"), REMOTE_ADDR="2001:db8:1:2:ffff::9"
    )
    assert (first.status_code, second.status_code) == (303, 429)


def test_the_rate_limit_can_be_switched_off(phone, copy, settings):
    settings.FISSION = {**settings.FISSION, "JOIN_RATE_LIMIT": "1/m"}
    settings.RATELIMIT_ENABLE = False
    for n in range(3):
        assert phone.post("/c/spring/join", form(email=f"p{n}@example.com")).status_code == 303


def test_the_join_service_refuses_a_self_referral_for_the_api_as_before(campaign, alice):
    # The web's "ignore" is an opt-in; the service's default still refuses.
    with pytest.raises(FissionError, match="own referrer"):
        join(campaign, "alice", referrer=alice, email="alice@example.com")
