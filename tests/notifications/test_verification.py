"""Double opt-in: the verification email, its link, the "check your inbox" box and resends."""

from __future__ import annotations

import time
from unittest import mock

import pytest
from django.core import mail
from django.db import connection
from django.test import Client

from apps.notifications.models import Message
from apps.notifications.tokens import verify_token
from apps.rewards.models import Conversion, Reward
from tests.factories import join

from .conftest import link_to, log, race, sent_to, web_join

pytestmark = pytest.mark.django_db


def test_a_web_join_sends_a_verification_email_and_nothing_else(
    client, verified, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        erin = web_join(client, verified, "erin")
    assert log(erin) == [("verify", "join", "sent")]
    (email,) = sent_to(erin)
    assert email.subject == "Confirm your email address for Confirm and win"
    assert link_to(email, "/verify/")
    assert erin.verified_at is None and erin.qualified_at is None


def test_following_the_link_verifies_qualifies_and_welcomes_once(
    client, verified, django_capture_on_commit_callbacks
):
    alice = join(verified, "alice")
    with django_capture_on_commit_callbacks(execute=True):
        bob = web_join(client, verified, "bob", ref=alice.code)
    verify_path = link_to(sent_to(bob)[0], "/verify/")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.get(verify_path)
    assert response.status_code == 200
    assert 'data-testid="verified"' in response.content.decode()
    assert "Your address is confirmed" in response.content.decode()
    bob.refresh_from_db()
    assert bob.verified_at is not None and bob.qualified_at is not None
    # Recorded as if the host had posted signup_verified, through the rewards engine.
    (conversion,) = Conversion.objects.filter(participant=bob)
    assert conversion.type == "signup_verified"
    assert Reward.objects.filter(participant=alice, source="tier", tier_threshold=1).exists()
    assert log(bob) == [("verify", "join", "sent"), ("welcome", "join", "sent")]
    history = Reward.objects.get(participant=alice).transitions.get()
    assert history.actor == "email verification"

    # The same link again: a friendly page, no second event, no second welcome.
    sent_before = len(mail.outbox)
    with django_capture_on_commit_callbacks(execute=True):
        again = client.get(verify_path)
    assert again.status_code == 200
    assert "Your address is confirmed already" in again.content.decode()
    assert Conversion.objects.filter(participant=bob).count() == 1
    assert len(mail.outbox) == sent_before


def test_an_expired_link_says_so_and_changes_nothing(
    client, verified, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        erin = web_join(client, verified, "erin")
    hours = settings.FISSION["VERIFY_LINK_MAX_AGE_HOURS"]
    with mock.patch("django.core.signing.time.time", return_value=time.time() - hours * 3600 - 60):
        old = verify_token(erin)
    response = client.get(f"/verify/{old}/")
    assert response.status_code == 400
    html = response.content.decode()
    assert "This link has expired" in html and f'href="/p/{erin.token}/"' in html
    erin.refresh_from_db()
    assert erin.verified_at is None and not Conversion.objects.exists()


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # the signature changed
        lambda t: t[:10],  # cut short
        lambda t: "x" + t,  # the payload changed
    ],
)
def test_a_tampered_link_is_a_friendly_page_and_changes_nothing(
    client, verified, tamper, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        erin = web_join(client, verified, "erin")
    response = client.get(f"/verify/{tamper(verify_token(erin))}/")
    assert response.status_code == 400
    assert "This link does not work" in response.content.decode()
    assert "Traceback" not in response.content.decode()
    erin.refresh_from_db()
    assert erin.verified_at is None and not Conversion.objects.exists()


def test_a_link_for_an_address_since_changed_does_not_work(client, verified):
    erin = join(verified, "erin")
    token = verify_token(erin)
    erin.email, erin.email_normalized = "other@example.com", "other@example.com"
    erin.save()
    assert client.get(f"/verify/{token}/").status_code == 400
    erin.refresh_from_db()
    assert erin.verified_at is None


def test_a_link_checker_peeking_with_head_verifies_nothing(client, verified):
    erin = join(verified, "erin")
    assert client.head(f"/verify/{verify_token(erin)}/").status_code == 405
    erin.refresh_from_db()
    assert erin.verified_at is None


def test_sign_up_campaigns_welcome_at_once_without_verification(
    client, copy, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        erin = web_join(client, copy, "erin")
    assert log(erin) == [("welcome", "join", "sent")]
    page = client.get(f"/p/{erin.token}/").content.decode()
    assert 'data-testid="verify-notice"' not in page


def test_the_personal_page_says_check_your_inbox_until_verified(
    client, verified, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        erin = web_join(client, verified, "erin")
    page = client.get(f"/p/{erin.token}/").content.decode()
    assert 'data-testid="verify-notice"' in page and "Check your inbox" in page
    assert "e***@example.com" in page and "erin@example.com" not in page
    assert f'action="/p/{erin.token}/verify/resend"' in page

    with django_capture_on_commit_callbacks(execute=True):
        client.get(link_to(sent_to(erin)[0], "/verify/"))
    page = client.get(f"/p/{erin.token}/").content.decode()
    assert 'data-testid="verify-notice"' not in page


def test_the_box_is_in_chinese_for_a_chinese_browser(
    client, verified, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        erin = web_join(client, verified, "erin", HTTP_ACCEPT_LANGUAGE="zh-CN")
    page = client.get(f"/p/{erin.token}/", HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    assert "请查看你的邮箱" in page and "重新发送链接" in page
    (email,) = sent_to(erin)
    assert email.subject == "请确认你参加「确认邮箱赢奖励」的邮箱地址"


def test_resending_takes_a_post_with_a_csrf_token(verified, django_capture_on_commit_callbacks):
    browser = Client(enforce_csrf_checks=True)
    with django_capture_on_commit_callbacks(execute=True):
        erin = web_join(Client(), verified, "erin")
    resend = f"/p/{erin.token}/verify/resend"
    assert browser.get(resend).status_code == 405
    assert browser.post(resend).status_code == 403  # no CSRF token
    assert len(sent_to(erin)) == 1

    page = browser.get(f"/p/{erin.token}/").content.decode()
    token = page.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(resend, {"csrfmiddlewaretoken": token})
    assert response.status_code == 200 and 'data-outcome="sent"' in response.content.decode()
    first, second = sent_to(erin)
    assert link_to(second, "/verify/") and second.subject == first.subject
    # The newer link works.
    assert Client().get(link_to(second, "/verify/")).status_code == 200


def test_resending_is_rate_limited_per_participant(
    client, verified, settings, django_capture_on_commit_callbacks
):
    settings.FISSION = {**settings.FISSION, "VERIFY_RESEND_RATE_LIMIT": "2/h"}
    with django_capture_on_commit_callbacks(execute=True):
        erin = web_join(client, verified, "erin")
    resend = f"/p/{erin.token}/verify/resend"
    statuses = []
    for n in range(4):
        with django_capture_on_commit_callbacks(execute=True):
            # From a new address each time: the participant's own limit holds.
            statuses.append(client.post(resend, REMOTE_ADDR=f"198.51.100.{n}").status_code)
    assert statuses == [200, 200, 429, 429]
    assert len(sent_to(erin)) == 3  # the join's email and two resends
    limited = client.post(resend)
    assert limited["Retry-After"] and "Too many tries" in limited.content.decode()


def test_resending_is_rate_limited_per_email_address_across_campaigns(
    client, verified, settings, django_capture_on_commit_callbacks
):
    from tests.factories import CampaignFactory

    settings.FISSION = {**settings.FISSION, "VERIFY_RESEND_RATE_LIMIT": "1/h"}
    other = CampaignFactory(slug="other", qualifying_event="verified_signup")
    with django_capture_on_commit_callbacks(execute=True):
        first = web_join(client, verified, "erin")
        second = web_join(client, other, "erin")
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"/p/{first.token}/verify/resend").status_code == 200
        assert client.post(f"/p/{second.token}/verify/resend").status_code == 429
    assert len(mail.outbox) == 3


def test_resending_is_rate_limited_per_client_address(
    client, verified, settings, django_capture_on_commit_callbacks
):
    settings.FISSION = {**settings.FISSION, "VERIFY_RESEND_IP_RATE_LIMIT": "2/h"}
    people = []
    with django_capture_on_commit_callbacks(execute=True):
        for name in ("erin", "frank", "grace"):
            people.append(web_join(client, verified, name))
    statuses = [
        client.post(f"/p/{p.token}/verify/resend", REMOTE_ADDR="203.0.113.7").status_code
        for p in people
    ]
    assert statuses == [200, 200, 429]


def test_resending_stops_at_the_lifetime_maximum_without_the_cache(
    client, verified, settings, django_capture_on_commit_callbacks
):
    settings.RATELIMIT_ENABLE = False
    settings.FISSION = {**settings.FISSION, "VERIFY_RESEND_MAX": 2}
    with django_capture_on_commit_callbacks(execute=True):
        erin = web_join(client, verified, "erin")
        outcomes = [client.post(f"/p/{erin.token}/verify/resend") for _ in range(4)]
    assert [r.status_code for r in outcomes] == [200, 200, 429, 429]
    assert Message.objects.filter(participant=erin, kind="verify").count() == 3
    assert len(sent_to(erin)) == 3


def test_resending_once_verified_sends_nothing(
    client, verified, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        erin = web_join(client, verified, "erin")
    with django_capture_on_commit_callbacks(execute=True):
        client.get(link_to(sent_to(erin)[0], "/verify/"))
    outbox = len(mail.outbox)
    response = client.post(f"/p/{erin.token}/verify/resend")
    assert 'data-outcome="not_needed"' in response.content.decode()
    assert len(mail.outbox) == outbox


def test_resending_for_an_unknown_page_is_404(client, verified):
    assert client.post("/p/" + "x" * 32 + "/verify/resend").status_code == 404


def test_messages_wait_for_verification(client, verified, django_capture_on_commit_callbacks):
    """Double opt-in: an address nobody has confirmed gets nothing but the verification
    email, even when a friend joins through its owner's link."""
    with django_capture_on_commit_callbacks(execute=True):
        erin = web_join(client, verified, "erin")
        web_join(Client(), verified, "frank", ref=erin.code)
    assert log(erin) == [
        ("verify", "join", "sent"),
        ("friend_joined", f"friend:{erin.referrals.get().pk}", "skipped"),
    ]
    assert len(sent_to(erin)) == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="races need PostgreSQL")
def test_following_the_link_many_times_at_once_verifies_once(verified):
    alice = join(verified, "alice")
    bob = join(verified, "bob", referrer=alice)
    Message.objects.create(campaign=verified, participant=bob, kind="verify", cause="join")
    path = f"/verify/{verify_token(bob)}/"
    statuses = race(10, lambda _i: Client().get(path).status_code)
    assert statuses == [200] * 10
    assert Conversion.objects.filter(participant=bob).count() == 1
    assert Reward.objects.filter(participant=alice, source="tier").count() == 1
    assert Message.objects.filter(participant=bob, kind="welcome").count() == 1
    assert len(sent_to(bob)) == 1  # the welcome (the verify row above was never sent)
