"""Reconciliation: granted − reversed = paid + approved unpaid + held + pending − owed back,
on a ledger with refunds before and after a payout, worked out by hand."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import F
from django.utils import timezone

from apps.api.models import ApiKey
from apps.api.services import api_key_create
from apps.exports.reconciliation import reconciliation, totals_by_currency
from apps.rewards.models import Reward
from apps.rewards.payouts import payout_batch_create, payout_batch_mark_paid
from tests.rewards.helpers import purchase, refund

from .conftest import release_all

pytestmark = pytest.mark.django_db

FIGURES = (
    "granted", "reversed", "paid", "approved_unpaid", "held", "pending", "owed_back",
    "outstanding",
)  # fmt: skip


def figures(**kwargs) -> dict[str, str]:
    [line] = reconciliation(**kwargs)
    assert line.granted - line.reversed == (
        line.paid + line.approved_unpaid + line.held + line.pending - line.owed_back
    ), "the identity"
    assert line.balanced
    return {name: f"{getattr(line, name):.2f}" for name in FIGURES}


def expect(**values: str) -> dict[str, str]:
    return {name: values.get(name, "0.00") for name in FIGURES}


def pay(reference: str) -> None:
    batch = payout_batch_create(actor="finance", currency="CNY").batch
    payout_batch_mark_paid(batch_id=batch.pk, reference=reference, actor="finance")


def test_the_identity_holds_through_refunds_before_and_after_payout(shop, alice, bob, carol, dave):
    # carol buys 50.00: her own 20.00, bob's 10 % (5.00), alice's 5 % (2.50), all held.
    purchase(carol, "o-1", "50.00")
    assert figures() == expect(granted="27.50", held="27.50", outstanding="27.50")

    # Refund before payout: 10.00 back; the commissions are corrected (-1.00, -0.50),
    # the corrections travel with their held rewards.
    refund(carol, "o-1", "10.00")
    assert figures() == expect(granted="27.50", reversed="1.50", held="26.00", outstanding="26.00")

    release_all()
    assert figures() == expect(
        granted="27.50", reversed="1.50", approved_unpaid="26.00", outstanding="26.00"
    )

    pay("BANK-1")  # 20.00 + 4.00 + 2.00
    assert figures() == expect(granted="27.50", reversed="1.50", paid="26.00")

    # dave buys 100.00: his 20.00, bob's 10.00 and his tier (2 friends: 50.00), alice's 5.00.
    purchase(dave, "o-2", "100.00")
    # Refund after payout: carol returns the rest, and no longer qualifies. Her paid
    # 20.00 and the paid commissions (4.00 and 2.00 net) are owed back as negative
    # entries; bob's tier, not paid yet, is reversed in place.
    refund(carol, "o-1", "40.00", key="r-2", api_key=_key())
    assert figures() == expect(
        granted="112.50",  # 27.50 + 20.00 + 10.00 + 50.00 + 5.00
        reversed="77.50",  # 1.50 + 20.00 + 4.00 + 2.00 + 50.00
        paid="26.00",
        held="35.00",  # dave 20.00, bob 10.00, alice 5.00
        owed_back="26.00",  # carol 20.00, bob 4.00, alice 2.00
        outstanding="9.00",
    )

    release_all()
    # bob nets 10.00 − 4.00, alice 5.00 − 2.00, dave 20.00; carol still owes 20.00.
    assert figures() == expect(
        granted="112.50",
        reversed="77.50",
        paid="26.00",
        approved_unpaid="29.00",
        owed_back="20.00",
        outstanding="9.00",
    )

    pay("BANK-2")  # 6.00 + 3.00 + 20.00: carol has nothing to net against, carried forward
    assert figures() == expect(
        granted="112.50", reversed="77.50", paid="55.00", owed_back="20.00",
        outstanding="-20.00",
    )  # fmt: skip
    assert Reward.objects.get(participant=carol, amount=Decimal("-20.00")).state == "approved"


def _key() -> ApiKey:
    return ApiKey.objects.first() or api_key_create(name="shop")[0]


def test_the_period_is_when_entries_were_made(shop, alice, bob, carol):
    purchase(carol, "o-1", "50.00")
    today = timezone.localdate()
    assert figures(date_from=today, date_to=today)["granted"] == "27.50"
    assert reconciliation(date_from=today + timedelta(days=1)) == []
    assert reconciliation(date_to=today - timedelta(days=1)) == []
    release_all()
    pay("BANK-1")
    # The whole order is refunded after the payout, as if tomorrow: the negative entries
    # are made when the refund arrives, so they belong to tomorrow's period.
    refund(carol, "o-1", "50.00")
    negatives = Reward.objects.filter(amount__lt=0)
    assert negatives.count() == 3
    negatives.update(created_at=F("created_at") + timedelta(days=1))
    tomorrow = today + timedelta(days=1)
    assert figures(date_to=today) == expect(granted="27.50", paid="27.50")
    assert figures(date_from=tomorrow) == expect(
        reversed="27.50", owed_back="27.50", outstanding="-27.50"
    )
    assert figures() == expect(
        granted="27.50", reversed="27.50", paid="27.50", owed_back="27.50", outstanding="-27.50"
    )


def test_each_campaign_and_currency_balances(ledger):
    lines = reconciliation()
    assert [(line.campaign, line.currency) for line in lines] == [
        ("shop", "CNY"),
        ("usd", "USD"),
    ]
    assert all(line.balanced for line in lines)
    usd = lines[1]
    assert (usd.granted, usd.approved_unpaid, usd.outstanding) == (
        Decimal("10.00"),
        Decimal("10.00"),
        Decimal("10.00"),
    )
    assert [t.currency for t in totals_by_currency(lines)] == ["CNY", "USD"]
    [shop_only] = reconciliation(campaign=ledger)
    assert shop_only == lines[0]
