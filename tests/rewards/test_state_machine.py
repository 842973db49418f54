"""A model-based test: Hypothesis interleaves joins, purchases, refunds (early, late,
partial, over-large), duplicate deliveries, releases and payouts, and after every step
compares the ledger with what a plain model of the rules says is owed."""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.db.models import Count
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from apps.api.services import api_key_create
from apps.common.money import percent_of
from apps.rewards.lifecycle import rewards_mark_paid, rewards_release_due
from apps.rewards.models import LIVE_STATES, Conversion, Reward
from tests.factories import (
    CampaignFactory,
    CommissionLevelFactory,
    RefereeRewardFactory,
    RewardTierFactory,
    join,
)

from .helpers import purchase, refund

MINIMUM = Decimal("10.00")
LEVELS = {1: Decimal("10.00"), 2: Decimal("5.00")}
REFEREE = Decimal("20.00")
TIER_THRESHOLD, TIER = 2, Decimal("50.00")
PURCHASES = [Decimal(a) for a in ("5.00", "10.00", "12.34", "33.33", "50.00")]
REFUNDS = [Decimal(a) for a in ("1.00", "5.00", "20.00", "33.33", "60.00")]
ZERO = Decimal(0)
# Modest, so the suite stays fast; search harder with FISSION_STATE_MACHINE_EXAMPLES=500.
EXAMPLES = int(os.environ.get("FISSION_STATE_MACHINE_EXAMPLES", "30"))


@dataclass
class Order:
    buyer: int  # index into the model's people
    amount: Decimal | None = None  # None: only refunds so far (they wait)
    refunds: list[Decimal] = field(default_factory=list)

    def refunded(self) -> Decimal:
        """What was applied: each refund takes at most what was left."""
        left, applied = self.amount or ZERO, ZERO
        for want in self.refunds:
            take = min(want, left)
            applied, left = applied + take, left - take
        return applied

    def net(self) -> Decimal:
        return (self.amount or ZERO) - self.refunded()

    @property
    def qualifying(self) -> bool:
        return self.amount is not None and self.amount >= MINIMUM


