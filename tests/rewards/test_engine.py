"""The reward rules: qualification, referee rewards, tiers, commissions, caps, holding."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.campaigns.models import Campaign
from apps.referrals.models import Participant
from apps.rewards.models import Conversion, Reward, RewardTransition
from tests.factories import (
    CampaignFactory,
    CommissionLevelFactory,
    RefereeRewardFactory,
    RewardTierFactory,
    join,
)

from .helpers import entries, owed, purchase, verify

pytestmark = pytest.mark.django_db


def test_a_qualifying_purchase_pays_commissions_at_depth_two_and_the_referee_reward(
    shop, alice, bob, carol
):
    # ORACLES: 10 % and 5 % on 50.00 CNY at depth 2 -> 5.00 and 2.50.
    result = purchase(carol, "o-1", "50.00")
    assert result.status == 201
    assert entries(bob) == [("commission", 1, "5.00", "held")]
    assert entries(alice) == [("commission", 2, "2.50", "held")]
    assert entries(carol) == [("referee", None, "20.00", "held")]
    carol.refresh_from_db()
    assert carol.qualified_at is not None
    commission = Reward.objects.get(participant=bob)
    assert commission.order_id == "o-1" and commission.percent == Decimal("10.00")
    assert commission.due_at - commission.created_at == timedelta(days=14)
    assert {r["source"] for r in result.body["rewards"]} == {"commission", "referee"}
    assert result.body["qualified"] is True and result.body["status"] == "applied"


def test_commission_is_rounded_half_up_once_to_the_minor_unit(shop, alice, bob):
    purchase(bob, "o-1", "33.33")  # ORACLES: 10 % of 33.33 -> 3.33
    purchase(bob, "o-2", "10.05")  # 1.005 -> 1.01 (half up), not banker's 1.00
    assert [e[2] for e in entries(alice)] == ["3.33", "1.01"]


def test_a_purchase_below_the_minimum_neither_qualifies_nor_pays(shop, alice, bob):
    result = purchase(bob, "o-1", "9.99")
    assert "minimum" in result.body["note"] and result.body["qualified"] is False
    assert Reward.objects.count() == 0
    bob.refresh_from_db()
    assert bob.qualified_at is None
    purchase(bob, "o-2", "10.00")  # exactly the minimum qualifies
    assert entries(bob) == [("referee", None, "20.00", "held")]


def test_a_purchase_outside_the_attribution_window_does_not_count(shop, alice, bob):
    late = bob.joined_at + timedelta(days=31)
    result = purchase(bob, "o-1", "50.00", occurred_at=late)
    assert "attribution window" in result.body["note"]
    assert Reward.objects.count() == 0
    purchase(bob, "o-2", "50.00", occurred_at=bob.joined_at + timedelta(days=30))
    assert len(entries(alice)) == 1


def test_every_qualifying_purchase_pays_commission_but_the_referee_reward_comes_once(
    shop, alice, bob
):
    purchase(bob, "o-1", "20.00")
    purchase(bob, "o-2", "30.00")
    assert entries(alice) == [("commission", 1, "2.00", "held"), ("commission", 1, "3.00", "held")]
    assert entries(bob) == [("referee", None, "20.00", "held")]


def test_the_referrer_earns_a_tier_once_when_enough_friends_qualify(shop, alice, bob):
    erin = join(shop, "erin", referrer=alice)
    frank = join(shop, "frank", referrer=alice)
    purchase(bob, "o-1", "10.00")
    assert not Reward.objects.filter(participant=alice, source="tier").exists()
    purchase(erin, "o-2", "10.00")  # the second qualified friend: threshold 2
    purchase(frank, "o-3", "10.00")
    purchase(bob, "o-4", "10.00")
    tiers = entries(alice, source="tier")
    assert tiers == [("tier", 2, "50.00", "held")]
    tier = Reward.objects.get(participant=alice, source="tier")
    assert tier.referee == erin and tier.conversion.order_id == "o-2"


def test_crossing_several_thresholds_grants_each_tier_once(db):
    campaign = CampaignFactory(slug="signup")
    for threshold, amount in ((1, "5.00"), (2, "10.00"), (3, "0")):
        RewardTierFactory(campaign=campaign, threshold=threshold, amount=Decimal(amount))
    alice = join(campaign, "alice")
    for name in ("bob", "carol", "dave", "erin"):
        join(campaign, name, referrer=alice)  # a sign-up campaign qualifies at joining
    assert entries(alice) == [
        ("tier", 1, "5.00", "held"),
        ("tier", 2, "10.00", "held"),
        ("tier", 3, "0.00", "held"),  # a reward without a money value is still granted
    ]
    assert Conversion.objects.filter(type="signup").count() == 5


def test_flagged_and_blocked_friends_do_not_count_toward_tiers(shop, alice, bob):
    erin = join(shop, "erin", referrer=alice)
    Participant.objects.filter(pk=erin.pk).update(status="flagged")
    erin.refresh_from_db()
    purchase(bob, "o-1", "10.00")
    purchase(erin, "o-2", "10.00")
    assert not Reward.objects.filter(source="tier").exists()
    # The flagged friend's own reward and the commission on their purchase wait for review.
    assert entries(erin) == [("referee", None, "20.00", "pending")]
    assert ("commission", 1, "1.00", "pending") in entries(alice)
    mallory = join(shop, "mallory", referrer=alice)
    Participant.objects.filter(pk=mallory.pk).update(status="blocked")
    mallory.refresh_from_db()
    purchase(mallory, "o-3", "10.00")
    assert entries(mallory) == []
    assert len(entries(alice)) == 2  # no commission on a blocked buyer


def test_a_flagged_referrer_s_rewards_wait_for_review(shop, alice, bob):
    Participant.objects.filter(pk=alice.pk).update(status="flagged")
    purchase(bob, "o-1", "10.00")
    reward = Reward.objects.get(participant=alice)
    assert reward.state == "pending" and reward.reason == "review"


def test_a_verified_signup_campaign_qualifies_on_verification(db):
    campaign = CampaignFactory(slug="verify", qualifying_event="verified_signup")
    RefereeRewardFactory(campaign=campaign, amount=Decimal("8.00"))
    alice = join(campaign, "alice")
    bob = join(campaign, "bob", referrer=alice)
    assert Reward.objects.count() == 0  # joining is not enough here
    result = verify(bob)
    assert result.status == 201 and result.body["qualified"] is True
    bob.refresh_from_db()
    assert bob.verified_at is not None and bob.qualified_at is not None
    assert entries(bob) == [("referee", None, "8.00", "held")]
    late = join(campaign, "late", referrer=alice)
    result = verify(late, occurred_at=late.joined_at + timedelta(days=40))
    assert result.body["qualified"] is False and "window" in result.body["note"]
    late.refresh_from_db()
    assert late.verified_at is not None and late.qualified_at is None


def test_commissions_never_go_deeper_than_three_levels(db):
    campaign = CampaignFactory(slug="deep", qualifying_event="purchase")
    for level, percent in ((1, "10"), (2, "5"), (3, "2")):
        CommissionLevelFactory(campaign=campaign, level=level, percent=Decimal(percent))
    chain = [join(campaign, "p0")]
    for n in range(1, 6):
        chain.append(join(campaign, f"p{n}", referrer=chain[-1]))
    purchase(chain[5], "o-1", "100.00")
    paid = {r.participant_id: (r.level, r.amount) for r in Reward.objects.all()}
    assert paid == {
        chain[4].pk: (1, Decimal("10.0000")),
        chain[3].pk: (2, Decimal("5.0000")),
        chain[2].pk: (3, Decimal("2.0000")),
    }


def test_a_seed_s_purchase_qualifies_them_but_earns_nobody_anything(shop, alice):
    result = purchase(alice, "o-1", "50.00")
    assert result.body["qualified"] is True and Reward.objects.count() == 0


def test_the_campaign_budget_cap_stops_granting_visibly(shop, alice, bob, carol, dave):
    Campaign.objects.filter(pk=shop.pk).update(budget_cap=Decimal("30.00"))
    purchase(carol, "o-1", "50.00")  # 20.00 referee + 5.00 + 2.50 = 27.50
    purchase(dave, "o-2", "50.00")  # 20.00 more would pass 30.00
    assert entries(dave) == [("referee", None, "20.00", "rejected")]
    stopped = Reward.objects.get(participant=dave)
    assert stopped.reason == "budget_cap"
    assert "budget" in RewardTransition.objects.get(reward=stopped).reason.lower()
    # bob's tier (50.00) and commission (5.00) do not fit either; alice's 2.50 fits exactly.
    assert entries(bob) == [
        ("commission", 1, "5.00", "held"),
        ("tier", 2, "50.00", "rejected"),
        ("commission", 1, "5.00", "rejected"),
    ]
    assert entries(alice)[-1] == ("commission", 2, "2.50", "held")
    assert owed(bob) + owed(alice) + owed(carol) + owed(dave) == Decimal("30.00")


def test_the_per_referrer_cap_stops_one_participant_earning_more(shop, alice, bob):
    Campaign.objects.filter(pk=shop.pk).update(per_referrer_cap=Decimal("6.00"))
    purchase(bob, "o-1", "50.00")  # 5.00 to alice
    purchase(bob, "o-2", "20.00")  # 2.00 more would make 7.00
    purchase(bob, "o-3", "10.00")  # 1.00 fits: 6.00
    assert entries(alice) == [
        ("commission", 1, "5.00", "held"),
        ("commission", 1, "2.00", "rejected"),
        ("commission", 1, "1.00", "held"),
    ]
    assert Reward.objects.get(participant=alice, amount=2).reason == "per_referrer_cap"


def test_without_a_holding_period_rewards_are_approved_at_once(shop, alice, bob):
    Campaign.objects.filter(pk=shop.pk).update(holding_days=0)
    purchase(bob, "o-1", "50.00")
    reward = Reward.objects.get(participant=alice)
    assert reward.state == "approved" and reward.approved_at is not None


def test_every_reward_has_its_cause_and_its_first_transition(shop, alice, bob, carol):
    purchase(carol, "o-1", "50.00")
    for reward in Reward.objects.all():
        assert reward.conversion.type == "purchase" and reward.referee == carol
        first = reward.transitions.get()
        assert (first.from_state, first.to_state) == ("", "held")
        assert first.actor == "api" and first.conversion == reward.conversion


def test_an_unknown_participant_or_campaign_changes_nothing(shop, alice):
    from apps.common.errors import NotFound
    from apps.rewards.services import conversion_ingest

    with pytest.raises(NotFound):
        conversion_ingest(type="purchase", campaign_slug="nope", participant_id=alice.pk,
                          order_id="o", amount=Decimal(1), currency="CNY")  # fmt: skip
    with pytest.raises(NotFound):
        conversion_ingest(type="purchase", campaign_slug="shop", external_id="ghost",
                          order_id="o", amount=Decimal(1), currency="CNY")  # fmt: skip
    assert Conversion.objects.count() == 0


def test_qualified_at_is_when_the_event_happened(shop, alice, bob):
    Participant.objects.filter(pk=bob.pk).update(joined_at=timezone.now() - timedelta(days=2))
    bob.refresh_from_db()
    when = timezone.now() - timedelta(hours=3)
    purchase(bob, "o-1", "10.00", occurred_at=when)
    bob.refresh_from_db()
    assert bob.qualified_at == when
