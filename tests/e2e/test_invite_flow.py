"""From a friend's invite link to one's own link, QR code and poster, on a phone."""

from __future__ import annotations

import io
import time

import pytest
from PIL import Image
from playwright.sync_api import expect
from pyzbar.pyzbar import decode

from apps.referrals.models import Click, Participant
from tests.factories import LandingCopyFactory

from .conftest import PHONE, PHONE_USER_AGENT

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WORDS = {
    "en-US": {
        "headline": "Invite friends, earn rewards",
        "invited": "Alice invited you",
        "ready": "Erin, your invite link is ready",
        "copied": "Link copied",
        "missing_consent": "Please tick the box to agree before joining.",
    },
    "zh-CN": {
        "headline": "邀请好友，一起赢奖励",
        "invited": "Alice 邀请你加入",
        "ready": "Erin，你的邀请链接已准备好",
        "copied": "链接已复制",
        "missing_consent": "加入前请先勾选同意。",
    },
}


@pytest.fixture
def phone_page(browser, live_server, settings):
    settings.SITE_URL = live_server.url
    pages = []

    def open_page(locale: str):
        context = browser.new_context(
            viewport=PHONE,
            user_agent=PHONE_USER_AGENT,
            locale=locale,
            is_mobile=True,
            has_touch=True,
        )
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
        page = context.new_page()
        page.problems = []
        page.on("console", lambda m: m.type == "error" and page.problems.append(m.text))
        page.on("pageerror", lambda e: page.problems.append(str(e)))
        pages.append(context)
        return page

    yield open_page
    for context in pages:
        context.close()


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_a_friend_goes_from_the_invite_link_to_their_own_link_qr_code_and_poster(
    phone_page, live_server, campaign, alice, locale
):
    for language, headline in (
        ("en", WORDS["en-US"]["headline"]),
        ("zh-hans", WORDS["zh-CN"]["headline"]),
    ):
        LandingCopyFactory(campaign=campaign, language=language, headline=headline)
    words = WORDS[locale]
    page = phone_page(locale)
    started = time.monotonic()

    # The friend taps Alice's link in a chat and lands on the campaign page.
    page.goto(f"{live_server.url}/r/{alice.code}?s=wechat")
    assert page.url == f"{live_server.url}/c/spring/"
    assert page.locator("h1").inner_text() == words["headline"]
    assert page.get_by_test_id("inviter").inner_text() == words["invited"]

    # Forgetting the consent box: the form says so and keeps what was typed.
    page.fill("#id_email", "erin@example.com")
    page.fill("#id_name", "Erin Wu")
    page.eval_on_selector("form.join", "form => form.noValidate = true")
    page.click("form.join button[type=submit]")
    assert page.locator("#consent-error").inner_text() == words["missing_consent"]
    assert page.input_value("#id_email") == "erin@example.com"
    assert not Participant.objects.filter(email="erin@example.com").exists()
    page.problems.clear()  # the browser logs that 400 answer as a console error

    page.check("#id_consent")
    page.click("form.join button[type=submit]")
    page.wait_for_url(f"{live_server.url}/p/**")

    erin = Participant.objects.get(email="erin@example.com")
    assert erin.referrer_id == alice.pk and erin.channel == "wechat"
    assert page.url == f"{live_server.url}/p/{erin.token}/"
    assert page.locator("h1").inner_text() == words["ready"]
    invite = f"{live_server.url}/r/{erin.code}"
    assert page.input_value("#invite-url") == invite

    # The QR code is drawn, fits the phone's screen, and scans to Erin's own link.
    qr = page.locator(f"img[src='/p/{erin.token}/qr.svg']")
    qr.scroll_into_view_if_needed()
    assert qr.evaluate("img => img.complete && img.naturalWidth > 0")
    box = qr.bounding_box()
    assert (
        box and box["width"] >= 200 and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    )
    scanned = decode(Image.open(io.BytesIO(qr.screenshot())))
    assert [s.data.decode() for s in scanned] == [invite]

    # The copy button puts the link on the clipboard and says so.
    page.click("[data-copy-target=invite-url]")
    # (A locator wait: wait_for_function would evaluate a string, which the CSP forbids.)
    expect(page.locator("#copy-status")).to_have_text(words["copied"])
    assert page.evaluate("navigator.clipboard.readText()") == invite

    # The poster for WeChat: 720×1280, and it scans to the same link.
    poster = page.request.get(f"{live_server.url}/p/{erin.token}/poster.png")
    assert poster.ok and poster.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(poster.body()))
    assert image.size == (720, 1280)
    assert [s.data.decode() for s in decode(image)] == [invite]

    # No script error and no Content-Security-Policy violation on the way.
    assert page.problems == []
    assert time.monotonic() - started < 60
    click = Click.objects.get(participant=alice)
    assert not click.is_bot and click.ua_class == "mobile" and click.channel == "wechat"


def test_the_page_fits_a_phone_screen_without_sideways_scrolling(
    phone_page, live_server, campaign, alice
):
    page = phone_page("en-US")
    for path in ("/c/spring/", f"/p/{alice.token}/"):
        page.goto(live_server.url + path)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], path
    assert page.problems == []
