"""Hostile input on the public pages: each attack with the answer it must get.

Open redirects, stored XSS through every field shown to other people, CSRF, huge bodies,
invalid UTF-8, path traversal in tokens, and enumeration of invite codes. Each request
gets a clear 4xx (or the page it asked for, made harmless) and changes nothing it should
not; never a 500, never a stack trace.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.campaigns.models import Campaign
from apps.referrals.models import Click, Participant
from tests.factories import (
    CampaignFactory,
    LandingCopyFactory,
    RefereeRewardFactory,
    RewardTierFactory,
    join,
)

pytestmark = pytest.mark.django_db

EVIL = "https://evil.example/steal"
# Stored-XSS payloads without spaces, so that a "first name" shows them whole.
XSS = [
    "<script>alert(1)</script>",
    '"><img/src=x/onerror=alert(1)>',
    "<svg/onload=alert(1)>",
    "javascript:alert(1)",
    "{{7*7}}{%debug%}",
]


def _assert_harmless(html: str, payload: str) -> None:
    """The payload is shown as text: no tag or attribute of it survives, and a template
    in it is shown as written, never run."""
    if re.search(r'[<>"]', payload):
        assert payload not in html, payload
    for live in ("<script>alert", "<svg/onload", "<img/src=x", "onerror=alert(1)>"):
        assert live not in html, (payload, live)
    assert "sql_queries" not in html and "DEFAULT_MESSAGE_LEVELS" not in html


def _no_stack_trace(response) -> None:
    body = response.content.decode(errors="replace")
    assert response.status_code < 500, response.status_code
    assert "Traceback" not in body and 'File "' not in body


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    # The join rate limit counts in the cache: no test sees another's joins.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def spring(db) -> Campaign:
    campaign = CampaignFactory(slug="spring", name="Spring")
    LandingCopyFactory(campaign=campaign, language="en", headline="Invite friends")
    RewardTierFactory(campaign=campaign, threshold=3)
    return campaign


@pytest.fixture
def alice(spring) -> Participant:
    return join(spring, "alice")


# --- Open redirects ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        f"?next={EVIL}",
        "?url=//evil.example",
        f"?redirect_to={EVIL}&s=wechat",
        f"?s={EVIL}",
        "?s=%0d%0aLocation:%20https://evil.example",
        "?ref=//evil.example",
    ],
)
def test_an_invite_link_never_redirects_off_site(client, alice, query):
    response = client.get(f"/r/{alice.code}{query}")
    assert response.status_code == 302
    assert response["Location"] == "/c/spring/"


@pytest.mark.parametrize(
    "path",
    ["//evil.example", "//evil.example/", "/\\evil.example", "/%2F%2Fevil.example", "/c/spring"],
)
def test_no_address_redirects_to_another_site(client, spring, path):
    response = client.get(path + "?next=https://evil.example")
    _no_stack_trace(response)
    if response.status_code in (301, 302, 303, 307, 308):
        assert urlsplit(response["Location"]).netloc in ("", "testserver"), response["Location"]
    else:
        assert response.status_code == 404


def test_the_join_always_goes_to_the_persons_own_page(client, spring):
    response = client.post(
        "/c/spring/join",
        {"email": "erin@example.com", "consent": "on", "next": EVIL, "ref": "//evil.example"},
    )
    erin = Participant.objects.get(email="erin@example.com")
    assert response.status_code == 303 and response["Location"] == f"/p/{erin.token}/"


def test_a_forged_host_is_refused(client, alice):
    response = client.get(f"/r/{alice.code}", HTTP_HOST="evil.example")
    assert response.status_code == 400
    _no_stack_trace(response)
    assert not Click.objects.exists()


# --- Stored XSS through everything shown to others ------------------------------------------


@pytest.mark.parametrize("payload", XSS)
def test_a_name_is_shown_as_text_everywhere(client, admin_client, spring, alice, payload):
    response = client.post(
        "/c/spring/join",
        {"email": "mallory@example.com", "name": payload, "consent": "on", "ref": alice.code},
    )
    assert response.status_code == 303
    mallory = Participant.objects.get(email="mallory@example.com")
    assert mallory.name == payload  # kept as typed, shown as text
    join(spring, "victim", referrer=mallory)
    pages = {
        # Mallory invites someone: the landing page names her.
        "landing": client.get(f"/c/spring/?ref={mallory.code}"),
        # Alice's page lists her friends by first name.
        "alice's page": client.get(f"/p/{alice.token}/"),
        "mallory's page": client.get(f"/p/{mallory.token}/"),
        "admin list": admin_client.get("/admin/referrals/participant/"),
        "admin page": admin_client.get(f"/admin/referrals/participant/{mallory.pk}/change/"),
        "admin rewards": admin_client.get("/admin/rewards/reward/"),
        "dashboard": admin_client.get(f"/admin/campaigns/campaign/{spring.pk}/dashboard/"),
    }
    for name, page in pages.items():
        assert page.status_code == 200, name
        _assert_harmless(page.content.decode(), payload)
    assert "&lt;" in pages["landing"].content.decode() or "<" not in payload
    poster = client.get(f"/p/{mallory.token}/poster.png")
    assert poster.status_code == 200 and poster["Content-Type"] == "image/png"


@pytest.mark.parametrize("payload", XSS)
def test_the_operators_copy_is_shown_as_text(client, admin_client, payload):
    campaign = CampaignFactory(slug="copy", name=payload)
    LandingCopyFactory(
        campaign=campaign, language="en", headline=payload, body=f"{payload}\n{payload}",
        reward_text=payload,
    )  # fmt: skip
    RewardTierFactory(campaign=campaign, threshold=2, description=payload)
    RefereeRewardFactory(campaign=campaign, description=payload)
    person = join(campaign, "alice")
    for path in ("/c/copy/", f"/p/{person.token}/"):
        page = client.get(path)
        assert page.status_code == 200, path
        html = page.content.decode()
        _assert_harmless(html, payload)
        # In the share links it is part of a URL's query, percent-encoded.
        for href in re.findall(r'href="([^"]+)"', html):
            assert not href.lower().startswith("javascript:"), href
    changelist = admin_client.get("/admin/campaigns/campaign/")
    _assert_harmless(changelist.content.decode(), payload)
    assert client.get(f"/p/{person.token}/poster.png").status_code == 200


def test_an_email_with_markup_is_shown_as_text_in_the_admin(client, admin_client, spring):
    email = '"<script>alert(1)</script>"@example.com'
    response = client.post("/c/spring/join", {"email": email, "consent": "on"})
    assert response.status_code in (303, 400)
    for path in ("/admin/referrals/participant/", "/admin/referrals/participant/?q=script"):
        _assert_harmless(admin_client.get(path).content.decode(), email)


# --- CSRF ------------------------------------------------------------------------------


def _landing_token(browser: Client) -> str:
    html = browser.get("/c/spring/").content.decode()
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match
    return match[1]


def test_a_join_without_its_csrf_token_is_refused_and_stores_nothing(spring):
    browser = Client(enforce_csrf_checks=True)
    response = browser.post("/c/spring/join", {"email": "erin@example.com", "consent": "on"})
    assert response.status_code == 403
    assert "Please try again" in response.content.decode()
    assert not Participant.objects.filter(email="erin@example.com").exists()


def test_a_csrf_token_of_another_browser_is_refused(spring):
    victim, attacker = Client(enforce_csrf_checks=True), Client(enforce_csrf_checks=True)
    token = _landing_token(attacker)
    _landing_token(victim)  # the victim has a cookie of their own
    form = {"email": "erin@example.com", "consent": "on", "csrfmiddlewaretoken": token}
    assert victim.post("/c/spring/join", form).status_code == 403
    assert not Participant.objects.exists()


def test_a_join_posted_from_another_site_is_refused(spring):
    browser = Client(enforce_csrf_checks=True)
    form = {"email": "erin@example.com", "consent": "on"}
    form["csrfmiddlewaretoken"] = _landing_token(browser)
    response = browser.post("/c/spring/join", form, HTTP_ORIGIN="https://evil.example")
    assert response.status_code == 403
    assert browser.post("/c/spring/join", form).status_code == 303  # the same, from here


def test_the_api_takes_no_cookie_as_credentials(admin_client, spring):
    # A logged-in operator's browser carries a session cookie; the API ignores it.
    response = admin_client.post(
        "/api/v1/campaigns/spring/participants/",
        {"email": "x@example.com", "consent": True},
        content_type="application/json",
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


# --- Huge bodies ---------------------------------------------------------------------------

BIG = 3 * 1024 * 1024  # over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB)


def test_a_huge_form_is_too_large_and_stores_nothing(client, spring):
    response = client.post(
        "/c/spring/join", {"email": "erin@example.com", "name": "x" * BIG, "consent": "on"}
    )
    assert response.status_code == 413
    assert "Too much data" in response.content.decode()
    _no_stack_trace(response)
    assert not Participant.objects.exists()


def test_a_huge_api_body_is_too_large(api, spring):
    body = '{"email": "' + "x" * BIG + '@example.com", "consent": true}'
    response = api.generic(
        "POST", "/api/v1/campaigns/spring/participants/", body, content_type="application/json"
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


def test_a_form_with_too_many_fields_is_refused(client, spring):
    fields = "&".join(f"f{n}=1" for n in range(2000))
    response = client.post(
        "/c/spring/join",
        f"email=erin@example.com&consent=on&{fields}",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 400
    _no_stack_trace(response)
    assert not Participant.objects.exists()


def test_a_huge_query_string_or_code_is_harmless(client, alice):
    response = client.get(f"/r/{alice.code}?s=" + "w" * 100_000)
    assert response.status_code == 302
    assert Click.objects.get().channel == "w" * 20
    assert client.get("/r/" + "a" * 10_000).status_code == 404
    assert client.get("/p/" + "a" * 10_000 + "/").status_code == 404


# --- Invalid UTF-8 ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/r/%FF%FE", "/r/%C3%28", "/c/%FF/", "/c/spring%FF/", "/p/%ED%A0%80/", "/p/%C0%AF/qr.png"],
)
def test_invalid_utf8_in_a_path_is_not_found(client, spring, path):
    response = client.get(path)
    assert response.status_code == 404
    _no_stack_trace(response)


def test_invalid_utf8_in_a_query_or_header_is_ignored(client, alice):
    response = client.get(
        f"/r/{alice.code}?s=%FF%FEwe%C3%28chat",
        HTTP_USER_AGENT="Mozilla/5.0 \udcff",
        HTTP_ACCEPT_LANGUAGE="\udcff\udcfe",
    )
    assert response.status_code == 302
    assert Click.objects.get().channel == "wechat"
    page = client.get("/c/spring/?ref=%FF%FE")
    assert page.status_code == 200


def test_invalid_utf8_in_a_form_is_a_clear_400(client, spring):
    response = client.post(
        "/c/spring/join",
        b"email=%FF%FE%40example.com&name=%C3%28&consent=on",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 400
    assert "valid email" in response.content.decode()
    assert not Participant.objects.exists()


def test_invalid_utf8_in_an_api_body_is_a_clear_400(api, spring):
    response = api.generic(
        "POST",
        "/api/v1/campaigns/spring/participants/",
        b'{"email": "\xff\xfe@example.com", "consent": true}',
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"


# --- Path traversal -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/p/../../etc/passwd/",
        "/p/..%2F..%2Fetc%2Fpasswd/",
        "/p/%2e%2e%2f%2e%2e%2fconfig%2fsettings.py/",
        "/p/%2e%2e/qr.png",
        "/p/....//....//etc/passwd/poster.png",
        "/p/%00/",
        "/r/..%2F..%2Fadmin%2F",
        "/static/../config/settings.py",
        "/static/%2e%2e/%2e%2e/config/settings.py",
        "/static/..%2f..%2f.env",
    ],
)
def test_path_traversal_finds_nothing(client, alice, path):
    response = client.get(path)
    assert response.status_code == 404, path
    body = response.content.decode(errors="replace")
    assert "SECRET_KEY" not in body and "root:" not in body and "DATABASE" not in body


def test_a_token_with_a_null_byte_or_suffix_is_not_the_token(client, alice):
    for path in (f"/p/{alice.token}%00/", f"/p/{alice.token}x/", f"/p/{alice.token[:-1]}/"):
        assert client.get(path).status_code == 404, path
    assert client.get(f"/p/{alice.token}/").status_code == 200


# --- Enumeration of invite codes ----------------------------------------------------------


def _answer(client: Client, code: str) -> tuple[int, bytes, list[str], int]:
    client.cookies.clear()
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/r/{code}")
    headers = sorted(k for k in response.headers if k.lower() != "date")
    return response.status_code, response.content, headers, len(queries)


def test_codes_of_ended_or_draft_campaigns_answer_like_unknown_codes(client):
    live = CampaignFactory(slug="live")
    ended = CampaignFactory(slug="ended", status=Campaign.Status.ENDED)
    draft = CampaignFactory(slug="draft", status=Campaign.Status.DRAFT)
    over = CampaignFactory(slug="over", ends_at=timezone.now() - timedelta(days=1))
    codes = {c.slug: join(c, "alice").code for c in (live, ended, draft, over)}
    unknown = _answer(client, "zzzzzzzz")
    assert unknown[0] == 404
    for slug in ("ended", "draft", "over"):
        assert _answer(client, codes[slug]) == unknown, slug
    assert _answer(client, codes["live"])[0] == 302
    assert not Click.objects.exclude(campaign=live).exists()


def test_the_landing_page_of_an_ended_campaign_names_no_inviter(client):
    ended = CampaignFactory(slug="ended")
    alice = join(ended, "alice")
    ended.status = Campaign.Status.ENDED
    ended.save()
    for page in (client.get(f"/c/ended/?ref={alice.code}"), client.get("/c/ended/")):
        assert page.status_code == 200
        assert "Alice" not in page.content.decode()


def test_unknown_and_malformed_codes_and_tokens_get_the_same_page(client, alice):
    pages = {
        client.get(path).content
        for path in ("/r/zzzzzzzz", "/r/ZZ", "/r/" + "9" * 33, "/r/%F0%9F%92%A9", "/p/nothing/")
    }
    assert len(pages) == 1


def test_rewards_of_a_hostile_amount_do_not_break_pages(client, spring, alice):
    RefereeRewardFactory(campaign=spring, amount=Decimal("99999999.99"), description="<b>x</b>")
    bob = join(spring, "bob", referrer=alice)
    page = client.get(f"/p/{bob.token}/")
    assert page.status_code == 200
    _assert_harmless(page.content.decode(), "<b>x</b>")
