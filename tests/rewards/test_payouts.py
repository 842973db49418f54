"""Payout batches: what is selected, netting owed-back entries, carrying forward, marking
paid once, cancelling, and what the database refuses."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apps.common.errors import FissionError
from apps.rewards.lifecycle import rewards_reject, rewards_release_due
from apps.rewards.models import FinanceLog, PayoutBatch, Reward, RewardTransition
from apps.rewards.payouts import (
    payout_batch_cancel,
    payout_batch_create,
    payout_batch_mark_paid,
    payout_payees,
)
from tests.factories import CampaignFactory, RefereeRewardFactory, join

from .helpers import entries, purchase, refund

pytestmark = pytest.mark.django_db
postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the triggers are PostgreSQL's"
)


def release_all() -> None:
    rewards_release_due(now=timezone.now() + timedelta(days=15))


def make(**kwargs):
    kwargs.setdefault("currency", "CNY")
    return payout_batch_create(actor="admin:fiona", **kwargs)


def paid_batch(reference: str = "BANK-1") -> PayoutBatch:
    batch = make().batch
    return payout_batch_mark_paid(batch_id=batch.pk, reference=reference, actor="admin:fiona")[0]


def payees(batch: PayoutBatch) -> dict[int, str]:
    return {p.participant_id: f"{p.amount:.2f}" for p in payout_payees(batch)}


def test_a_batch_takes_the_approved_rewards_in_its_currency(shop, alice, bob, carol):
    purchase(carol, "o-1", "50.00")  # carol 20.00, bob 5.00, alice 2.50: held
    with pytest.raises(FissionError, match="No approved rewards in CNY"):
        make()
    release_all()
    result = make()
    batch = result.batch
    assert (batch.status, batch.total, batch.payee_count, batch.line_count) == (
        "open",
        Decimal("27.50"),
        3,
        3,
    )
    assert payees(batch) == {carol.pk: "20.00", bob.pk: "5.00", alice.pk: "2.50"}
    assert set(Reward.objects.values_list("payout_batch", flat=True)) == {batch.pk}
    assert set(Reward.objects.values_list("state", flat=True)) == {"approved"}
    with pytest.raises(FissionError, match="No approved rewards"):
        make()  # each reward in one batch at most
    log = FinanceLog.objects.get(action="batch_created")
    assert (log.actor, log.batch, log.details["total"]) == ("admin:fiona", batch, "27.50")


def test_selection_by_campaign_currency_and_approval_day(shop, alice, bob, carol):
    purchase(carol, "o-1", "50.00")
    release_all()
    usd = CampaignFactory(slug="usd", currency="USD", holding_days=0)
    RefereeRewardFactory(campaign=usd, amount="5.00", currency="USD")
    join(usd, "yan", referrer=join(usd, "zoe"))
    today = timezone.localdate()
    with pytest.raises(FissionError, match="nothing to pay"):
        make(approved_to=today - timedelta(days=1))
    with pytest.raises(FissionError, match="No approved rewards in CNY"):
        make(campaign=usd)
    assert make(currency="USD").batch.total == Decimal("5.00")
    batch = make(campaign=shop, approved_from=today, approved_to=today).batch
    assert batch.total == Decimal("27.50")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"currency": "cny"}, "ISO 4217"),
        ({"currency": ""}, "ISO 4217"),
        (
            {
                "approved_from": timezone.localdate(),
                "approved_to": timezone.localdate() - timedelta(days=1),
            },
            "to is before from",
        ),
    ],
)
def test_a_bad_selection_is_refused(db, kwargs, message):
    with pytest.raises(FissionError, match=message):
        make(**kwargs)
    assert not PayoutBatch.objects.exists()


def test_rewards_that_are_not_approved_are_refused_with_the_reason(shop, alice, bob, carol):
    purchase(carol, "o-1", "50.00")  # held
    held = list(Reward.objects.values_list("pk", flat=True))
    with pytest.raises(FissionError, match=rf"#{held[0]} is held, not approved") as refused:
        make(reward_ids=held)
    assert refused.value.code == "not_payable"
    release_all()
    first = make(reward_ids=held[:1]).batch
    with pytest.raises(FissionError, match=rf"#{held[0]} is in payout batch #{first.pk}"):
        make(reward_ids=held)
    with pytest.raises(FissionError, match="#999999 does not exist"):
        make(reward_ids=[*held[1:], 999999])
    assert Reward.objects.filter(payout_batch__isnull=True).count() == 2
    assert make(reward_ids=held[1:]).batch.line_count == 2


def test_owed_back_entries_are_netted_in_the_next_batch(shop, alice, bob, carol, dave):
    purchase(carol, "o-1", "50.00")
    release_all()
    first = paid_batch()
    refund(carol, "o-1", "20.00")  # after payout: bob owes 2.00, alice 1.00
    assert entries(bob) == [
        ("commission", 1, "5.00", "paid"),
        ("commission", 1, "-2.00", "approved"),
    ]
    purchase(dave, "o-2", "100.00")  # bob 10.00 + tier 50.00, alice 5.00, dave 20.00
    release_all()
    batch = make().batch
    assert payees(batch) == {
        bob.pk: "58.00",  # 10.00 + 50.00 − 2.00
        alice.pk: "4.00",  # 5.00 − 1.00
        dave.pk: "20.00",
    }
    assert batch.total == Decimal("82.00") and batch.line_count == 6
    payout_batch_mark_paid(batch_id=batch.pk, reference="BANK-2", actor="admin:fiona")
    assert set(Reward.objects.values_list("state", flat=True)) == {"paid"}
    assert Reward.objects.filter(payout_batch=first).count() == 3


def test_owed_back_beyond_what_is_due_is_carried_forward(shop, alice, bob, carol, dave):
    purchase(carol, "o-1", "50.00")
    release_all()
    paid_batch()
    refund(carol, "o-1", "50.00")  # carol owes 20.00, bob 5.00, alice 2.50
    purchase(dave, "o-2", "10.00")  # dave 20.00, bob 1.00, alice 0.50
    release_all()
    result = make()
    # dave is paid; bob (1.00 − 5.00) and alice (0.50 − 2.50) owe more than they are due:
    # left out, their entries stay approved for a later batch. carol has nothing due.
    assert payees(result.batch) == {dave.pk: "20.00"}
    assert result.carried_forward == [(alice.pk, Decimal("-2.00")), (bob.pk, Decimal("-4.00"))]
    left = Reward.objects.filter(participant__in=[alice, bob], state="approved")
    assert left.count() == 4 and not left.filter(payout_batch__isnull=False).exists()
    with pytest.raises(FissionError, match="owe back more than they are due"):
        make()
    # Later rewards cover the debt: bob's next commission of 4.00 brings him to zero,
    # settled in a batch with nothing to transfer.
    purchase(dave, "o-3", "40.00")  # bob 4.00, alice 2.00
    release_all()
    batch = make().batch
    assert payees(batch) == {bob.pk: "0.00", alice.pk: "0.00"}
    assert batch.total == Decimal("0.00")


def test_a_correction_travels_with_its_unpaid_reward(shop, alice, bob, carol, dave):
    purchase(carol, "o-1", "50.00")
    release_all()
    refund(carol, "o-1", "20.00")  # before payout: -2.00 for bob, approved with his 5.00
    grant = Reward.objects.get(participant=bob, amount=Decimal("5.00"))
    purchase(dave, "o-2", "100.00")
    release_all()
    others = Reward.objects.filter(participant=bob, state="approved").exclude(
        pk=grant.pk
    )  # bob's o-2 commission and tier
    batch = make(reward_ids=[r.pk for r in others if r.amount > 0]).batch
    # The -2.00 stays with the 5.00 it corrects, which is not in this batch.
    assert payees(batch)[bob.pk] == "60.00"
    assert Reward.objects.get(participant=bob, amount=Decimal("-2.00")).payout_batch is None


def test_a_refund_while_a_batch_is_on_its_way_is_owed_back(shop, alice, bob, carol):
    purchase(carol, "o-1", "50.00")
    release_all()
    batch = make().batch
    refund(carol, "o-1", "50.00")  # the batch's entries are committed: not reversed in place
    assert entries(bob) == [
        ("commission", 1, "5.00", "approved"),
        ("commission", 1, "-5.00", "approved"),
    ]
    assert Reward.objects.filter(payout_batch=batch).count() == 3
    payout_batch_mark_paid(batch_id=batch.pk, reference="BANK-1", actor="admin:fiona")
    assert entries(bob) == [
        ("commission", 1, "5.00", "paid"),
        ("commission", 1, "-5.00", "approved"),
    ]


def test_marking_paid_twice_changes_nothing(shop, alice, bob, carol):
    purchase(carol, "o-1", "50.00")
    release_all()
    batch = make().batch
    paid, changed = payout_batch_mark_paid(
        batch_id=batch.pk, reference=" BANK-1 ", actor="admin:fiona"
    )
    assert changed and paid.reference == "BANK-1" and paid.paid_by == "admin:fiona"
    before = [(r.pk, r.state, r.paid_at, r.payout_reference) for r in Reward.objects.order_by("pk")]
    transitions = RewardTransition.objects.count()
    again, changed = payout_batch_mark_paid(
        batch_id=batch.pk, reference="BANK-2", actor="admin:olga"
    )
    assert not changed and (again.reference, again.paid_at) == ("BANK-1", paid.paid_at)
    after = [(r.pk, r.state, r.paid_at, r.payout_reference) for r in Reward.objects.order_by("pk")]
    assert after == before and {r[3] for r in after} == {"BANK-1"}
    assert RewardTransition.objects.count() == transitions
    assert FinanceLog.objects.filter(action="batch_paid").count() == 1
    with pytest.raises(FissionError, match="is paid: it cannot be cancelled"):
        payout_batch_cancel(batch_id=batch.pk, actor="admin:fiona")


def test_marking_paid_needs_a_reference_and_a_batch(shop, alice, bob, carol):
    purchase(carol, "o-1", "50.00")
    release_all()
    batch = make().batch
    for reference in ("", "   ", "x" * 101):
        with pytest.raises(FissionError, match="reference"):
            payout_batch_mark_paid(batch_id=batch.pk, reference=reference, actor="f")
    with pytest.raises(FissionError, match="No payout batch #999"):
        payout_batch_mark_paid(batch_id=999, reference="B", actor="f")
    batch.refresh_from_db()
    assert batch.status == "open"
    assert set(Reward.objects.values_list("state", flat=True)) == {"approved"}


def test_a_cancelled_batch_releases_its_rewards(shop, alice, bob, carol):
    purchase(carol, "o-1", "50.00")
    release_all()
    batch = make().batch
    cancelled, changed = payout_batch_cancel(batch_id=batch.pk, actor="admin:fiona")
    assert changed and cancelled.status == "cancelled" and cancelled.cancelled_at
    assert not Reward.objects.filter(payout_batch__isnull=False).exists()
    assert payout_batch_cancel(batch_id=batch.pk, actor="admin:fiona")[1] is False
    with pytest.raises(FissionError, match="cancelled: it cannot be paid"):
        payout_batch_mark_paid(batch_id=batch.pk, reference="B", actor="f")
    assert make().batch.total == Decimal("27.50")


def test_batched_rewards_are_left_alone_by_rejection(shop, alice, bob, carol):
    purchase(carol, "o-1", "50.00")
    release_all()
    make()
    ids = list(Reward.objects.values_list("pk", flat=True))
    assert rewards_reject(reward_ids=ids, actor="admin:olga", reason="late") == 0
    assert set(Reward.objects.values_list("state", flat=True)) == {"approved"}


def test_the_database_refuses_to_reverse_a_batched_reward_in_place(shop, alice, bob, carol):
    purchase(carol, "o-1", "50.00")
    release_all()
    make()
    with pytest.raises(IntegrityError), transaction.atomic():
        Reward.objects.filter(payout_batch__isnull=False).update(state="reversed")


@postgres_only
def test_a_paid_batch_and_the_finance_log_never_change(shop, alice, bob, carol):
    purchase(carol, "o-1", "50.00")
    release_all()
    batch = paid_batch()
    with pytest.raises(IntegrityError), transaction.atomic():
        PayoutBatch.objects.filter(pk=batch.pk).update(reference="edited")
    with pytest.raises(IntegrityError), transaction.atomic():
        FinanceLog.objects.update(actor="someone else")
    with pytest.raises(IntegrityError), transaction.atomic():
        FinanceLog.objects.all().delete()
    with pytest.raises(IntegrityError), transaction.atomic():
        Reward.objects.filter(payout_batch=batch).update(payout_batch=None)
