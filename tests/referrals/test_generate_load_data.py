from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import F, Sum

from apps.campaigns.models import Campaign
from apps.common.money import percent_of
from apps.referrals.models import Click, Participant, SubtreeSize
from apps.referrals.selectors import descendant_count
from apps.rewards.models import PayoutBatch, Reward, RewardState

pytestmark = pytest.mark.django_db


def _generate(**sizes):
    call_command("generate_load_data", stdout=io.StringIO(), stderr=io.StringIO(), **sizes)


def test_it_makes_the_shapes_the_benchmarks_need():
    if connection.vendor != "postgresql":
        with pytest.raises(CommandError, match="needs PostgreSQL"):
            _generate()
        return
    sizes = {
        "campaigns": 3,
        "participants": 400,
        "clicks": 1000,
        "big_subtree": 150,
        "chains": 2,
        "chain_depth": 40,
    }
    _generate(**sizes)
    _generate(**sizes)  # a second run replaces the first
    assert Campaign.objects.filter(slug__startswith="load-").count() == 3
    assert Participant.objects.count() == 400 and Click.objects.count() == 1000
    first = Campaign.objects.get(slug="load-000")
    viral = Participant.objects.filter(campaign=first, depth=0).order_by("id").first()
    assert descendant_count(viral) == 150
    assert SubtreeSize.objects.get(participant=viral).descendants == 150  # rolled up
    assert Participant.objects.filter(campaign=first).order_by("-depth").first().depth == 40
    for p in Participant.objects.exclude(referrer=None).select_related("referrer")[:200]:
        assert p.depth == p.referrer.depth + 1
        assert p.path == p.referrer.path_for_children
        assert p.joined_at >= p.referrer.joined_at
    assert not Click.objects.exclude(campaign_id=F("participant__campaign_id")).exists()


def test_rewards_are_a_ledger_the_constraints_accept_in_every_state_and_source():
    if connection.vendor != "postgresql":
        return
    sizes = {"campaigns": 2, "participants": 300, "clicks": 100, "big_subtree": 60}
    sizes |= {"chains": 1, "chain_depth": 10}
    _generate(**sizes, rewards=2000)
    assert Reward.objects.count() == 2000
    assert set(Reward.objects.values_list("state", flat=True)) == set(RewardState.values)
    assert set(Reward.objects.values_list("source", flat=True)) == {"referee", "tier", "commission"}
    assert set(Reward.objects.values_list("currency", flat=True)) >= {"CNY", "USD", "JPY"}
    assert Reward.objects.filter(amount__lt=0, adjusts__isnull=False).exists()  # owed back
    # Each commission goes to the buyer's n-th ancestor, at its level's percent.
    for reward in Reward.objects.filter(source="commission", adjusts=None).select_related(
        "referee", "purchase"
    )[:200]:
        assert reward.participant_id == reward.referee.ancestor_ids[reward.level - 1]
        assert reward.amount == percent_of(reward.purchase.amount, reward.percent, reward.currency)
    # Paid entries are in paid batches whose figures add up.
    for batch in PayoutBatch.objects.filter(status="paid"):
        lines = Reward.objects.filter(payout_batch=batch)
        assert (
            batch.line_count == lines.count()
            and batch.total == lines.aggregate(s=Sum("amount"))["s"]
        )
        assert not lines.exclude(state="paid").exists()
    # Only the rewards again: replaced, the participants and clicks kept.
    _generate(rewards=500, rewards_only=True)
    assert Reward.objects.count() == 500 and Participant.objects.count() == 300
    _generate(**sizes)  # a full run removes the rewards with the rest, paid batches too
    assert not Reward.objects.exists() and not PayoutBatch.objects.exists()
