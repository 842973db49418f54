"""The moments that matter: joining, a friend joining or qualifying, rewards, one friend
away; in the participant's language, with links that work."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from apps.campaigns.models import Campaign
from apps.notifications.models import CampaignMessage, MessageText
from apps.rewards.lifecycle import rewards_release_due
from tests.factories import (
    CampaignFactory,
    LandingCopyFactory,
    RefereeRewardFactory,
    RewardTierFactory,
    join,
)
from tests.rewards.helpers import event

from .conftest import html_of, link_to, links, log, sent_to, web_join

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(db) -> Campaign:
    """A purchase campaign: a referee reward, tiers at 2 and 3 friends, 7 days' holding."""
    campaign = CampaignFactory(
        slug="shop",
        qualifying_event="purchase",
        min_purchase_amount=Decimal("10.00"),
        holding_days=7,
    )
    RefereeRewardFactory(campaign=campaign, description="20 CNY off your first order")
    RewardTierFactory(campaign=campaign, threshold=2, amount=Decimal("50.00"))
    RewardTierFactory(campaign=campaign, threshold=3, amount=Decimal(0), kind="membership",
                      description="Member for a year")  # fmt: skip
    LandingCopyFactory(campaign=campaign, language="en", headline="Shop with friends")
    LandingCopyFactory(campaign=campaign, language="zh-hans", headline="和好友一起买")
    return campaign


def buy(participant, order: str):
    return event("purchase", participant, order, "50.00")


