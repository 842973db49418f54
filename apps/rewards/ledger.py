"""The reward ledger: grants, corrections and state changes, each recorded with its cause.

Everything that writes a reward goes through a `Ledger`, which belongs to one
transaction: it keeps the transitions it made and, at `finish()`, writes them and the
webhook deliveries they trigger. Callers hold the row locks that make their
arithmetic safe (see locks.lock_tree); the constraints of models.py are the last word.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Q, Sum
from django.utils import timezone

from apps.api.models import WebhookEvent
from apps.api.webhooks import Event, webhook_events_record
from apps.campaigns.models import Campaign
from apps.notifications.services import notify_reward_transitions
from apps.referrals.models import Participant

from .models import (
    LIVE_STATES,
    UNPAID_STATES,
    Conversion,
    Reward,
    RewardReason,
    RewardSource,
    RewardState,
    RewardTransition,
)
from .serializers import reward_json

ZERO = Decimal(0)

# The lifecycle: pending -> held -> approved -> paid; reversed and rejected end it.
ALLOWED: dict[str, frozenset[str]] = {
    RewardState.PENDING: frozenset(
        {RewardState.HELD, RewardState.APPROVED, RewardState.REJECTED, RewardState.REVERSED}
    ),
    RewardState.HELD: frozenset({RewardState.APPROVED, RewardState.REJECTED, RewardState.REVERSED}),
    RewardState.APPROVED: frozenset({RewardState.PAID, RewardState.REJECTED, RewardState.REVERSED}),
    RewardState.PAID: frozenset(),
    RewardState.REVERSED: frozenset(),
    RewardState.REJECTED: frozenset(),
}


@dataclass
class Cause:
    """What a reward is for: a tier of a participant, a referee's own reward, or a
    commission level of a purchase; and what it is."""

    campaign: Campaign
    participant: Participant  # who is owed
    source: str
    currency: str
    conversion: Conversion  # the event at work now
    referee: Participant | None = None
    tier_threshold: int | None = None
    level: int | None = None
    percent: Decimal | None = None
    purchase: Conversion | None = None
    kind: str = ""
    description: str = ""
    order_id: str = ""

    def grant_lookup(self) -> dict[str, Any]:
        """The unique key of this cause's grant (see the constraints of Reward)."""
        if self.source == RewardSource.TIER:
            return {
                "participant": self.participant,
                "source": self.source,
                "tier_threshold": self.tier_threshold,
            }
        if self.source == RewardSource.REFEREE:
            return {"participant": self.participant, "source": self.source}
        return {"purchase": self.purchase, "level": self.level, "source": self.source}

    @classmethod
    def of(cls, grant: Reward, *, conversion: Conversion) -> Cause:
        """The cause of an existing grant, for correcting it."""
        return cls(
            campaign=grant.campaign,
            participant=grant.participant,
            source=grant.source,
            currency=grant.currency,
            conversion=conversion,
            referee=grant.referee,
            tier_threshold=grant.tier_threshold,
            level=grant.level,
            percent=grant.percent,
            purchase=grant.purchase,
            kind=grant.kind,
            description=grant.description,
            order_id=grant.order_id,
        )


