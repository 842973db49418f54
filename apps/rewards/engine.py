"""The reward rules: what each event changes.

Called by the services with the participant and its ancestors locked (locks.lock_tree),
inside their transaction. Every grant and correction goes through the Ledger, whose
`reconcile` makes a cause's entries add up to what it is worth now; so the same rules
serve first grants, refunds and reinstatements alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Q, Sum, prefetch_related_objects
from django.db.models.functions import Coalesce

from apps.campaigns.models import (
    Campaign,
    CommissionLevel,
    QualifyingEvent,
    RefereeReward,
    RewardTier,
)
from apps.common.money import format_amount, percent_of
from apps.notifications.services import notify_qualified
from apps.referrals.models import Participant
from apps.referrals.selectors import qualified_referral_count

from .ledger import ZERO, Cause, Ledger
from .models import Conversion, ConversionStatus, ConversionType, Reward, RewardSource

# Host and server clocks differ: an event stamped a little before the join still counts.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass
class Tree:
    """The participant an event is about and its ancestors, nearest first, all locked."""

    participant: Participant
    ancestors: list[Participant]

    @property
    def referrer(self) -> Participant | None:
        return self.ancestors[0] if self.ancestors else None


def in_window(campaign: Campaign, participant: Participant, at: datetime) -> bool:
    """Whether `at` falls in the attribution window that opened when `participant` joined."""
    start = participant.joined_at - CLOCK_SKEW
    end = participant.joined_at + timedelta(days=campaign.attribution_window_days)
    return start <= at <= end


def prepare(conversion: Conversion, tree: Tree) -> None:
    """What can be decided about an event before it is stored, so that it is stored with
    it: whether a purchase qualifies (in the attribution window, at least the minimum)."""
    if conversion.type != ConversionType.PURCHASE:
        return
    campaign = conversion.campaign
    assert conversion.amount is not None  # noqa: S101 (a check constraint says so)
    minimum = campaign.min_purchase_amount
    if not in_window(campaign, tree.participant, conversion.occurred_at):
        conversion.note = "Outside the attribution window: no qualification, no commission."
    elif minimum is not None and conversion.amount < minimum:
        conversion.note = (
            f"Below the minimum purchase of {format_amount(minimum, campaign.currency)}: "
            "no qualification, no commission."
        )
    else:
        conversion.qualifying = True


def apply(
    ledger: Ledger,
    conversion: Conversion,
    tree: Tree,
    *,
    waiting_refunds: list[Conversion] | None = None,
) -> None:
    """Apply a newly stored event (`prepare`d before it was stored). For a purchase,
    `waiting_refunds` are the refunds of its order that came first, when the caller read
    them already (None: read them here)."""
    if conversion.type == ConversionType.PURCHASE:
        _on_purchase(ledger, conversion, tree, waiting_refunds)
        return
    handlers = {
        ConversionType.SIGNUP: _on_signup,
        ConversionType.SIGNUP_VERIFIED: _on_verification,
        ConversionType.REFUND: _on_refund,
        ConversionType.REVIEW: _on_review,
    }
    handlers[ConversionType(conversion.type)](ledger, conversion, tree)


@contextmanager
def _caused_by(ledger: Ledger, conversion: Conversion) -> Iterator[None]:
    previous, ledger.conversion = ledger.conversion, conversion
    try:
        yield
    finally:
        ledger.conversion = previous


def _on_signup(ledger: Ledger, conversion: Conversion, tree: Tree) -> None:
    if conversion.campaign.qualifying_event == QualifyingEvent.SIGNUP:
        _qualify(ledger, conversion, tree)


def _on_verification(ledger: Ledger, conversion: Conversion, tree: Tree) -> None:
    participant = tree.participant
    if participant.verified_at is None:
        participant.verified_at = conversion.occurred_at
        participant.save(update_fields=["verified_at"])
    if conversion.campaign.qualifying_event != QualifyingEvent.VERIFIED_SIGNUP:
        return
    if in_window(conversion.campaign, participant, conversion.occurred_at):
        _qualify(ledger, conversion, tree)
    else:
        conversion.note = "Outside the attribution window: it does not qualify."


def _on_review(ledger: Ledger, conversion: Conversion, tree: Tree) -> None:
    """The participant's status changed (flagged, blocked, or cleared by a person): what
    depends on whether they count is worth something else now. As a referee, their own
    reward and their referrer's tiers; as a referrer, their own tiers (a blocked
    participant was granted none, and gets what they reach when a person clears them)."""
    participant = tree.participant
    if tree.referrer is not None and participant.qualified_at is not None:
        _referral_rewards(ledger, conversion, tree)
    if participant.referrals.exists():
        _tiers(ledger, conversion, None, participant)


def _on_purchase(
    ledger: Ledger, conversion: Conversion, tree: Tree, waiting: list[Conversion] | None
) -> None:
    campaign = conversion.campaign
    if conversion.qualifying:
        if campaign.qualifying_event == QualifyingEvent.PURCHASE:
            _qualify(ledger, conversion, tree)
        _grant_commissions(ledger, conversion, tree)
    # Refunds that came before their purchase, in the order they came.
    if waiting is None:
        waiting = list(
            Conversion.objects.filter(
                campaign=campaign,
                type=ConversionType.REFUND,
                order_id=conversion.order_id,
                status=ConversionStatus.WAITING,
            ).order_by("id")
        )
    for refund in waiting:
        refund.campaign = campaign
        _apply_refund(ledger, refund, conversion, tree)


def _grant_commissions(ledger: Ledger, purchase: Conversion, tree: Tree) -> None:
    """Level n (1 to 3) earns its percent of the purchase, rounded once, to the n-th
    ancestor of the buyer. The purchase was stored by this transaction (or claimed queued
    by it, queue.py), so none of its commissions can exist yet: they are granted without
    looking for them, together."""
    assert purchase.amount is not None  # noqa: S101
    buyer = tree.participant
    if buyer.status == Participant.Status.BLOCKED:
        return
    grants: list[tuple[Cause, Decimal]] = []
    levels = CommissionLevel.objects.filter(campaign_id=purchase.campaign.pk).order_by("level")
    for level in levels:
        if level.level > len(tree.ancestors):
            continue
        amount = percent_of(purchase.amount, level.percent, purchase.currency)
        if amount <= ZERO:
            continue
        cause = Cause(
            campaign=purchase.campaign,
            participant=tree.ancestors[level.level - 1],
            source=RewardSource.COMMISSION,
            currency=purchase.currency,
            conversion=purchase,
            referee=buyer,
            level=level.level,
            percent=level.percent,
            purchase=purchase,
            kind="cash",
            description=f"{level.percent}% of order {purchase.order_id}",
            order_id=purchase.order_id,
        )
        grants.append((cause, amount))
    ledger.grant_new(grants, review=buyer.status == Participant.Status.FLAGGED)


def _on_refund(ledger: Ledger, conversion: Conversion, tree: Tree) -> None:
    purchase = find_purchase(conversion.campaign, conversion.order_id)
    if purchase is None:
        conversion.status = ConversionStatus.WAITING
        conversion.note = "No purchase with this order id yet: kept, applied when it comes."
        return
    purchase.campaign = conversion.campaign
    _apply_refund(ledger, conversion, purchase, tree)


def find_purchase(campaign: Campaign, order_id: str) -> Conversion | None:
    """The applied (or ignored) purchase of an order: a queued one is not there yet for
    its refunds, which wait for it as for one that has not come."""
    return (
        Conversion.objects.filter(
            campaign=campaign, type=ConversionType.PURCHASE, order_id=order_id
        )
        .exclude(status=ConversionStatus.QUEUED)
        .first()
    )


def refund_mismatch(refund: Conversion, purchase: Conversion) -> str:
    """Why `refund` cannot apply to `purchase`, or ''."""
    if refund.participant_id != purchase.participant_id:
        return "The refund names another participant than its purchase."
    if refund.currency != purchase.currency:
        return f"The refund is in {refund.currency}, its purchase in {purchase.currency}."
    return ""


def _apply_refund(ledger: Ledger, refund: Conversion, purchase: Conversion, tree: Tree) -> None:
    """Apply what is left to refund of `purchase` (never more), then bring its commissions
    down in proportion and check that the buyer still qualifies."""
    assert purchase.amount is not None and refund.amount is not None  # noqa: S101
    problem = refund_mismatch(refund, purchase)
    if problem:
        refund.status, refund.note = ConversionStatus.IGNORED, problem
        refund.save(update_fields=["status", "note"])
        return
    refunded = (
        purchase.refunds.filter(status=ConversionStatus.APPLIED).aggregate(s=Sum("applied_amount"))[
            "s"
        ]
        or ZERO
    )
    remaining = purchase.amount - refunded
    applied = min(refund.amount, remaining)
    refund.purchase = purchase
    refund.applied_amount = applied
    refund.status = ConversionStatus.APPLIED
    if applied < refund.amount:
        refund.note = (
            f"Only {format_amount(remaining, purchase.currency)} of the order was left to refund."
        )
    refund.save(update_fields=["purchase", "applied_amount", "status", "note"])
    net = remaining - applied
    with _caused_by(ledger, refund):
        grants = Reward.objects.filter(
            purchase=purchase, source=RewardSource.COMMISSION, adjusts__isnull=True
        ).select_related("participant", "referee")
        for grant in grants:
            grant.campaign = refund.campaign
            assert grant.percent is not None  # noqa: S101
            target = percent_of(net, grant.percent, grant.currency)
            ledger.reconcile(
                Cause.of(grant, conversion=refund), entitled=target > ZERO, amount=target
            )
        _requalify(ledger, refund, tree)


def _qualify(ledger: Ledger, conversion: Conversion, tree: Tree) -> None:
    participant = tree.participant
    if participant.qualified_at is not None:
        return
    participant.qualified_at = conversion.occurred_at
    participant.save(update_fields=["qualified_at"])
    _referral_rewards(ledger, conversion, tree)
    # The referrer hears of it (and of a tier now one friend away) once this commits.
    notify_qualified(participant=participant, referrer=tree.referrer)


def _requalify(ledger: Ledger, conversion: Conversion, tree: Tree) -> None:
    """After a refund: a purchase campaign's referee who has no qualifying purchase left
    (net of refunds, at least the minimum) no longer qualifies."""
    participant = tree.participant
    campaign = conversion.campaign
    if campaign.qualifying_event != QualifyingEvent.PURCHASE or participant.qualified_at is None:
        return
    minimum = campaign.min_purchase_amount
    purchases = Conversion.objects.filter(
        participant=participant, type=ConversionType.PURCHASE, qualifying=True
    ).annotate(
        refunded=Coalesce(
            Sum("refunds__applied_amount", filter=Q(refunds__status=ConversionStatus.APPLIED)),
            ZERO,
        )
    )
    for purchase in purchases:
        assert purchase.amount is not None  # noqa: S101
        net = purchase.amount - purchase.refunded
        if net > ZERO and (minimum is None or net >= minimum):
            return
    participant.qualified_at = None
    participant.save(update_fields=["qualified_at"])
    _referral_rewards(ledger, conversion, tree)


def _referral_rewards(ledger: Ledger, conversion: Conversion, tree: Tree) -> None:
    """The referee's own reward and the referrer's tiers, after the referee's qualification
    changed (either way)."""
    referee, referrer = tree.participant, tree.referrer
    if referrer is None:
        return  # a seed: nobody invited them, nobody earns for them
    campaign = conversion.campaign
    qualified = referee.qualified_at is not None
    spec: RefereeReward | None = RefereeReward.objects.filter(campaign=campaign).first()
    ledger.reconcile(
        Cause(
            campaign=campaign,
            participant=referee,
            source=RewardSource.REFEREE,
            currency=spec.currency if spec else campaign.currency,
            conversion=conversion,
            referee=referee,
            kind=spec.kind if spec else "",
            description=spec.description if spec else "",
            order_id=conversion.order_id,
        ),
        entitled=qualified,
        amount=spec.amount if spec else ZERO,
        fixed=True,
        # A campaign without a referee reward grants none, but one granted before the
        # operator removed it still follows the referee's qualification.
        grantable=spec is not None,
    )
    _tiers(ledger, conversion, referee, referrer)


def _tiers(
    ledger: Ledger, conversion: Conversion, referee: Participant | None, referrer: Participant
) -> None:
    """Every tier whose threshold the referrer's qualified direct referrals reach, once;
    a tier no longer reached is taken back (and comes back if it is reached again)."""
    campaign = conversion.campaign
    count = qualified_referral_count(referrer)
    granted = set(
        Reward.objects.filter(
            participant=referrer, source=RewardSource.TIER, adjusts__isnull=True
        ).values_list("tier_threshold", flat=True)
    )
    for tier in campaign_tiers(campaign):
        entitled = count >= tier.threshold
        if not entitled and tier.threshold not in granted:
            continue
        ledger.reconcile(
            Cause(
                campaign=campaign,
                participant=referrer,
                source=RewardSource.TIER,
                currency=tier.currency,
                conversion=conversion,
                referee=referee,
                tier_threshold=tier.threshold,
                kind=tier.kind,
                description=tier.description,
                order_id=conversion.order_id,
            ),
            entitled=entitled,
            amount=tier.amount,
            fixed=True,
        )


def campaign_tiers(campaign: Campaign) -> list[RewardTier]:
    """The campaign's tiers by threshold, read once per campaign object: the tiers and
    the notifications of one event share them (the tree's rows carry the same object)."""
    prefetch_related_objects([campaign], "tiers")
    return sorted(campaign.tiers.all(), key=lambda tier: tier.threshold)
