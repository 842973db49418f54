"""GET /p/<token>/: the participant's own page."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
from django.utils import timezone

from tests.factories import join

pytestmark = pytest.mark.django_db


def page(client, participant, **headers):
    response = client.get(f"/p/{participant.token}/", **headers)
    assert response.status_code == 200
    return response


def test_the_page_shows_the_invite_link_copy_button_and_qr_code(phone, copy, alice):
    html = page(phone, alice).content.decode()
    link = f"http://testserver/r/{alice.code}"
    assert f'value="{link}"' in html
    assert 'data-copy-target="invite-url"' in html
    assert f'src="/p/{alice.token}/qr.svg"' in html and 'alt="QR code of your invite link"' in html
    assert f'href="/p/{alice.token}/poster.png"' in html
    assert f'href="/p/{alice.token}/qr.png"' in html
    assert '<script src="/static/fission/share.js" defer></script>' in html


def test_the_share_buttons_carry_the_invite_link(phone, copy, alice):
    html = page(phone, alice).content.decode()
    link = f"http://testserver/r/{alice.code}"
    hrefs = [part.split('"', 1)[0] for part in html.split('href="')[1:]]
    by_host = {urlparse(h).netloc or urlparse(h).scheme: h.replace("&amp;", "&") for h in hrefs}
    assert link in parse_qs(urlparse(by_host["wa.me"]).query)["text"][0]
    assert parse_qs(urlparse(by_host["t.me"]).query)["url"] == [link]
    assert link in parse_qs(urlparse(by_host["line.me"]).query)["text"][0]
    assert parse_qs(urlparse(by_host["x.com"]).query)["url"] == [link]
    assert by_host["mailto"].startswith("mailto:?subject=")
    assert by_host["sms"].startswith("sms:?&body=")
    assert f'data-share-url="{link}"' in html and "hidden" in html  # shown by script if supported


def test_progress_to_the_next_tier_is_a_bar(phone, copy, alice, bob, dave):
    for friend in (bob, dave):
        friend.qualified_at = timezone.now()
        friend.save()
    html = page(phone, alice).content.decode()
    assert '<progress id="tier-progress" max="3" value="2">' in html
    assert "1 more qualified friend to unlock: 50.00 CNY coupon" in html


def test_every_reward_unlocked_says_so(phone, copy, campaign, alice):
    for n in range(5):
        friend = join(campaign, f"friend{n}", referrer=alice)
        friend.qualified_at = timezone.now()
        friend.save()
    html = page(phone, alice).content.decode()
    assert "<progress" not in html and "You have unlocked every reward" in html


def test_referrals_are_shown_by_first_name_only(phone, copy, campaign, alice, bob, dave):
    bob.name = "Bob Li"
    bob.save()
    join(campaign, "王小明", referrer=alice, email="wang@example.com")
    html = page(phone, alice).content.decode()
    assert "3 friends joined" in html
    assert "<li>Bob</li>" in html and "Li</li>" not in html
    assert "<li>Dave</li>" in html
    assert "王**" in html and "小明" not in html


def test_carols_join_shows_on_bobs_page_not_alices(phone, copy, alice, bob, carol):
    assert "<li>Carol</li>" in page(phone, bob).content.decode()
    assert "<li>Carol</li>" not in page(phone, alice).content.decode()


def test_no_referrals_yet_encourages_sharing(phone, copy, carol):
    assert "Nobody has joined through your link yet" in page(phone, carol).content.decode()


def test_the_page_is_in_chinese_for_a_chinese_browser(phone, copy, alice):
    html = page(phone, alice, HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    assert "邀请好友，一起赢奖励" in html and "复制" in html and "你的二维码" in html
    assert "和我一起参加" in html


def test_the_page_is_private(phone, copy, alice):
    response = page(phone, alice)
    assert "no-store" in response["Cache-Control"] or "private" in response["Cache-Control"]
    assert response["X-Robots-Tag"] == "noindex, nofollow"


def test_a_closed_campaign_says_so_on_the_page(phone, copy, campaign, alice):
    campaign.status = "ended"
    campaign.save()
    assert "no longer takes new participants" in page(phone, alice).content.decode()


@pytest.mark.parametrize(
    "token",
    ["x" * 32, "short", "../../../etc/passwd", "<script>alert(1)</script>", "A" * 33],
)
@pytest.mark.parametrize("suffix", ["", "qr.svg", "qr.png", "poster.png"])
def test_unknown_or_malformed_tokens_are_a_friendly_404(phone, alice, token, suffix):
    response = phone.get(f"/p/{token}/{suffix}")
    assert response.status_code == 404
    assert "Traceback" not in response.content.decode(errors="replace")


def test_a_participants_code_is_not_their_token(phone, alice):
    assert phone.get(f"/p/{alice.code}/").status_code == 404


def test_the_page_lists_the_rewards_earned_with_where_they_stand(client, campaign, alice):
    """A sign-up campaign: bob joining through alice's link earns bob his welcome reward
    and, at one friend, alice her first tier; both wait out the holding period."""
    from apps.rewards.models import Reward
    from tests.factories import RefereeRewardFactory, RewardTierFactory

    RewardTierFactory(campaign=campaign, threshold=1, amount="5.00", description="Thank-you coupon")
    RefereeRewardFactory(campaign=campaign, amount="20.00", description="20 CNY off")
    bob = join(campaign, "bob", referrer=alice)
    assert Reward.objects.filter(participant=alice, state="held").count() == 1

    html = page(client, alice).content.decode()
    assert "Your rewards" in html
    assert "Thank-you coupon" in html and "5.00 CNY" in html
    assert "Confirmed after" in html
    assert "Earned so far: 5.00 CNY" in html
    assert "20 CNY off" not in html  # bob's, not alice's

    chinese = page(client, bob, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "20 CNY off" in chinese and "20.00 CNY" in chinese
    assert "你的奖励" in chinese

    Reward.objects.filter(participant=alice).update(state="approved")
    assert "Approved" in page(client, alice).content.decode()


def test_a_participant_without_rewards_sees_no_reward_section(client, alice):
    assert "Your rewards" not in page(client, alice).content.decode()


def test_tiers_already_unlocked_are_ticked(client, campaign, alice):
    """The fixture's tiers are at 3 and 5 friends; in a sign-up campaign each friend who
    joins through alice's link qualifies at once."""
    for n in range(3):
        join(campaign, f"friend{n}", referrer=alice)
    html = page(client, alice).content.decode()
    assert html.count('<li class="done">') == 1
    assert "2 more qualified friends to unlock" in html
    landing = client.get(f"/c/{campaign.slug}/").content.decode()
    assert 'class="done"' not in landing
