"""Payout races, on real PostgreSQL: threads released together by a barrier."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from apps.common.errors import FissionError
from apps.rewards.lifecycle import rewards_release_due
from apps.rewards.models import PayoutBatch, Reward, RewardTransition
from apps.rewards.payouts import payout_batch_create, payout_batch_mark_paid
from tests.factories import join

from .helpers import purchase, refund
from .test_concurrency import race

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="races need PostgreSQL"),
]
THREADS = 8


def test_batches_made_at_once_never_share_a_reward(shop, alice, bob):
    for i in range(10):
        purchase(join(shop, f"friend{i}", referrer=bob), f"o-{i}", "50.00")
    rewards_release_due(now=timezone.now() + timedelta(days=15))
    approved = sum(Reward.objects.filter(state="approved").values_list("amount", flat=True))

    def make(_i: int) -> PayoutBatch | FissionError:
        try:
            return payout_batch_create(actor="finance", currency="CNY").batch
        except FissionError as exc:
            return exc

    results = race(THREADS, make)
    batches = [r for r in results if isinstance(r, PayoutBatch)]
    assert len(batches) == 1, results
    assert all(isinstance(r, FissionError) for r in results if r not in batches)
    assert PayoutBatch.objects.get().total == approved
    # Every approved reward is in it (friends joining this fast get flagged by the fraud
    # rules, so some wait in review, pending, outside any batch).
    assert not Reward.objects.filter(state="approved", payout_batch__isnull=True).exists()


def test_marking_a_batch_paid_at_once_pays_it_once(shop, alice, bob, carol):
    purchase(carol, "o-1", "50.00")
    rewards_release_due(now=timezone.now() + timedelta(days=15))
    batch = payout_batch_create(actor="finance", currency="CNY").batch
    results = race(
        THREADS,
        lambda i: payout_batch_mark_paid(batch_id=batch.pk, reference=f"BANK-{i}", actor="f")[1],
    )
    assert sorted(results) == [False] * (THREADS - 1) + [True]
    assert RewardTransition.objects.filter(to_state="paid").count() == 3
    assert len(set(Reward.objects.values_list("payout_reference", flat=True))) == 1


def test_a_refund_racing_a_new_batch_is_never_lost(shop, alice, bob, carol):
    purchase(carol, "o-1", "50.00")
    rewards_release_due(now=timezone.now() + timedelta(days=15))

    def work(i: int) -> object:
        if i == 0:
            return payout_batch_create(actor="finance", currency="CNY").batch
        return refund(carol, "o-1", "50.00").status

    race(2, work)
    # Whichever came first, what counts for bob is 0 and nothing was lost: either the
    # refund reversed the unbatched rewards, or it owes back what the batch pays.
    live = Reward.objects.filter(participant=bob, state__in=["approved", "paid"])
    assert sum(live.values_list("amount", flat=True)) == Decimal(0)
