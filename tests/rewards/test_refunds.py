"""Refunds: what a purchase granted is reversed, in proportion, never more, never by
editing what was paid."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.common.errors import Unprocessable
from apps.rewards.lifecycle import rewards_mark_paid, rewards_release_due
from apps.rewards.models import Conversion, Reward
from tests.factories import join

from .helpers import entries, owed, purchase, refund

pytestmark = pytest.mark.django_db


def test_a_full_refund_reverses_everything_the_purchase_granted(shop, alice, bob, carol):
    purchase(carol, "o-1", "50.00")
    result = refund(carol, "o-1", "50.00")
    assert result.status == 201 and result.body["qualified"] is False
    assert entries(bob) == [("commission", 1, "5.00", "reversed")]
    assert entries(alice) == [("commission", 2, "2.50", "reversed")]
    assert entries(carol) == [("referee", None, "20.00", "reversed")]
    carol.refresh_from_db()
    assert carol.qualified_at is None
    assert {r["state"] for r in result.body["rewards"]} == {"reversed"}
    reversed_ = Reward.objects.get(participant=bob)
    last = reversed_.transitions.last()
    assert (last.from_state, last.to_state, last.conversion.type) == ("held", "reversed", "refund")


def test_a_partial_refund_reverses_commissions_in_proportion(shop, alice, bob, carol):
    # ORACLES: refund 20.00 of 50.00 that paid 5.00 commission -> 2.00 reversed, 3.00 stands.
    purchase(carol, "o-1", "50.00")
    refund(carol, "o-1", "20.00")
    assert entries(bob) == [("commission", 1, "5.00", "held"), ("commission", 1, "-2.00", "held")]
    assert owed(bob) == Decimal("3.00")
    assert owed(alice) == Decimal("1.50")
    # 30.00 still stands, above the 10.00 minimum: carol still qualifies.
    assert owed(carol) == Decimal("20.00")
    correction = Reward.objects.get(participant=bob, amount__lt=0)
    grant = Reward.objects.get(participant=bob, amount__gt=0)
    assert correction.adjusts == grant and correction.due_at == grant.due_at
    assert correction.conversion.type == "refund" and correction.order_id == "o-1"


def test_the_rest_of_a_partial_refund_reverses_the_rest_and_no_more(shop, alice, bob, carol):
    purchase(carol, "o-1", "50.00")
    refund(carol, "o-1", "20.00")
    second = refund(carol, "o-1", "30.00", key="r-2", api_key=_key())
    assert second.status == 201
    assert owed(bob) == owed(alice) == owed(carol) == Decimal(0)
    assert {e[3] for e in entries(bob)} == {"reversed"}
    third = refund(carol, "o-1", "10.00", key="r-3", api_key=_key())
    assert "Nothing was left" in third.body["note"] or "left to refund" in third.body["note"]
    assert Conversion.objects.get(idempotency_key="r-3").applied_amount == 0
    # One correction per commission level, from the first refund; nothing more since.
    assert owed(bob) == Decimal(0) and Reward.objects.filter(amount__lt=0).count() == 2


def _key():
    from apps.api.models import ApiKey
    from apps.api.services import api_key_create

    return ApiKey.objects.first() or api_key_create(name="shop")[0]


def test_an_over_large_refund_reverses_only_what_was_granted(shop, alice, bob, carol):
    purchase(carol, "o-1", "50.00")
    result = refund(carol, "o-1", "80.00")
    assert "left to refund" in result.body["note"]
    stored = Conversion.objects.get(type="refund")
    assert stored.applied_amount == Decimal("50.00") and stored.amount == Decimal("80.00")
    assert owed(bob) == owed(alice) == Decimal(0)
    assert not Reward.objects.filter(amount__lt=0).exists()


def test_the_same_refund_twice_has_one_effect(shop, alice, bob, carol):
    purchase(carol, "o-1", "50.00")
    first = refund(carol, "o-1", "20.00")
    again = refund(carol, "o-1", "20.00")
    assert (first.status, again.status) == (201, 200) and again.body == first.body
    assert owed(bob) == Decimal("3.00")
    assert Conversion.objects.filter(type="refund").count() == 1


def test_a_refund_before_its_purchase_is_kept_and_applied_when_the_purchase_comes(
    shop, alice, bob, carol
):
    early = refund(carol, "o-1", "20.00")
    assert early.status == 202 and early.body["status"] == "waiting"
    assert Reward.objects.count() == 0
    late = purchase(carol, "o-1", "50.00")
    assert late.status == 201
    assert owed(bob) == Decimal("3.00") and owed(alice) == Decimal("1.50")
    kept = Conversion.objects.get(type="refund")
    assert kept.status == "applied" and kept.purchase.order_id == "o-1"
    assert kept.applied_amount == Decimal("20.00")
    # A repeat of the early refund answers what it answered first.
    assert refund(carol, "o-1", "20.00").body == early.body


def test_a_small_early_refund_leaves_the_purchase_qualifying(shop, alice, bob):
    # Found by the state machine: the purchase must count as qualifying while its early
    # refunds are applied, or the referee loses a reward they still deserve.
    refund(bob, "o-1", "1.00")
    purchase(bob, "o-1", "12.34")
    assert entries(bob) == [("referee", None, "20.00", "held")]
    assert owed(alice) == Decimal("1.13")


def test_a_full_refund_before_its_purchase_leaves_nothing_granted(shop, alice, bob, carol):
    refund(carol, "o-1", "50.00")
    purchase(carol, "o-1", "50.00")
    assert owed(bob) == owed(alice) == owed(carol) == Decimal(0)
    carol.refresh_from_db()
    assert carol.qualified_at is None


def test_a_refund_that_does_not_match_its_purchase_is_refused(shop, alice, bob, carol):
    purchase(carol, "o-1", "50.00")
    with pytest.raises(Unprocessable):
        refund(bob, "o-1", "10.00")
    with pytest.raises(Unprocessable):
        refund(carol, "o-1", "10.00", currency="USD")
    assert Conversion.objects.filter(type="refund").count() == 0
    assert owed(bob) == Decimal("5.00")


def test_a_waiting_refund_for_another_participant_is_ignored_when_the_purchase_comes(
    shop, alice, bob, carol
):
    refund(bob, "o-1", "50.00")
    purchase(carol, "o-1", "50.00")
    assert Conversion.objects.get(type="refund").status == "ignored"
    assert owed(bob) == Decimal("5.00")


def test_a_referrer_below_a_tier_s_threshold_loses_it_and_regains_it(shop, alice, bob, carol, dave):
    purchase(carol, "o-1", "10.00")
    purchase(dave, "o-2", "10.00")
    assert ("tier", 2, "50.00", "held") in entries(bob)
    refund(dave, "o-2", "10.00")
    assert [e for e in entries(bob) if e[0] == "tier"] == [("tier", 2, "50.00", "reversed")]
    erin = join(shop, "erin", referrer=bob)
    purchase(erin, "o-3", "10.00")
    assert [e for e in entries(bob) if e[0] == "tier"] == [
        ("tier", 2, "50.00", "reversed"),
        ("tier", 2, "50.00", "held"),  # reinstated: a new entry, pointing at the grant
    ]
    grant, again = Reward.objects.filter(participant=bob, source="tier").order_by("id")
    assert again.adjusts == grant and again.conversion.order_id == "o-3"


def test_a_partial_refund_below_the_minimum_unqualifies_but_commission_stays_in_proportion(
    shop, alice, bob
):
    purchase(bob, "o-1", "50.00")
    refund(bob, "o-1", "45.00")  # 5.00 stands: below the 10.00 minimum
    bob.refresh_from_db()
    assert bob.qualified_at is None
    assert entries(bob) == [("referee", None, "20.00", "reversed")]
    assert owed(alice) == Decimal("0.50")


def test_a_paid_reward_is_never_edited_its_reversal_is_a_negative_entry_owed_back(
    shop, alice, bob, carol
):
    purchase(carol, "o-1", "50.00")
    rewards_release_due(now=Reward.objects.first().due_at)
    paid_ids = list(Reward.objects.values_list("pk", flat=True))
    rewards_mark_paid(reward_ids=paid_ids, reference="batch-1", actor="finance")
    before = {r.pk: (r.amount, r.state, r.updated_at) for r in Reward.objects.all()}
    refund(carol, "o-1", "20.00")
    after = {
        r.pk: (r.amount, r.state, r.updated_at) for r in Reward.objects.filter(pk__in=paid_ids)
    }
    assert after == before
    assert entries(bob) == [
        ("commission", 1, "5.00", "paid"),
        ("commission", 1, "-2.00", "approved"),
    ]
    refund(carol, "o-1", "30.00", key="r-2", api_key=_key())
    assert entries(carol) == [
        ("referee", None, "20.00", "paid"),
        ("referee", None, "-20.00", "approved"),
    ]
    assert owed(bob) == owed(alice) == owed(carol) == Decimal(0)
