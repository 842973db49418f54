"""The reward ledger of the benchmark data (`manage.py generate_load_data --rewards`):
what the engine would have written for the load campaigns' referees, as COPY rows.

Referee rewards and tiers from the qualified referees' sign-ups, commissions (three
levels) on purchases in several currencies, in every state, the paid ones in paid payout
batches, refunds reversing or owing back. Ids are handed out in order after the tables'
own, so the rows load with COPY and the sequences are moved past them afterwards.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from apps.common.money import percent_of
from apps.rewards.models import PayoutBatch

CONVERSION_COLUMNS = (
    "id", "campaign_id", "participant_id", "type", "order_id", "amount", "currency",
    "occurred_at", "received_at", "idempotency_key", "status", "note", "qualifying",
    "purchase_id", "applied_amount", "response_status", "response",
)  # fmt: skip
REWARD_COLUMNS = (
    "id", "campaign_id", "participant_id", "source", "level", "tier_threshold", "percent",
    "conversion_id", "purchase_id", "referee_id", "order_id", "adjusts_id", "kind",
    "description", "amount", "currency", "state", "reason", "due_at", "created_at",
    "updated_at", "approved_at", "paid_at", "payout_reference", "payout_batch_id",
)  # fmt: skip
# The reward mix: shares of the total for referee rewards and tiers (as far as there are
# qualified referees and referrers for them); commissions on purchases make up the rest.
REFEREE_SHARE, TIER_SHARE = 0.4, 0.1
REFEREE_AMOUNT = Decimal("10.00")
TIERS = ((3, Decimal(50)), (5, Decimal(100)), (10, Decimal(300)))
COMMISSION_PERCENTS = (Decimal(10), Decimal(5), Decimal(2))
# Purchases: (currency, weight, smallest and largest amount in whole units).
CURRENCIES = (
    ("CNY", 70, 20, 2000), ("USD", 15, 5, 400), ("EUR", 9, 5, 400), ("JPY", 6, 500, 50000),
)  # fmt: skip
REFUND_RATE = 0.03
# Grant states with their weights.
STATES = (
    ("pending", 8), ("held", 12), ("approved", 25), ("paid", 45), ("rejected", 5),
    ("reversed", 5),
)  # fmt: skip
HOLD = timedelta(days=14)
BATCH_CREATOR = "generate_load_data"
NULL = "\\N"


def _time(value: datetime | None) -> str:
    return NULL if value is None else value.isoformat()


def _value(value: object) -> str:
    return NULL if value is None else str(value)


class RewardPlan:
    """The rewards and their events as COPY rows, with ids handed out in order."""

    def __init__(
        self, rng: random.Random, now: datetime, conversion_id: int, reward_id: int, batch_id: int
    ) -> None:
        self.rng, self.now = rng, now
        self.conversion_id, self.reward_id, self.batch_id = conversion_id, reward_id, batch_id
        self.payees: dict[int, set[int]] = {}
        self.conversions: list[str] = []
        self.rewards: list[str] = []
        self.batches: dict[tuple[str, str], PayoutBatch] = {}
        self.states = [state for state, _ in STATES]
        self.weights = [weight for _, weight in STATES]

    def make(self, referred: list[tuple[Any, ...]], count: int) -> None:
        rng = self.rng
        qualified = [row for row in referred if row[5] is not None]
        signups: dict[int, int] = {}
        for pid, campaign, _, _, _, qualified_at, _ in qualified:
            signups[pid] = self._conversion(campaign, pid, "signup", qualified_at)
        # Referee rewards: a sample of the qualified referees, owed to themselves.
        chosen = rng.sample(qualified, min(int(count * REFEREE_SHARE), len(qualified)))
        for pid, campaign, _, _, _, qualified_at, _ in sorted(chosen):
            self._reward(
                campaign, pid, "referee", signups[pid], qualified_at, REFEREE_AMOUNT, "CNY",
                referee=pid,
            )  # fmt: skip
        # Tiers: a referrer's 3rd, 5th and 10th qualified referee each reach one.
        friends: dict[int, list[tuple[datetime, int, int]]] = {}
        for pid, campaign, referrer, _, _, qualified_at, _ in qualified:
            friends.setdefault(referrer, []).append((qualified_at, pid, campaign))
        tiers = min(int(count * TIER_SHARE), count - len(self.rewards))
        for referrer, rows in friends.items():
            rows.sort()
            for threshold, amount in TIERS:
                if tiers <= 0 or len(rows) < threshold:
                    break
                at, referee, campaign = rows[threshold - 1]
                self._reward(
                    campaign, referrer, "tier", signups[referee], at, amount, "CNY",
                    referee=referee, tier_threshold=threshold, description=f"{amount} CNY",
                )  # fmt: skip
                tiers -= 1
        # Commissions on purchases until the count is reached.
        currencies = [c for c, *_ in CURRENCIES]
        weights = [w for _, w, *_ in CURRENCIES]
        ranges = {c: (low, high) for c, _, low, high in CURRENCIES}
        while len(self.rewards) < count:
            pid, campaign, *ancestors, _, joined_at = rng.choice(referred)
            currency = rng.choices(currencies, weights)[0]
            low, high = ranges[currency]
            whole = currency == "JPY"
            amount = (
                Decimal(rng.randint(low, high))
                if whole
                else Decimal(rng.randint(low * 100, high * 100)) / 100
            )
            at = joined_at + (self.now - joined_at) * rng.random()
            order = f"L{self.conversion_id + 1}"
            purchase = self._conversion(campaign, pid, "purchase", at, order, amount, currency)
            refund = None
            if rng.random() < REFUND_RATE:
                refunded_at = min(at + timedelta(days=rng.uniform(1, 20)), self.now)
                refund = self._conversion(
                    campaign, pid, "refund", refunded_at, order, amount, currency, purchase
                )
            for level, (receiver, percent) in enumerate(
                zip(ancestors, COMMISSION_PERCENTS, strict=True), 1
            ):
                if receiver is None or len(self.rewards) >= count:
                    break
                share = percent_of(amount, percent, currency)
                fields = {
                    "referee": pid, "level": level, "percent": percent, "purchase": purchase,
                    "order_id": order, "kind": "cash",
                    "description": f"{percent}% of order {order}",
                }  # fmt: skip
                state = None
                if refund is not None:
                    state = self._pick_state()
                    if state in ("pending", "held", "approved"):
                        state = "reversed"  # taken back in full before it was paid
                grant = self._reward(
                    campaign, receiver, "commission", purchase, at, share, currency,
                    state=state, **fields,
                )  # fmt: skip
                if refund is not None and state == "paid" and len(self.rewards) < count:
                    # Paid already: the correction is owed back, netted in a later payout.
                    self._reward(
                        campaign, receiver, "commission", refund, refunded_at, -share, currency,
                        state="approved", adjusts=grant, **fields,
                    )  # fmt: skip

    def _conversion(
        self,
        campaign: int,
        participant: int,
        kind: str,
        at: datetime,
        order: str = "",
        amount: Decimal | None = None,
        currency: str = "",
        purchase: int | None = None,
    ) -> int:
        self.conversion_id += 1
        applied = amount if kind == "refund" else None
        self.conversions.append(
            "\t".join((
                str(self.conversion_id), str(campaign), str(participant), kind, order,
                _value(amount), currency, at.isoformat(), at.isoformat(), "", "applied", "",
                "t" if kind == "purchase" else "f", _value(purchase), _value(applied), "201",
                "{}",
            )) + "\n"
        )  # fmt: skip
        return self.conversion_id

    def _pick_state(self) -> str:
        return self.rng.choices(self.states, self.weights)[0]

    def _reward(
        self,
        campaign: int,
        participant: int,
        source: str,
        conversion: int,
        at: datetime,
        amount: Decimal,
        currency: str,
        *,
        state: str | None = None,
        referee: int | None = None,
        level: int | None = None,
        percent: Decimal | None = None,
        purchase: int | None = None,
        tier_threshold: int | None = None,
        order_id: str = "",
        adjusts: int | None = None,
        kind: str = "",
        description: str = "",
    ) -> int:
        rng = self.rng
        state = state or self._pick_state()
        reason, due, approved, paid, batch, reference = "", None, None, None, None, ""
        if state in ("pending", "held"):
            due = at + HOLD
            reason = "review" if state == "pending" else ""
        elif state == "rejected":
            reason = "operator"
        elif state in ("approved", "paid"):
            approved = min(at + HOLD if adjusts is None else at, self.now)
            if state == "paid":
                paid = min(approved + timedelta(days=rng.uniform(1, 10)), self.now)
                payout = self._batch(currency, paid, participant, amount)
                batch, reference = payout.pk, payout.reference
            elif adjusts is None and rng.random() < 0.2:
                # In an open batch, not paid yet.
                batch = self._batch(currency, None, participant, amount).pk
        self.reward_id += 1
        updated = paid or approved or at
        self.rewards.append(
            "\t".join((
                str(self.reward_id), str(campaign), str(participant), source, _value(level),
                _value(tier_threshold), _value(percent), str(conversion), _value(purchase),
                _value(referee), order_id, _value(adjusts), kind, description, str(amount),
                currency, state, reason, _time(due), at.isoformat(), updated.isoformat(),
                _time(approved), _time(paid), reference, _value(batch),
            )) + "\n"
        )  # fmt: skip
        return self.reward_id

    def _batch(
        self, currency: str, paid: datetime | None, participant: int, amount: Decimal
    ) -> PayoutBatch:
        """The paid batch of `currency` for the week of `paid`, or its open batch, with
        this line added to its figures. Inserted after the lines (the foreign keys are
        checked at commit): a paid batch never changes once written."""
        week = paid.strftime("%G-W%V") if paid else "open"
        batch = self.batches.get((currency, week))
        if batch is None:
            self.batch_id += 1
            batch = PayoutBatch(
                id=self.batch_id,
                currency=currency,
                status=PayoutBatch.Status.PAID if paid else PayoutBatch.Status.OPEN,
                created_by=BATCH_CREATOR,
                created_at=paid - timedelta(days=1) if paid else self.now,
                reference=f"LOAD-{currency}-{week}" if paid else "",
                paid_by=BATCH_CREATOR if paid else "",
                paid_at=paid,
                total=Decimal(0),
            )
            self.batches[(currency, week)] = batch
            self.payees[batch.pk] = set()
        batch.total += amount
        batch.line_count += 1
        payees = self.payees[batch.pk]
        payees.add(participant)
        batch.payee_count = len(payees)
        if paid and batch.paid_at and paid > batch.paid_at:
            batch.paid_at = paid
        return batch