def test_the_welcome_carries_invite_qr_and_poster_links_that_work(
    client, copy, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        erin = web_join(client, copy, "erin")
    (email,) = sent_to(erin)
    assert email.subject == "Welcome to Invite friends, earn rewards: your invite link"
    assert email.from_email == "Fission <noreply@localhost>"
    assert email.body.startswith("Hi Erin,\n\nWelcome to Invite friends, earn rewards!")
    visitor = Client()
    invite = link_to(email, "/r/")
    assert invite == f"/r/{erin.code}"
    assert visitor.get(invite).status_code == 302
    qr = link_to(email, f"/p/{erin.token}/qr.png")
    assert visitor.get(qr)["Content-Type"] == "image/png"
    poster = link_to(email, f"/p/{erin.token}/poster.png")
    assert visitor.get(poster)["Content-Type"] == "image/png"
    assert visitor.get(link_to(email, f"/p/{erin.token}/")).status_code == 200
    # The HTML part shows the QR code itself, and escapes what it is given.
    html = html_of(email)
    assert f'<img src="http://testserver{qr}"' in html
    assert "<p>Hi Erin,</p>" in html


def test_every_link_in_every_email_leads_somewhere(
    client, copy, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        erin = web_join(client, copy, "erin")
        web_join(Client(), copy, "frank", ref=erin.code)
    assert len(mail.outbox) == 3
    for email in mail.outbox:
        for path in links(email):
            response = Client().get(path)
            assert response.status_code in (200, 302), (path, response.status_code)


def test_a_friend_joining_tells_the_inviter(client, copy, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        erin = web_join(client, copy, "erin")
        frank = web_join(Client(), copy, "frank", ref=erin.code)
    (_welcome, joined) = sent_to(erin)
    assert joined.subject == "Frank joined through your link"
    assert "Frank just joined Invite friends, earn rewards" in joined.body
    assert log(erin) == [
        ("welcome", "join", "sent"),
        ("friend_joined", f"friend:{frank.pk}", "sent"),
    ]


def test_a_returning_person_gets_no_second_welcome(
    client, copy, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        erin = web_join(client, copy, "erin")
        web_join(Client(), copy, "erin")
    assert len(sent_to(erin)) == 1


def test_messages_are_in_the_participants_language(
    client, copy, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        wang = web_join(client, copy, "wang", HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
        web_join(Client(), copy, "li", ref=wang.code)
    (welcome, joined) = sent_to(wang)
    assert welcome.subject == "欢迎参加「邀请好友，一起赢奖励」：这是你的邀请链接"
    assert welcome.body.startswith("Wang，你好：\n\n欢迎参加「邀请好友，一起赢奖励」！")
    assert f"http://testserver/r/{wang.code}" in welcome.body
    assert "不再接收这些邮件" in welcome.body
    assert joined.subject == "Li 通过你的链接加入了"
    assert '<html lang="zh-Hans">' in html_of(joined)
    # Links right after Chinese punctuation are clickable in the HTML part too.
    assert links(welcome)


def test_an_api_registration_is_welcomed_without_verification(
    api, verified, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/api/v1/campaigns/verify/participants/",
            {"email": "host-user@example.com", "name": "Hana", "consent": True},
            format="json",
        )
    assert response.status_code == 201
    (email,) = mail.outbox
    assert email.to == ["host-user@example.com"] and email.subject.startswith("Welcome to")
    with django_capture_on_commit_callbacks(execute=True):
        again = api.post(
            "/api/v1/campaigns/verify/participants/",
            {"email": "host-user@example.com", "consent": True},
            format="json",
        )
    assert again.status_code == 200 and len(mail.outbox) == 1


def test_the_operators_words_are_used_in_each_language(
    client, copy, django_capture_on_commit_callbacks
):
    welcome = CampaignMessage.objects.create(campaign=copy, kind="welcome")
    MessageText.objects.create(
        message=welcome,
        language="en",
        subject="{name}, you're in!",
        body="Share {invite_link} and earn {next_tier}. {{Braces}} stay.",
    )
    with django_capture_on_commit_callbacks(execute=True):
        erin = web_join(client, copy, "erin")
        wang = web_join(Client(), copy, "wang", HTTP_ACCEPT_LANGUAGE="zh-CN")
    (english,) = sent_to(erin)
    assert english.subject == "Erin, you're in!"
    assert english.body.startswith(
        f"Share http://testserver/r/{erin.code} and earn 50.00 CNY coupon. {{Braces}} stay."
    )
    (chinese,) = sent_to(wang)  # no Chinese text of the operator's: the default one
    assert chinese.subject.startswith("欢迎参加")


def test_a_friend_qualifying_tells_the_inviter_and_the_reward_follows(
    shop, django_capture_on_commit_callbacks
):
    alice = join(shop, "alice")
    bob = join(shop, "bob", referrer=alice)
    with django_capture_on_commit_callbacks(execute=True):
        buy(bob, "o-1")
    qualified = sent_to(alice)[0]
    assert qualified.subject == "Bob now counts toward your rewards"
    assert "Bob has completed the step that counts" in qualified.body
    (unlocked,) = sent_to(bob)  # bob's own referee reward, held for 7 days
    assert unlocked.subject == "You unlocked a reward: 20 CNY off your first order"
    assert log(alice)[0] == ("friend_qualified", f"friend:{bob.pk}", "sent")


def test_one_friend_away_then_the_tier_unlocked_then_approved(
    shop, django_capture_on_commit_callbacks
):
    alice = join(shop, "alice")
    friends = [join(shop, name, referrer=alice) for name in ("bob", "dave", "erin")]
    with django_capture_on_commit_callbacks(execute=True):
        buy(friends[0], "o-1")
    assert [m.subject for m in sent_to(alice)] == [
        "Bob now counts toward your rewards",
        "One more friend to unlock 50.00 CNY coupon",
    ]
    mail.outbox = []
    with django_capture_on_commit_callbacks(execute=True):
        buy(friends[1], "o-2")
    assert [m.subject for m in sent_to(alice)] == [
        "Dave now counts toward your rewards",
        "One more friend to unlock Member for a year",
        "You unlocked a reward: 50.00 CNY coupon",
    ]
    mail.outbox = []
    with django_capture_on_commit_callbacks(execute=True):
        buy(friends[2], "o-3")
    assert "You unlocked a reward: Member for a year" in [m.subject for m in sent_to(alice)]

    mail.outbox = []
    with django_capture_on_commit_callbacks(execute=True):
        rewards_release_due(now=timezone.now() + timedelta(days=8))
    subjects = sorted(m.subject for m in sent_to(alice))
    assert subjects == [
        "Your reward is confirmed: 50.00 CNY coupon",
        "Your reward is confirmed: Member for a year",
    ]
    # Commissions and corrections are not announced; each reward once per message kind.
    kinds = [kind for kind, _cause, _status in log(alice)]
    assert kinds.count("reward_unlocked") == 2 and kinds.count("reward_approved") == 2
    with django_capture_on_commit_callbacks(execute=True):
        rewards_release_due(now=timezone.now() + timedelta(days=9))
    assert len(sent_to(alice)) == 2


def test_a_repeated_event_sends_nothing_again(shop, django_capture_on_commit_callbacks):
    alice = join(shop, "alice")
    bob = join(shop, "bob", referrer=alice)
    with django_capture_on_commit_callbacks(execute=True):
        buy(bob, "o-1")
    sent = len(mail.outbox)
    with django_capture_on_commit_callbacks(execute=True):
        buy(bob, "o-1")
    assert len(mail.outbox) == sent


def test_a_reward_granted_approved_at_once_is_announced_once(
    verified, client, django_capture_on_commit_callbacks
):
    """No holding period: approved at grant, and only "unlocked" is sent."""
    alice = join(verified, "alice")
    with django_capture_on_commit_callbacks(execute=True):
        bob = web_join(client, verified, "bob", ref=alice.code)
    with django_capture_on_commit_callbacks(execute=True):
        client.get(link_to(sent_to(bob)[0], "/verify/"))
    subjects = [m.subject for m in sent_to(alice)]
    assert subjects == [
        "Bob joined through your link",
        "Bob now counts toward your rewards",
        "One more friend to unlock 30 CNY coupon",
        "You unlocked a reward: 10 CNY coupon",
    ]


def test_a_seed_qualifying_tells_nobody_else(shop, django_capture_on_commit_callbacks):
    alice = join(shop, "alice")
    with django_capture_on_commit_callbacks(execute=True):
        buy(alice, "o-1")
    assert mail.outbox == []
