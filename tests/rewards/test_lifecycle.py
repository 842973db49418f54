"""pending -> held -> approved -> paid; reversed; rejected. Every change recorded."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apps.common.errors import FissionError
from apps.referrals.models import Participant
from apps.rewards.lifecycle import (
    rewards_approve,
    rewards_mark_paid,
    rewards_reject,
    rewards_release_due,
)
from apps.rewards.models import Reward, RewardTransition

from .helpers import entries, purchase, refund

pytestmark = pytest.mark.django_db
postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="database triggers are PostgreSQL's"
)


def test_the_release_job_approves_rewards_whose_holding_period_is_over_once(
    shop, alice, bob, carol
):
    purchase(carol, "o-1", "50.00")
    due = Reward.objects.first().due_at
    assert rewards_release_due(now=due - timedelta(seconds=1)) == 0
    assert rewards_release_due(now=due) == 3
    assert rewards_release_due(now=due + timedelta(days=1)) == 0
    for reward in Reward.objects.all():
        assert reward.state == "approved" and reward.approved_at is not None
        moves = [(t.from_state, t.to_state, t.actor) for t in reward.transitions.all()]
        assert moves == [("", "held", "api"), ("held", "approved", "release job")]


def test_release_held_rewards_command(shop, alice, bob):
    purchase(bob, "o-1", "50.00")
    Reward.objects.update(due_at=timezone.now() - timedelta(minutes=1))
    out = StringIO()
    call_command("release_held_rewards", stdout=out)
    assert "2 rewards approved" in out.getvalue()
    assert set(Reward.objects.values_list("state", flat=True)) == {"approved"}
    assert RewardTransition.objects.filter(actor="command: release_held_rewards").count() == 2


def test_the_periodic_task_releases_and_is_in_the_beat_schedule(settings, shop, alice, bob):
    from apps.rewards.tasks import release_held_rewards

    purchase(bob, "o-1", "50.00")
    Reward.objects.update(due_at=timezone.now() - timedelta(minutes=1))
    release_held_rewards.delay()
    assert set(Reward.objects.values_list("state", flat=True)) == {"approved"}
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"apps.rewards.tasks.release_held_rewards", "apps.api.tasks.webhooks_send_due"} <= tasks


def test_an_operator_approves_pending_rewards_into_holding_and_held_ones_at_once(
    shop, alice, bob, carol
):
    Participant.objects.filter(pk=carol.pk).update(status="flagged")
    carol.refresh_from_db()
    purchase(carol, "o-1", "50.00")
    pending = list(Reward.objects.filter(state="pending").values_list("pk", flat=True))
    assert len(pending) == 3  # carol's own reward and the two commissions on her purchase
    assert rewards_approve(reward_ids=pending, actor="admin:olga", reason="checked: real") == 3
    assert set(Reward.objects.values_list("state", flat=True)) == {"held"}
    assert rewards_approve(reward_ids=pending[:1], actor="admin:olga") == 1
    assert Reward.objects.get(pk=pending[0]).state == "approved"
    last = Reward.objects.get(pk=pending[1]).transitions.last()
    assert (last.to_state, last.actor, last.reason) == ("held", "admin:olga", "checked: real")


def test_rejecting_needs_a_reason_and_is_final(shop, alice, bob):
    purchase(bob, "o-1", "50.00")
    ids = list(Reward.objects.values_list("pk", flat=True))
    with pytest.raises(FissionError):
        rewards_reject(reward_ids=ids, actor="admin:olga", reason="  ")
    assert set(Reward.objects.values_list("state", flat=True)) == {"held"}
    assert rewards_reject(reward_ids=ids, actor="admin:olga", reason="self-referral ring") == 2
    assert rewards_approve(reward_ids=ids, actor="admin:olga") == 0
    rejected = Reward.objects.first()
    assert rejected.state == "rejected" and rejected.reason == "operator"
    assert rejected.transitions.last().reason == "self-referral ring"
    # A rejected commission stays rejected whatever its purchase does later.
    refund(bob, "o-1", "10.00")
    assert {e[3] for e in entries(alice)} == {"rejected"}


def test_a_correction_travels_with_its_reward_when_an_operator_decides(shop, alice, bob, carol):
    purchase(carol, "o-1", "50.00")
    refund(carol, "o-1", "20.00")
    grant = Reward.objects.get(participant=bob, amount__gt=0)
    rewards_reject(reward_ids=[grant.pk], actor="admin:olga", reason="fraud")
    assert entries(bob) == [
        ("commission", 1, "5.00", "rejected"),
        ("commission", 1, "-2.00", "rejected"),
    ]


def test_only_approved_rewards_are_paid_and_paid_is_final(shop, alice, bob):
    purchase(bob, "o-1", "50.00")
    ids = list(Reward.objects.values_list("pk", flat=True))
    assert rewards_mark_paid(reward_ids=ids, reference="batch-1", actor="finance") == 0
    rewards_release_due(now=timezone.now() + timedelta(days=15))
    assert rewards_mark_paid(reward_ids=ids, reference="batch-1", actor="finance") == 2
    assert rewards_mark_paid(reward_ids=ids, reference="batch-2", actor="finance") == 0
    paid = Reward.objects.first()
    assert paid.state == "paid" and paid.payout_reference == "batch-1" and paid.paid_at
    assert rewards_reject(reward_ids=ids, actor="admin:olga", reason="late") == 0


@postgres_only
def test_the_database_refuses_to_change_a_paid_reward_or_the_history(shop, alice, bob):
    purchase(bob, "o-1", "50.00")
    rewards_release_due(now=timezone.now() + timedelta(days=15))
    rewards_mark_paid(
        reward_ids=list(Reward.objects.values_list("pk", flat=True)), reference="b", actor="f"
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        Reward.objects.filter(state="paid").update(amount=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        RewardTransition.objects.update(reason="edited")
    with pytest.raises(IntegrityError), transaction.atomic():
        RewardTransition.objects.all().delete()
