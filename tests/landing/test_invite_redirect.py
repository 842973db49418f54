"""GET /r/<code>: the click log, the cookies, bots, and the redirect that never leaves."""

from __future__ import annotations

import logging
from email.utils import parsedate_to_datetime

import pytest
from django.http import HttpResponse
from django.test import Client, RequestFactory

from apps.common.ip import ip_hash
from apps.landing import cookies
from apps.referrals.models import Click

from .conftest import WHATSAPP_PREVIEW

pytestmark = pytest.mark.django_db


def test_an_invite_link_records_the_click_and_redirects_to_the_campaign(phone, alice):
    response = phone.get(f"/r/{alice.code}?s=wechat", REMOTE_ADDR="203.0.113.7")

    assert response.status_code == 302
    assert response["Location"] == "/c/spring/"
    assert "no-store" in response["Cache-Control"]
    click = Click.objects.get()
    assert click.participant_id == alice.pk
    assert click.campaign_id == alice.campaign_id
    assert click.channel == "wechat"
    assert click.ua_class == "mobile"
    assert not click.is_bot
    assert click.visitor_id and response.cookies[cookies.VISITOR_COOKIE]["httponly"]
    # A keyed hash, never the address itself.
    assert click.ip_hash == ip_hash("203.0.113.7") and "203.0.113.7" not in click.ip_hash


def test_each_cookie_expires_when_its_max_age_says(phone, alice, monkeypatch):
    """Browsers that only read Expires keep each cookie as long as those reading Max-Age:
    the visitor cookie a year, the attribution cookie the campaign's window."""
    now = [1_800_000_000.25]
    monkeypatch.setattr(cookies.time, "time", lambda: now[0])
    for _ in range(2):  # the second click, a second later, is dated a second later
        response = phone.get(f"/r/{alice.code}")
        visitor = response.cookies[cookies.VISITOR_COOKIE]
        attribution = response.cookies[cookies.attribution_cookie_name(alice.campaign_id)]
        for cookie, max_age in (
            (visitor, cookies.VISITOR_MAX_AGE),
            (attribution, alice.campaign.attribution_window_days * cookies.DAY),
        ):
            assert cookie["max-age"] == max_age
            assert parsedate_to_datetime(cookie["expires"]).timestamp() == int(now[0]) + max_age
        phone.cookies.clear()
        now[0] += 1


def test_the_set_cookie_headers_are_those_django_writes(phone, alice, settings):
    """The cookies' attributes are formatted once a second, not per click: each header is
    still exactly the one `set_cookie` writes for that value, and an attribute changed
    later (by a middleware, say) is written too."""
    settings.SESSION_COOKIE_SECURE = True
    response = phone.get(f"/r/{alice.code}")
    names = [cookies.VISITOR_COOKIE, cookies.attribution_cookie_name(alice.campaign_id)]
    assert sorted(response.cookies) == sorted(names)
    for name in names:
        made = response.cookies[name]
        reference = HttpResponse()
        reference.set_cookie(
            name,
            made.value,
            max_age=made["max-age"],
            expires=made["expires"],
            httponly=True,
            samesite="Lax",
            secure=True,
        )
        expected = reference.cookies[name]
        # What the WSGI handler sends: output(header="").
        assert made.output(header="") == expected.output(header="")
        assert "Secure" in made.OutputString() and dict(made) == dict(expected)
        made["domain"] = "example.com"
        assert "Domain=example.com" in made.output(header="")


def test_the_visitor_cookie_is_kept_across_clicks(phone, alice, bob):
    phone.get(f"/r/{alice.code}")
    phone.get(f"/r/{bob.code}")
    first, second = Click.objects.order_by("id")
    assert first.visitor_id == second.visitor_id != ""


def test_a_forged_visitor_cookie_is_replaced(phone, alice):
    phone.cookies[cookies.VISITOR_COOKIE] = "made-up-id"
    phone.get(f"/r/{alice.code}")
    assert Click.objects.get().visitor_id not in ("", "made-up-id")


def test_the_cookies_are_signed_with_the_current_key(phone, alice, settings):
    """The signers are made once per key: a rotated SECRET_KEY signs with the new key, and
    the old key (now a fallback) still reads the cookies set before the rotation."""
    phone.get(f"/r/{alice.code}")
    before = phone.cookies[cookies.VISITOR_COOKIE].value
    old_key = settings.SECRET_KEY
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "rotated-" + old_key, [old_key]
    fresh = Client(HTTP_USER_AGENT=phone.defaults["HTTP_USER_AGENT"])
    fresh.get(f"/r/{alice.code}")
    after = fresh.cookies[cookies.VISITOR_COOKIE].value
    visitor, after_visitor = (value.split(":", 1)[0] for value in (before, after))
    # Each verifies under the rotated settings, and only the new one under the new key.
    request = RequestFactory().get("/", HTTP_COOKIE=f"{cookies.VISITOR_COOKIE}={before}")
    assert cookies.visitor_id(request) == visitor
    request = RequestFactory().get("/", HTTP_COOKIE=f"{cookies.VISITOR_COOKIE}={after}")
    assert cookies.visitor_id(request) == after_visitor
    settings.SECRET_KEY_FALLBACKS = []
    assert cookies.visitor_id(request) == after_visitor
    request = RequestFactory().get("/", HTTP_COOKIE=f"{cookies.VISITOR_COOKIE}={before}")
    assert cookies.visitor_id(request) == ""


