"""Consent: the exact words and their version recorded at joining, per language, and
withdrawal from the personal page."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import translation

from apps.landing.forms import JoinForm
from apps.referrals.models import Participant
from apps.trust import services
from apps.trust.models import ConsentText
from apps.trust.selectors import consent_text

from .conftest import browser, form

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_memo():
    services._consent_versions.clear()
    yield
    services._consent_versions.clear()


def test_a_web_join_points_at_the_words_shown_in_the_persons_language(campaign):
    english = browser()
    english.post("/c/spring/join", form("erin@example.com"))
    chinese = browser("198.51.100.8")
    chinese.post("/c/spring/join", form("li@example.com"), HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
    erin = Participant.objects.get(email="erin@example.com")
    li = Participant.objects.get(email="li@example.com")
    assert (erin.consent_version, erin.language) == ("1", "en")
    assert (li.consent_version, li.language) == ("1", "zh-hans")
    assert erin.consent_at is not None
    with translation.override("en"):
        assert consent_text(erin) == str(JoinForm().fields["consent"].label)
    assert consent_text(li).startswith("我同意参加本活动")


def test_the_words_are_stored_when_first_shown(campaign, settings):
    settings.FISSION = {**settings.FISSION, "CONSENT_VERSION": "2026-05"}
    browser().post("/c/spring/join", form("erin@example.com"))
    row = ConsentText.objects.get(version="2026-05", language="en")
    assert row.text == str(JoinForm().fields["consent"].label)


def test_new_words_under_an_old_version_are_kept_apart(campaign):
    ConsentText.objects.filter(version="1", language="en").update(text="Older words.")
    browser().post("/c/spring/join", form("erin@example.com"))
    erin = Participant.objects.get(email="erin@example.com")
    assert erin.consent_version.startswith("1+")
    assert consent_text(erin) == str(JoinForm().fields["consent"].label)
    assert ConsentText.objects.get(version="1", language="en").text == "Older words."


def test_withdrawing_from_the_personal_page_stops_all_messages(alice):
    client = Client(enforce_csrf_checks=True)
    page = client.get(f"/p/{alice.token}/")
    assert "Stop all messages" in page.content.decode()
    url = f"/p/{alice.token}/consent/withdraw"
    assert client.post(url).status_code == 403  # CSRF-protected
    alice.refresh_from_db()
    assert alice.consent_withdrawn_at is None

    response = client.post(url, {"csrfmiddlewaretoken": page.cookies["csrftoken"].value})
    assert response.status_code == 303
    alice.refresh_from_db()
    when = alice.consent_withdrawn_at
    assert when is not None
    html = client.get(response["Location"]).content.decode()
    assert "stop sending you messages" in html and "Stop all messages" not in html
    # Once is enough: a second press keeps the first time.
    client.post(url, {"csrfmiddlewaretoken": page.cookies["csrftoken"].value})
    alice.refresh_from_db()
    assert alice.consent_withdrawn_at == when


def test_withdrawing_needs_a_post_and_a_real_page(alice):
    assert Client().get(f"/p/{alice.token}/consent/withdraw").status_code == 405
    assert Client().post("/p/" + "x" * 32 + "/consent/withdraw").status_code == 404


def test_the_personal_pages_privacy_section_is_in_chinese_for_a_chinese_browser(alice):
    html = Client().get(f"/p/{alice.token}/", HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    for words in ("消息与你的数据", "停止接收所有消息", "把我的数据发到我的邮箱"):
        assert words in html