class Ledger:
    def __init__(self, *, actor: str, conversion: Conversion | None = None) -> None:
        self.actor = actor[:150]
        self.conversion = conversion
        self.now = timezone.now()
        self.touched: dict[int, Reward] = {}
        self._transitions: list[RewardTransition] = []
        self._events: list[tuple[int, str, dict[str, Any]]] = []

    # --- what a cause is owed ------------------------------------------------------------
    def reconcile(
        self,
        cause: Cause,
        *,
        entitled: bool,
        amount: Decimal,
        review: bool = False,
        fixed: bool = False,
        grantable: bool = True,
    ) -> None:
        """Make the live entries of `cause` add up to `amount` when `entitled`, to nothing
        otherwise: grant, reinstate, or reverse (in full while nothing is paid or in a
        payout batch, else with a negative entry owed back). Never reverses more than stands.

        `fixed`: once granted, the cause is worth what was granted (a tier or referee
        reward keeps its amount when the operator edits the tier later). `grantable`:
        False when there is nothing to grant any more, only a past grant to follow.
        """
        grant = Reward.objects.filter(adjusts__isnull=True, **cause.grant_lookup()).first()
        if grant is None:
            if entitled and grantable:
                self._create(cause, amount, adjusts=None, review=review)
            return
        if grant.state == RewardState.REJECTED:
            return  # closed by an operator or a cap: nothing comes back by itself
        if fixed:
            amount = grant.amount
        entries = list(Reward.objects.filter(Q(pk=grant.pk) | Q(adjusts=grant)).order_by("id"))
        for entry in entries:
            entry.campaign = cause.campaign  # for their JSON, without a query each
        live = [e for e in entries if e.state in LIVE_STATES]
        current = sum((e.amount for e in live), ZERO)
        if entitled and live and current == amount:
            return
        if not entitled and not live:
            return
        reason = self._reason()
        # A committed entry (paid, or in a payout batch on its way to the bank) is never
        # taken back in place: the correction is a new negative entry, owed back.
        if not entitled and not any(e.is_committed for e in live):
            for entry in live:
                self.move(entry, RewardState.REVERSED, reason)
            return
        if not entitled:
            if current > ZERO:
                self._correct(cause, grant, -current, entries, reason)
            return
        if not live:
            # Regained after a full reversal: the grant again, as a new entry.
            self._create(cause, amount, adjusts=grant, review=review)
        elif amount < current:
            self._correct(cause, grant, amount - current, entries, reason)
        elif amount > current:
            self._create(cause, amount - current, adjusts=grant, review=review)

    def _correct(
        self, cause: Cause, grant: Reward, delta: Decimal, entries: list[Reward], reason: str
    ) -> None:
        """A negative entry. While the cause still has an unpaid positive entry, the
        correction travels with it (same state, same due time) and nets in the same payout;
        otherwise it is approved at once: owed back, netted in the next payout."""
        anchor = next(
            (e for e in reversed(entries) if e.state in UNPAID_STATES and e.amount > 0), None
        )
        state = anchor.state if anchor else RewardState.APPROVED
        self._insert(
            cause,
            delta,
            adjusts=grant,
            state=state,
            reason=anchor.reason if anchor else RewardReason.NONE,
            due_at=anchor.due_at if anchor else None,
            note=reason,
        )

    def grant_new(self, grants: Sequence[tuple[Cause, Decimal]], *, review: bool = False) -> None:
        """Grant causes that cannot have an entry yet (the commissions of a purchase stored
        in this transaction), without looking for one, in one INSERT; the unique
        constraints stay the last word. Under a cap each grant counts against the ones
        before it, so they are written one at a time there."""
        campaign = grants[0][0].campaign if grants else None
        if campaign is None:
            return
        if campaign.budget_cap is not None or campaign.per_referrer_cap is not None:
            for cause, amount in grants:
                self._create(cause, amount, adjusts=None, review=review)
            return
        rewards = [
            reward
            for cause, amount in grants
            if (reward := self._new(cause, amount, adjusts=None, review=review)) is not None
        ]
        Reward.objects.bulk_create(rewards)
        for reward in rewards:
            reward.campaign = campaign
            self._record(reward, "", reward.state, self._reason())

    def _create(
        self, cause: Cause, amount: Decimal, *, adjusts: Reward | None, review: bool
    ) -> Reward | None:
        reward = self._new(cause, amount, adjusts=adjusts, review=review)
        if reward is None:
            return None
        reward.save(force_insert=True)
        reward.campaign = cause.campaign
        note = self._reason()
        if reward.reason in (RewardReason.BUDGET_CAP, RewardReason.PER_REFERRER_CAP):
            note = str(RewardReason(reward.reason).label)
        self._record(reward, "", reward.state, note)
        return reward

    def _new(
        self, cause: Cause, amount: Decimal, *, adjusts: Reward | None, review: bool
    ) -> Reward | None:
        """The entry granting `amount` for `cause`, not saved; None for a blocked
        participant, who is granted nothing."""
        campaign = cause.campaign
        if cause.participant.status == Participant.Status.BLOCKED:
            return None
        due_at = self.now + timedelta(days=campaign.holding_days)
        state, why = self._capped(cause, amount)
        if state is None:
            if review or cause.participant.status == Participant.Status.FLAGGED:
                state, why = RewardState.PENDING, RewardReason.REVIEW
            elif campaign.holding_days == 0:
                state, why = RewardState.APPROVED, RewardReason.NONE
            else:
                state, why = RewardState.HELD, RewardReason.NONE
        return self._entry(cause, amount, adjusts=adjusts, state=state, reason=why, due_at=due_at)

    def _capped(self, cause: Cause, amount: Decimal) -> tuple[str | None, str]:
        """(REJECTED, the cap) when granting `amount` would pass a cap. Caps are in the
        campaign's currency; rewards in other currencies (points) are not counted."""
        campaign = cause.campaign
        if cause.currency != campaign.currency or amount <= 0:
            return None, ""
        if campaign.budget_cap is None and campaign.per_referrer_cap is None:
            return None, ""
        live = Reward.objects.filter(
            campaign=campaign, currency=campaign.currency, state__in=LIVE_STATES
        )
        if campaign.budget_cap is not None:
            used = live.aggregate(s=Sum("amount"))["s"] or ZERO
            if used + amount > campaign.budget_cap:
                return RewardState.REJECTED, RewardReason.BUDGET_CAP
        if campaign.per_referrer_cap is not None:
            used = live.filter(participant=cause.participant).aggregate(s=Sum("amount"))["s"]
            if (used or ZERO) + amount > campaign.per_referrer_cap:
                return RewardState.REJECTED, RewardReason.PER_REFERRER_CAP
        return None, ""

    def _insert(
        self,
        cause: Cause,
        amount: Decimal,
        *,
        adjusts: Reward | None,
        state: str,
        reason: str,
        due_at: datetime | None,
        note: str,
    ) -> Reward:
        reward = self._entry(
            cause, amount, adjusts=adjusts, state=state, reason=reason, due_at=due_at
        )
        reward.save(force_insert=True)
        reward.campaign = cause.campaign
        self._record(reward, "", state, note)
        return reward

    def _entry(
        self,
        cause: Cause,
        amount: Decimal,
        *,
        adjusts: Reward | None,
        state: str,
        reason: str,
        due_at: datetime | None,
    ) -> Reward:
        return Reward(
            campaign=cause.campaign,
            participant=cause.participant,
            source=cause.source,
            level=cause.level,
            tier_threshold=cause.tier_threshold,
            percent=cause.percent,
            conversion=cause.conversion,
            purchase=cause.purchase,
            referee=cause.referee,
            order_id=cause.order_id,
            adjusts=adjusts,
            kind=cause.kind,
            description=cause.description,
            amount=amount,
            currency=cause.currency,
            state=state,
            reason=reason,
            due_at=due_at if state in (RewardState.HELD, RewardState.PENDING) else None,
            created_at=self.now,
            updated_at=self.now,
            approved_at=self.now if state == RewardState.APPROVED else None,
        )

    # --- state changes -------------------------------------------------------------------
    def move(self, reward: Reward, to_state: str, note: str = "", **fields: Any) -> bool:
        """Change the state of `reward` if it is still in the state it was read in and
        the lifecycle allows the change. A conditional UPDATE: of two concurrent movers,
        one wins and the other gets False."""
        if to_state not in ALLOWED[reward.state]:
            return False
        if to_state == RewardState.APPROVED:
            fields.setdefault("approved_at", self.now)
        if to_state == RewardState.PAID:
            fields.setdefault("paid_at", self.now)
        changed = Reward.objects.filter(pk=reward.pk, state=reward.state).update(
            state=to_state, updated_at=self.now, **fields
        )
        if not changed:
            return False
        from_state = reward.state
        reward.state = to_state
        reward.updated_at = self.now
        for name, value in fields.items():
            setattr(reward, name, value)
        self._record(reward, from_state, to_state, note)
        return True

    def _reason(self) -> str:
        conversion = self.conversion
        if conversion is None:
            return ""
        if conversion.order_id:
            return f"{conversion.type} {conversion.order_id}"
        return str(conversion.type)

    def _record(self, reward: Reward, from_state: str, to_state: str, note: str) -> None:
        self.touched[reward.pk] = reward
        transition = RewardTransition(
            reward=reward,
            campaign_id=reward.campaign_id,
            from_state=from_state,
            to_state=to_state,
            actor=self.actor,
            reason=note[:300],
            conversion=self.conversion,
            created_at=self.now,
        )
        self._transitions.append(transition)
        event = _event_type(from_state, to_state, reward.amount)
        if event:
            self._events.append((len(self._transitions) - 1, event, reward_json(reward)))
            if not from_state and to_state == RewardState.APPROVED and reward.amount >= 0:
                # Granted with no holding period: approved at once, and said so.
                self._events.append(
                    (len(self._transitions) - 1, WebhookEvent.REWARD_APPROVED, self._events[-1][2])
                )

    def finish(self) -> list[RewardTransition]:
        """Write the transitions and their webhook deliveries; call once, at the end."""
        transitions = RewardTransition.objects.bulk_create(self._transitions)
        webhook_events_record(
            [
                Event(
                    campaign_id=transitions[i].campaign_id,
                    type=event_type,
                    id=f"evt_{transitions[i].pk}_{event_type.rsplit('.', 1)[-1]}",
                    data=data,
                    timestamp=self.now,
                )
                for i, event_type, data in self._events
            ]
        )
        # Participants hear of rewards unlocked and approved (sent once this commits).
        notify_reward_transitions(transitions=transitions)
        self._transitions, self._events = [], []
        return transitions


def _event_type(from_state: str, to_state: str, amount: Decimal) -> str:
    if not from_state:
        if to_state in (RewardState.REJECTED,):
            return ""
        return WebhookEvent.REWARD_REVERSED if amount < 0 else WebhookEvent.REWARD_GRANTED
    if to_state == RewardState.APPROVED:
        return WebhookEvent.REWARD_APPROVED
    if to_state == RewardState.REVERSED:
        return WebhookEvent.REWARD_REVERSED
    return ""
