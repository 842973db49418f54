"""One-click unsubscribe (RFC 8058): headers, the confirm page, the POST, and silence after."""

from __future__ import annotations

import pytest
from django.core import mail
from django.test import Client

from apps.notifications.tokens import unsubscribe_token
from tests.factories import join

from .conftest import SITE, link_to, log, sent_to, web_join

pytestmark = pytest.mark.django_db


@pytest.fixture
def welcomed(client, copy, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        erin = web_join(client, copy, "erin")
    return erin, sent_to(erin)[0]


def test_every_email_carries_one_click_unsubscribe_headers(welcomed):
    _erin, email = welcomed
    message = email.message()
    path = link_to(email, "/unsubscribe/")
    assert message["List-Unsubscribe"] == f"<{SITE}{path}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert f'href="{SITE}{path}"' in email.alternatives[0][0]
    # Plain text and HTML, as one multipart/alternative message.
    assert message.get_content_type() == "multipart/alternative"


def test_opening_the_link_only_asks(welcomed):
    erin, email = welcomed
    path = link_to(email, "/unsubscribe/")
    response = Client().get(path)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Stop emails?" in html and '<form method="post" action="">' in html
    assert "csrfmiddlewaretoken" not in html  # the signed link is the permission
    erin.refresh_from_db()
    assert erin.consent_withdrawn_at is None


def test_one_click_post_unsubscribes_and_nothing_is_sent_afterwards(
    welcomed, copy, django_capture_on_commit_callbacks
):
    erin, email = welcomed
    url = link_to(email, "/unsubscribe/")
    # What a mail provider sends: no cookies, no CSRF token.
    provider = Client(enforce_csrf_checks=True)
    response = provider.post(
        url, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200
    assert "You get no more emails" in response.content.decode()
    erin.refresh_from_db()
    assert erin.consent_withdrawn_at is not None
    withdrawn_at = erin.consent_withdrawn_at

    # Still in the campaign: the page and the invite link work.
    assert Client().get(f"/p/{erin.token}/").status_code == 200
    assert Client().get(f"/r/{erin.code}").status_code == 302

    # A friend joins through erin's link: nothing is sent to erin, ever.
    sent = len(mail.outbox)
    with django_capture_on_commit_callbacks(execute=True):
        frank = web_join(Client(), copy, "frank", ref=erin.code)
    assert [m.to for m in mail.outbox[sent:]] == [[frank.email]]
    assert log(erin)[-1] == ("friend_joined", f"friend:{frank.pk}", "skipped")

    # Clicking again changes nothing, and the page says so.
    provider.post(url)
    erin.refresh_from_db()
    assert erin.consent_withdrawn_at == withdrawn_at
    assert "You already asked us" in Client().get(url).content.decode()


def test_the_confirm_button_unsubscribes_too(welcomed):
    erin, email = welcomed
    browser = Client(enforce_csrf_checks=True)
    url = link_to(email, "/unsubscribe/")
    browser.get(url)
    assert browser.post(url, {"List-Unsubscribe": "One-Click"}).status_code == 200
    erin.refresh_from_db()
    assert erin.consent_withdrawn_at is not None


def test_a_tampered_unsubscribe_link_changes_nothing(client, alice):
    token = unsubscribe_token(alice)
    for bad in (token[:-2] + "xx", f"{alice.pk + 1}:{token.split(':', 1)[1]}", "nonsense"):
        response = client.post(f"/unsubscribe/{bad}/")
        assert response.status_code == 400
        assert "This link does not work" in response.content.decode()
    alice.refresh_from_db()
    assert alice.consent_withdrawn_at is None


def test_an_unsubscribe_link_is_for_one_participant(client, campaign, alice):
    bob = join(campaign, "bob", referrer=alice)
    client.post(f"/unsubscribe/{unsubscribe_token(bob)}/")
    alice.refresh_from_db()
    bob.refresh_from_db()
    assert bob.consent_withdrawn_at is not None and alice.consent_withdrawn_at is None


def test_the_pages_are_in_chinese_for_a_chinese_browser(welcomed):
    _erin, email = welcomed
    url = link_to(email, "/unsubscribe/")
    html = Client().get(url, HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    assert "停止接收邮件" in html