def test_the_redirect_is_one_lookup_and_one_insert(phone, alice, django_assert_num_queries):
    with django_assert_num_queries(2):
        assert phone.get(f"/r/{alice.code}").status_code == 302


def test_a_code_typed_in_capitals_or_with_a_slash_still_works(phone, alice):
    assert phone.get(f"/r/{alice.code.upper()}")["Location"] == "/c/spring/"
    assert phone.get(f"/r/{alice.code}/")["Location"] == "/c/spring/"
    assert Click.objects.count() == 2


@pytest.mark.parametrize(
    "code", ["zzzzzzzz", "abc", "a" * 200, "..%2F..%2Fetc", "<script>", "k7m2x9q0", "%00"]
)
def test_unknown_or_malformed_codes_get_the_friendly_404_page(phone, alice, code):
    response = phone.get(f"/r/{code}")
    assert response.status_code == 404
    html = response.content.decode()
    assert "Page not found" in html and "Traceback" not in html and "<script>" not in html
    assert not Click.objects.exists()


@pytest.mark.parametrize(
    "query",
    [
        "next=https://evil.example/",
        "url=//evil.example",
        "redirect=https:%2F%2Fevil.example",
        "s=https://evil.example/&next=/%2F%2Fevil.example",
        "return_to=javascript:alert(1)",
        "s=%0d%0aLocation:%20https://evil.example",
    ],
)
def test_the_redirect_never_leaves_the_site_whatever_the_query_says(phone, alice, query):
    response = phone.get(f"/r/{alice.code}?{query}")
    assert response.status_code == 302
    assert response["Location"] == "/c/spring/"


def test_the_channel_is_sanitised_and_short(phone, alice):
    phone.get(f"/r/{alice.code}?s=<b>WeChat Moments</b>!!" + "x" * 100)
    channel = Click.objects.get().channel
    assert channel.startswith("bwechatmoments")
    assert len(channel) <= 20 and channel.replace("-", "").replace("_", "").isalnum()


@pytest.mark.parametrize(
    "user_agent",
    [
        WHATSAPP_PREVIEW,
        "facebookexternalhit/1.1",
        "TelegramBot (like TwitterBot)",
        "Twitterbot/1.0",
    ],
)
def test_link_previews_are_redirected_but_recorded_as_bots(client, alice, user_agent):
    response = client.get(f"/r/{alice.code}", HTTP_USER_AGENT=user_agent)
    assert response.status_code == 302 and response["Location"] == "/c/spring/"
    click = Click.objects.get()
    assert click.is_bot and click.ua_class == "bot" and click.visitor_id == ""
    # A preview is not a person: it neither attributes nor becomes a visitor.
    assert cookies.attribution_cookie_name(alice.campaign_id) not in response.cookies
    assert cookies.VISITOR_COOKIE not in response.cookies


def test_a_head_request_is_redirected_but_recorded_as_a_bot(phone, alice):
    response = phone.head(f"/r/{alice.code}")
    assert response.status_code == 302 and response["Location"] == "/c/spring/"
    click = Click.objects.get()
    assert click.is_bot and click.ua_class == "mobile"


def test_a_post_to_an_invite_link_is_refused(phone, alice):
    assert Client(enforce_csrf_checks=False).post(f"/r/{alice.code}").status_code == 405
    assert not Click.objects.exists()


def test_when_recording_fails_the_visitor_is_still_redirected_and_it_is_logged(
    phone, alice, monkeypatch, caplog
):
    def broken(**kwargs):
        raise RuntimeError("click log down")

    monkeypatch.setattr("apps.landing.views.click_record", broken)
    with caplog.at_level(logging.ERROR, logger="apps.landing.views"):
        response = phone.get(f"/r/{alice.code}")
    assert response.status_code == 302 and response["Location"] == "/c/spring/"
    assert cookies.attribution_cookie_name(alice.campaign_id) in response.cookies
    assert any("could not record a click" in r.getMessage() for r in caplog.records)


def test_the_client_address_comes_from_remote_addr_unless_a_trusted_proxy_forwarded_it(
    phone, alice, settings
):
    phone.get(f"/r/{alice.code}", REMOTE_ADDR="198.51.100.1", HTTP_X_FORWARDED_FOR="1.2.3.4")
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    phone.get(f"/r/{alice.code}", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.2.3.4")
    spoofed, proxied = Click.objects.order_by("id")
    assert spoofed.ip_hash == ip_hash("198.51.100.1")
    assert proxied.ip_hash == ip_hash("1.2.3.4")
