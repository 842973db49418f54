"""A person reviews what the fraud rules decided (PIPL art. 24): overturn (the referee
counts again, tiers are re-evaluated, rewards held for review go on) or uphold (blocked,
unpaid rewards rejected with the reason), through the admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.referrals.models import FraudFlag, Participant
from apps.referrals.selectors import qualified_referral_count
from apps.rewards.lifecycle import rewards_release_due
from apps.rewards.models import Conversion, Reward, RewardTransition
from apps.rewards.services import conversion_ingest
from apps.trust.tasks import check_referral_quality
from tests.factories import RefereeRewardFactory, join

from .conftest import set_rule

pytestmark = pytest.mark.django_db
PARTICIPANTS = "/admin/referrals/participant/"
FLAGS = "/admin/referrals/fraudflag/"


@pytest.fixture
def friends(campaign, alice):
    """Alice brought bob and carol, and a third friend on a throwaway address whom the
    rules flagged: two count, the tier at three is not reached."""
    RefereeRewardFactory(campaign=campaign)
    bob = join(campaign, "bob", referrer=alice)
    carol = join(campaign, "carol", referrer=alice)
    grab = join(campaign, "grab", referrer=alice, email="grab@mailinator.com")
    return bob, carol, grab


def tiers(participant: Participant) -> list[tuple[int, str]]:
    return list(
        Reward.objects.filter(participant=participant, source="tier")
        .order_by("id")
        .values_list("tier_threshold", "state")
    )


def act(client, url: str, action: str, ids: list[int], reason: str = ""):
    return client.post(
        url, {"action": action, "_selected_action": ids, "reason": reason}, follow=True
    )


def test_a_flagged_friend_does_not_count_toward_tiers(friends, alice):
    _bob, _carol, grab = friends
    assert grab.status == "flagged"
    assert qualified_referral_count(alice) == 2
    assert tiers(alice) == []
    assert Reward.objects.get(participant=grab).state == "pending"  # their own, for review


def test_the_flags_and_their_reasons_are_shown_on_the_participants_page(olga, friends):
    grab = friends[2]
    html = olga.get(f"{PARTICIPANTS}{grab.pk}/change/").content.decode()
    assert "disposable_email" in html and "Uses a throwaway email domain" in html
    listing = olga.get(f"{FLAGS}?code=disposable_email").content.decode()
    assert grab.code in listing and "Uses a throwaway email domain" in listing


def test_overturning_counts_the_friend_again_and_grants_the_tier(olga, friends, alice):
    grab = friends[2]
    response = act(olga, PARTICIPANTS, "overturn", [grab.pk], reason="called her: real person")
    assert response.status_code == 200
    assert "1 participant cleared" in response.content.decode()

    grab.refresh_from_db()
    assert grab.status == "active"
    flag = grab.flags.get()
    assert (flag.resolution, flag.resolved_by) == ("overturned", "admin:olga")
    assert flag.resolution_note == "called her: real person" and flag.resolved_at
    # The referrer's tier, through the reward engine, caused by the review decision.
    assert tiers(alice) == [(3, "held")]
    tier = Reward.objects.get(participant=alice, source="tier")
    assert tier.conversion.type == "review"
    assert tier.transitions.get().actor == "admin:olga"
    # The friend's own reward, held for review, goes on (held until its holding period).
    own = Reward.objects.get(participant=grab)
    assert own.state == "held"
    last = own.transitions.order_by("id").last()
    assert "overturned" in last.reason and last.actor == "admin:olga"


def test_upholding_blocks_and_rejects_the_unpaid_rewards_with_the_reason(olga, friends, alice):
    grab = friends[2]
    response = act(olga, FLAGS, "uphold", list(grab.flags.values_list("pk", flat=True)), "fake")
    assert response.status_code == 200
    grab.refresh_from_db()
    assert grab.status == "blocked"
    assert grab.flags.get().resolution == "upheld"
    own = Reward.objects.get(participant=grab)
    assert own.state == "rejected"
    last = own.transitions.order_by("id").last()
    assert last.reason == "fraud review: disposable_email upheld (fake)"
    assert tiers(alice) == []


def test_an_operator_can_block_someone_no_rule_flagged_and_the_reason_is_kept(olga, friends, alice):
    bob = friends[0]
    bob_reward = Reward.objects.get(participant=bob)
    assert bob_reward.state == "held"
    act(olga, PARTICIPANTS, "uphold", [bob.pk], reason="bought accounts")
    bob.refresh_from_db()
    assert bob.status == "blocked"
    flag = bob.flags.get()
    assert (flag.code, flag.reason, flag.resolution) == ("manual", "bought accounts", "upheld")
    bob_reward.refresh_from_db()
    assert bob_reward.state == "rejected"


def test_a_blocked_join_overturned_can_register_again_through_the_api(api, olga, campaign):
    set_rule(campaign, "disposable_email", "block")
    body = {"email": "qa@mailinator.com", "consent": True}
    url = "/api/v1/campaigns/spring/participants/"
    assert api.post(url, body, format="json").status_code == 403
    blocked = Participant.objects.get(email="qa@mailinator.com")
    act(olga, PARTICIPANTS, "overturn", [blocked.pk], reason="our QA address")
    response = api.post(url, body, format="json")
    assert response.status_code == 200
    assert response.json()["id"] == blocked.pk


def test_the_release_job_leaves_a_flagged_participants_rewards_for_review(friends, alice):
    bob = friends[0]
    reward = Reward.objects.get(participant=bob)
    Participant.objects.filter(pk=bob.pk).update(status="flagged")
    rewards_release_due(now=timezone.now() + timedelta(days=15))
    reward.refresh_from_db()
    assert reward.state == "held"
    Participant.objects.filter(pk=bob.pk).update(status="active")
    rewards_release_due(now=timezone.now() + timedelta(days=15))
    reward.refresh_from_db()
    assert reward.state == "approved"


def test_the_review_queue_lists_a_flagged_participants_rewards(olga, friends):
    grab = friends[2]
    html = olga.get("/admin/rewards/rewardreview/").content.decode()
    assert f"?participant__id__exact={grab.pk}" in html


# --- the nightly check: friends who never come back ---------------------------------------


@pytest.fixture
def farm(campaign):
    """Gina brought alice, xavier and yolanda long ago (her tier at three). Alice brought
    five friends who never came back; yolanda's friend verified their sign-up, so the
    host does report who comes back."""
    long_ago = timezone.now() - timedelta(days=40)
    gina = join(campaign, "gina", joined_at=long_ago)
    alice = join(campaign, "alice", referrer=gina, joined_at=long_ago)
    join(campaign, "xavier", referrer=gina, joined_at=long_ago)
    yolanda = join(campaign, "yolanda", referrer=gina, joined_at=long_ago)
    for n in range(5):
        join(campaign, f"ghost{n}", referrer=alice, joined_at=long_ago)
    real = join(campaign, "zoe", referrer=yolanda, joined_at=long_ago)
    conversion_ingest(type="signup_verified", campaign_slug="spring", participant_id=real.pk)
    return gina, alice


def test_an_inviter_whose_friends_never_come_back_is_flagged_nightly(farm):
    gina, alice = farm
    assert tiers(gina) == [(3, "held")]
    assert [t for t, _ in tiers(alice)] == [3, 5]

    check_referral_quality()

    alice.refresh_from_db()
    assert alice.status == "flagged"
    flag = alice.flags.get()
    assert flag.code == "dead_referrals"
    assert flag.evidence == {"friends": 5, "never_came_back": 5, "share": 1.0, "days": 30}
    # Alice no longer counts for gina: her tier is taken back, caused by a review event.
    assert tiers(gina) == [(3, "reversed")]
    reversal = RewardTransition.objects.filter(reward__participant=gina).order_by("id").last()
    assert reversal.actor == "fraud rules" and reversal.conversion.type == "review"
    # Alice's own tiers wait in the review queue: the release job leaves them.
    rewards_release_due(now=timezone.now() + timedelta(days=15))
    assert {s for _, s in tiers(alice)} == {"held"}
    # Running it again raises nothing new.
    check_referral_quality()
    assert FraudFlag.objects.count() == 1


def test_overturning_the_nightly_flag_gives_the_tier_back(olga, farm):
    gina, alice = farm
    check_referral_quality()
    act(olga, PARTICIPANTS, "overturn", [alice.pk], reason="a school class, slow starters")
    assert tiers(gina) == [(3, "reversed"), (3, "held")]  # regained as a new entry
    # And a person's decision stands: the check does not raise it again.
    check_referral_quality()
    alice.refresh_from_db()
    assert alice.status == "active"


def test_a_campaign_whose_host_never_reports_comebacks_is_not_judged(campaign):
    long_ago = timezone.now() - timedelta(days=40)
    alice = join(campaign, "alice", joined_at=long_ago)
    for n in range(6):
        join(campaign, f"f{n}", referrer=alice, joined_at=long_ago)
    check_referral_quality()
    assert not FraudFlag.objects.exists()
    assert not Conversion.objects.filter(type="review").exists()


def test_the_nightly_check_can_block(farm, campaign):
    _gina, alice = farm
    set_rule(campaign, "dead_referrals", "block", threshold=5, min_share="0.9")
    check_referral_quality()
    alice.refresh_from_db()
    assert alice.status == "blocked"
    assert alice.flags.get().action == "block"