class Rewards(RuleBasedStateMachine):
    people = Bundle("people")
    waiting = Bundle("waiting")

    def __init__(self) -> None:
        super().__init__()
        self.atomic = transaction.atomic()
        self.atomic.__enter__()
        self.campaign = CampaignFactory(
            slug="machine", qualifying_event="purchase", min_purchase_amount=MINIMUM
        )
        for level, percent in LEVELS.items():
            CommissionLevelFactory(campaign=self.campaign, level=level, percent=percent)
        RefereeRewardFactory(campaign=self.campaign, amount=REFEREE)
        RewardTierFactory(campaign=self.campaign, threshold=TIER_THRESHOLD, amount=TIER)
        self.api_key = api_key_create(name="machine")[0]
        self.participants: list = []
        self.referrer_of: list[int | None] = []
        self.orders: dict[str, Order] = {}
        self.events = 0
        self.paid: dict[int, tuple] = {}
        self.counter = 0

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self.atomic.__exit__(None, None, None)

    def _next(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    # --- steps ------------------------------------------------------------------------
    @initialize(target=people)
    def seed(self) -> int:
        return self._join(None)

    @rule(target=people, referrer=people)
    def join_friend(self, referrer: int) -> int:
        return self._join(referrer)

    def _join(self, referrer: int | None) -> int:
        index = len(self.participants)
        parent = self.participants[referrer] if referrer is not None else None
        self.participants.append(join(self.campaign, f"p{index}", referrer=parent))
        self.referrer_of.append(referrer)
        return index

    @rule(buyer=people, amount=st.sampled_from(PURCHASES))
    def buy(self, buyer: int, amount: Decimal) -> None:
        order_id = self._next("o")
        result = purchase(self.participants[buyer], order_id, str(amount))
        assert result.status == 201
        self.orders[order_id] = Order(buyer=buyer, amount=amount)
        self.events += 1

    @rule(data=st.data())
    def deliver_again(self, data: st.DataObject) -> None:
        """Any event delivered again answers the same and changes nothing."""
        if not self.orders:
            return
        order_id = data.draw(st.sampled_from(sorted(self.orders)))
        order = self.orders[order_id]
        if order.amount is not None:
            result = purchase(self.participants[order.buyer], order_id, str(order.amount))
            assert result.status == 200 and result.replayed

    @rule(data=st.data(), amount=st.sampled_from(REFUNDS))
    def refund_some(self, data: st.DataObject, amount: Decimal) -> None:
        bought = sorted(o for o, order in self.orders.items() if order.amount is not None)
        if not bought:
            return
        order_id = data.draw(st.sampled_from(bought))
        order = self.orders[order_id]
        key = self._next("r")
        result = refund(
            self.participants[order.buyer], order_id, str(amount), key=key, api_key=self.api_key
        )
        assert result.status == 201
        order.refunds.append(amount)
        self.events += 1
        again = refund(
            self.participants[order.buyer], order_id, str(amount), key=key, api_key=self.api_key
        )
        assert again.replayed and again.body == result.body

    @rule(target=waiting, buyer=people, amount=st.sampled_from(REFUNDS))
    def refund_before_purchase(self, buyer: int, amount: Decimal) -> str:
        order_id = self._next("e")
        result = refund(self.participants[buyer], order_id, str(amount))
        assert result.status == 202
        self.orders[order_id] = Order(buyer=buyer, refunds=[amount])
        self.events += 1
        return order_id

    @rule(order_id=consumes(waiting), amount=st.sampled_from(PURCHASES))
    def purchase_after_its_refund(self, order_id: str, amount: Decimal) -> None:
        order = self.orders[order_id]
        result = purchase(self.participants[order.buyer], order_id, str(amount))
        assert result.status == 201
        order.amount = amount
        self.events += 1

    @rule()
    def release(self) -> None:
        rewards_release_due(now=timezone.now() + timedelta(days=15))

    @rule()
    def payout(self) -> None:
        approved = list(Reward.objects.filter(state="approved").values_list("pk", flat=True))
        rewards_mark_paid(reward_ids=approved, reference=self._next("batch"), actor="finance")

    # --- the model ----------------------------------------------------------------------
    def _qualified(self, person: int) -> bool:
        return any(
            o.buyer == person and o.qualifying and o.net() > ZERO and o.net() >= MINIMUM
            for o in self.orders.values()
        )

    def expected(self) -> dict[int, Decimal]:
        owed: dict[int, Decimal] = defaultdict(Decimal)
        qualified = [self._qualified(i) for i in range(len(self.participants))]
        for person, referrer in enumerate(self.referrer_of):
            if referrer is not None and qualified[person]:
                owed[person] += REFEREE
        for person in range(len(self.participants)):
            friends = [i for i, r in enumerate(self.referrer_of) if r == person and qualified[i]]
            if len(friends) >= TIER_THRESHOLD:
                owed[person] += TIER
        for order in self.orders.values():
            if not order.qualifying:
                continue
            ancestor = self.referrer_of[order.buyer]
            for level in sorted(LEVELS):
                if ancestor is None:
                    break
                owed[ancestor] += percent_of(order.net(), LEVELS[level], "CNY")
                ancestor = self.referrer_of[ancestor]
        return {i: owed[i] for i in range(len(self.participants))}

    # --- checked after every step -------------------------------------------------------
    @invariant()
    def owed_is_what_the_model_says(self) -> None:
        actual: dict[int, Decimal] = defaultdict(Decimal)
        for reward in Reward.objects.filter(state__in=LIVE_STATES):
            actual[reward.participant_id] += reward.amount
        expected = self.expected()
        for index, participant in enumerate(self.participants):
            assert actual[participant.pk] == expected[index], (index, dict(actual), expected)

    @invariant()
    def totals_are_granted_minus_reversed(self) -> None:
        rewards = list(Reward.objects.all())
        live = sum((r.amount for r in rewards if r.state in LIVE_STATES), ZERO)
        granted = sum((r.amount for r in rewards if r.amount > 0 and r.state != "rejected"), ZERO)
        reversed_ = sum(
            (r.amount for r in rewards if r.amount > 0 and r.state == "reversed"), ZERO
        ) + sum((-r.amount for r in rewards if r.amount < 0 and r.state in LIVE_STATES), ZERO)
        assert live == granted - reversed_
        assert {r.currency for r in rewards} <= {"CNY"}

    @invariant()
    def no_reward_without_its_cause_and_none_twice(self) -> None:
        for reward in Reward.objects.select_related("participant", "purchase__participant"):
            assert reward.conversion_id is not None
            if reward.source == "commission":
                buyer = reward.purchase.participant
                assert buyer.ancestor_ids[reward.level - 1] == reward.participant_id
                assert reward.purchase.qualifying
            elif reward.source == "referee":
                assert reward.participant.referrer_id is not None
            else:
                assert reward.tier_threshold == TIER_THRESHOLD
            if reward.adjusts_id is not None:
                assert reward.adjusts.source == reward.source
        grants = Reward.objects.filter(adjusts__isnull=True)
        for key in (("participant", "tier_threshold"), ("purchase", "level")):
            twice = grants.values(*key).annotate(n=Count("id")).filter(n__gt=1)
            assert not twice.exclude(**{f"{key[1]}__isnull": True}).exists()
        referee = grants.filter(source="referee").values("participant").annotate(n=Count("id"))
        assert all(row["n"] == 1 for row in referee)
        assert Conversion.objects.exclude(type="signup").count() == self.events

    @invariant()
    def paid_rows_never_change(self) -> None:
        now = {
            r.pk: (r.amount, r.state, r.updated_at, r.paid_at, r.payout_reference)
            for r in Reward.objects.filter(state="paid")
        }
        for pk, row in self.paid.items():
            assert now.get(pk) == row, pk
        self.paid = now


@pytest.mark.django_db
def test_the_ledger_matches_the_rules_whatever_happens() -> None:
    run_state_machine_as_test(
        Rewards,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            database=None,
        ),
    )
