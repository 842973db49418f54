"""Conversions (the host's events) and rewards (what is owed), with their history.

Rewards are a ledger. A *grant* is the first entry of a cause (a tier reached, a referee
qualifying, a commission level of a purchase) and exists at most once per cause, by
constraint. Later changes to what the cause is worth (a refund, a tier lost and regained)
are *adjustments*: new signed entries that point at their grant, one per grant and causing
event, by constraint. Amounts are never edited; a paid entry is never changed at all.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.api.models import ApiKey
from apps.campaigns.models import MAX_COMMISSION_LEVELS, Campaign
from apps.common.money import AMOUNT_DECIMAL_PLACES, AMOUNT_MAX_DIGITS, format_amount
from apps.referrals.models import Participant


def _amount(**kwargs: Any) -> models.DecimalField:
    return models.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES, **kwargs
    )


class ConversionType(models.TextChoices):
    # Recorded by the join itself in sign-up campaigns; never posted by the host.
    SIGNUP = "signup", _("Sign-up")
    SIGNUP_VERIFIED = "signup_verified", _("Verified sign-up")
    PURCHASE = "purchase", _("Purchase")
    REFUND = "refund", _("Refund")
    # A person's or the fraud rules' decision that changed whether a participant counts
    # (apps.trust): recorded like an event, so the reward entries it corrects name their
    # cause and each decision corrects a grant once (reward_unique_adjustment).
    REVIEW = "review", _("Fraud review decision")


class ConversionStatus(models.TextChoices):
    # A purchase taken in with `Prefer: respond-async`, for a worker to apply (queue.py).
    QUEUED = "queued", _("Queued")
    APPLIED = "applied", _("Applied")
    WAITING = "waiting", _("Waiting for its purchase")
    IGNORED = "ignored", _("Ignored")


class Conversion(models.Model):
    """One event from the host application (or a join, or a review decision), kept as
    received.

    Exactly once: a purchase per order, a verification per participant (and per order id
    when one is given), a refund per order when posted without an Idempotency-Key (with
    one, per key). `response` is the body of the first answer, replayed to duplicates.
    """

    Type = ConversionType
    Status = ConversionStatus

    id = models.BigAutoField(primary_key=True)
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="conversions")
    # No index of its own: conversion_participant_type starts with it (docs/indexes.md).
    participant = models.ForeignKey(
        Participant, on_delete=models.PROTECT, related_name="conversions", db_index=False
    )
    type = models.CharField(max_length=16, choices=Type.choices)
    order_id = models.CharField(max_length=128, blank=True)
    amount = _amount(null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    occurred_at = models.DateTimeField(default=timezone.now)
    received_at = models.DateTimeField(default=timezone.now)
    api_key = models.ForeignKey(
        ApiKey, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    idempotency_key = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.APPLIED)
    note = models.CharField(max_length=300, blank=True, help_text=_("Why it was ignored."))
    qualifying = models.BooleanField(
        default=False,
        help_text=_("A purchase within the attribution window and at least the minimum."),
    )
    purchase = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="refunds",
        help_text=_("For a refund: the purchase it was applied to."),
    )
    applied_amount = _amount(
        null=True, blank=True, help_text=_("For a refund: how much of it was applied.")
    )
    response_status = models.PositiveSmallIntegerField(default=201)
    response = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "order_id"],
                condition=Q(type="purchase"),
                name="conversion_unique_purchase",
            ),
            models.UniqueConstraint(
                fields=["campaign", "participant"],
                condition=Q(type="signup_verified"),
                name="conversion_unique_verification",
            ),
            models.UniqueConstraint(
                fields=["campaign", "order_id"],
                condition=Q(type="signup_verified") & ~Q(order_id=""),
                name="conversion_unique_verification_order",
            ),
            models.UniqueConstraint(
                fields=["participant"],
                condition=Q(type="signup"),
                name="conversion_unique_signup",
            ),
            models.UniqueConstraint(
                fields=["campaign", "order_id"],
                condition=Q(type="refund", idempotency_key=""),
                name="conversion_unique_refund",
            ),
            models.UniqueConstraint(
                fields=["campaign", "order_id", "idempotency_key"],
                condition=Q(type="refund") & ~Q(idempotency_key=""),
                name="conversion_unique_refund_key",
            ),
            models.CheckConstraint(
                condition=Q(type__in=ConversionType.values), name="conversion_type_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=ConversionStatus.values), name="conversion_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(type__in=["purchase", "refund"])
                | (~Q(order_id="") & Q(amount__gt=0) & ~Q(currency="")),
                name="conversion_money_events_complete",
            ),
            models.CheckConstraint(
                condition=Q(applied_amount__isnull=True)
                | (Q(applied_amount__gte=0) & Q(applied_amount__lte=F("amount"))),
                name="conversion_applied_within_amount",
            ),
        ]
        indexes = [
            # A purchase's refunds, and refunds waiting for their purchase.
            models.Index(
                fields=["campaign", "order_id"],
                condition=Q(type="refund"),
                name="conversion_refund_order",
            ),
            # A participant's purchases, when a refund decides whether they still qualify.
            models.Index(fields=["participant", "type"], name="conversion_participant_type"),
            # The worker's queue: small, since events leave it within seconds.
            models.Index(fields=["id"], condition=Q(status="queued"), name="conversion_queued"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.order_id or self.participant_id}"


class IdempotencyKey(models.Model):
    """An Idempotency-Key a host sent, with a hash of the body it came with."""

    id = models.BigAutoField(primary_key=True)
    # No index of its own: idempotency_unique_key starts with it (docs/indexes.md).
    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+", db_index=False)
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    conversion = models.ForeignKey(Conversion, on_delete=models.CASCADE, related_name="+")
    response_status = models.PositiveSmallIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["api_key", "key"], name="idempotency_unique_key"),
        ]

    def __str__(self) -> str:
        return self.key


class RewardSource(models.TextChoices):
    TIER = "tier", _("Tier")
    REFEREE = "referee", _("Referee reward")
    COMMISSION = "commission", _("Commission")


class RewardState(models.TextChoices):
    PENDING = "pending", _("Pending review")
    HELD = "held", _("Held")
    APPROVED = "approved", _("Approved")
    PAID = "paid", _("Paid")
    REVERSED = "reversed", _("Reversed")
    REJECTED = "rejected", _("Rejected")


# States whose amount counts: what is owed, or was paid.
LIVE_STATES = (RewardState.PENDING, RewardState.HELD, RewardState.APPROVED, RewardState.PAID)
UNPAID_STATES = (RewardState.PENDING, RewardState.HELD, RewardState.APPROVED)


class RewardReason(models.TextChoices):
    NONE = "", _("—")
    REVIEW = "review", _("Flagged participant: needs review")
    BUDGET_CAP = "budget_cap", _("Campaign budget cap reached")
    PER_REFERRER_CAP = "per_referrer_cap", _("Per-participant cap reached")
    OPERATOR = "operator", _("Decided by an operator")


class Reward(models.Model):
    """One ledger entry of what is owed to a participant (see the module docstring)."""

    Source = RewardSource
    State = RewardState
    Reason = RewardReason

    id = models.BigAutoField(primary_key=True)
    # No index of its own: reward_campaign_state starts with it (docs/indexes.md).
    campaign = models.ForeignKey(
        Campaign, on_delete=models.PROTECT, related_name="rewards", db_index=False
    )
    participant = models.ForeignKey(
        Participant,
        on_delete=models.PROTECT,
        related_name="rewards",
        help_text=_("Who the reward is owed to."),
    )
    source = models.CharField(max_length=10, choices=Source.choices)
    level = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text=_("Commission level: 1 is the direct referrer.")
    )
    tier_threshold = models.PositiveIntegerField(null=True, blank=True)
    percent = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    conversion = models.ForeignKey(
        Conversion,
        on_delete=models.PROTECT,
        related_name="rewards",
        help_text=_("The event that caused this entry."),
    )
    purchase = models.ForeignKey(
        Conversion,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="commissions",
        help_text=_("For a commission: the purchase it is a share of."),
    )
    referee = models.ForeignKey(
        Participant,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("The invited friend whose qualification or purchase earned it."),
    )
    order_id = models.CharField(max_length=128, blank=True)
    # No index of its own: reward_unique_adjustment (adjusts, conversion), partial on
    # adjusts being set, serves every lookup by it (docs/indexes.md).
    adjusts = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="adjustments",
        help_text=_("For a correction (a reversal or a reinstatement): the reward it corrects."),
        db_index=False,
    )
    kind = models.CharField(max_length=12, blank=True)
    description = models.CharField(max_length=500, blank=True)
    amount = _amount()
    currency = models.CharField(max_length=3)
    state = models.CharField(max_length=10, choices=State.choices)
    reason = models.CharField(max_length=20, choices=Reason.choices, blank=True, default="")
    due_at = models.DateTimeField(null=True, blank=True, help_text=_("End of the holding period."))
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    approved_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    payout_reference = models.CharField(max_length=100, blank=True)
    payout_batch = models.ForeignKey(
        "PayoutBatch",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="lines",
        help_text=_("The payout batch that pays (or nets) this entry. At most one, ever."),
    )

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["participant", "tier_threshold"],
                condition=Q(source="tier", adjusts__isnull=True),
                name="reward_unique_tier",
            ),
            models.UniqueConstraint(
                fields=["participant"],
                condition=Q(source="referee", adjusts__isnull=True),
                name="reward_unique_referee",
            ),
            models.UniqueConstraint(
                fields=["purchase", "level"],
                condition=Q(source="commission", adjusts__isnull=True),
                name="reward_unique_commission",
            ),
            models.UniqueConstraint(
                fields=["adjusts", "conversion"],
                condition=Q(adjusts__isnull=False),
                name="reward_unique_adjustment",
            ),
            models.CheckConstraint(
                condition=Q(source__in=RewardSource.values), name="reward_source_valid"
            ),
            models.CheckConstraint(
                condition=Q(state__in=RewardState.values), name="reward_state_valid"
            ),
            models.CheckConstraint(
                condition=Q(reason__in=RewardReason.values), name="reward_reason_valid"
            ),
            models.CheckConstraint(
                condition=(
                    Q(source="commission")
                    & Q(level__gte=1)
                    & Q(level__lte=MAX_COMMISSION_LEVELS)
                    & Q(percent__gt=0)
                    & Q(percent__lte=100)
                    & Q(purchase__isnull=False)
                )
                | (~Q(source="commission") & Q(level__isnull=True) & Q(percent__isnull=True)),
                name="reward_commission_has_level",
            ),
            models.CheckConstraint(
                condition=Q(source="tier", tier_threshold__gte=1)
                | (~Q(source="tier") & Q(tier_threshold__isnull=True)),
                name="reward_tier_has_threshold",
            ),
            models.CheckConstraint(
                condition=~Q(adjusts__isnull=True) | Q(amount__gte=0),
                name="reward_grant_not_negative",
            ),
            models.CheckConstraint(
                condition=~Q(state="held") | Q(due_at__isnull=False), name="reward_held_has_due"
            ),
            models.CheckConstraint(
                condition=~Q(state="paid") | Q(paid_at__isnull=False), name="reward_paid_has_date"
            ),
            # A batched entry is committed: the money is on its way, so nothing may reverse
            # or reject it in place (the ledger corrects it with a new entry instead).
            models.CheckConstraint(
                condition=Q(payout_batch__isnull=True) | Q(state__in=["approved", "paid"]),
                name="reward_batched_approved_or_paid",
            ),
        ]
        indexes = [
            # The release job: held rewards whose holding period is over.
            models.Index(fields=["due_at"], condition=Q(state="held"), name="reward_held_due"),
            # GET /rewards/?campaign=&state=&updated_since= and the campaign's totals.
            models.Index(fields=["campaign", "state", "updated_at"], name="reward_campaign_state"),
            models.Index(fields=["campaign", "updated_at"], name="reward_campaign_updated"),
            # The review queue.
            models.Index(fields=["state"], condition=Q(state="pending"), name="reward_pending"),
            # Making a payout batch: approved entries in a currency not in a batch yet, and a
            # participant's owed-back entries to net (apps/rewards/payouts.py).
            models.Index(
                fields=["currency", "participant"],
                condition=Q(state="approved", payout_batch__isnull=True),
                name="reward_payable",
            ),
        ]

    def __str__(self) -> str:
        amount = format_amount(self.amount, self.currency)
        return f"#{self.pk} {self.source} {amount} {self.currency} ({self.state})"

    @property
    def is_grant(self) -> bool:
        return self.adjusts_id is None

    @property
    def is_committed(self) -> bool:
        """Paid, or approved in a payout batch: the ledger never takes it back in place."""
        return self.state == RewardState.PAID or self.payout_batch_id is not None


class RewardTransition(models.Model):
    """One change of a reward's state, with who or what made it. Append-only: on
    PostgreSQL a trigger refuses UPDATE and DELETE (migration 0002)."""

    id = models.BigAutoField(primary_key=True)
    reward = models.ForeignKey(Reward, on_delete=models.PROTECT, related_name="transitions")
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="+")
    from_state = models.CharField(max_length=10, choices=RewardState.choices, blank=True)
    to_state = models.CharField(max_length=10, choices=RewardState.choices)
    actor = models.CharField(
        max_length=150, help_text=_("engine, release job, an operator or an API key.")
    )
    reason = models.CharField(max_length=300, blank=True)
    conversion = models.ForeignKey(
        Conversion, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(to_state__in=RewardState.values), name="transition_state_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.from_state or '∅'} → {self.to_state}"


class RewardReview(Reward):
    """The review queue in the admin: pending rewards and unpaid rewards of flagged
    or blocked participants."""

    class Meta:
        proxy = True
        verbose_name = _("reward to review")
        verbose_name_plural = _("review queue")


class PayoutStatus(models.TextChoices):
    OPEN = "open", _("Open: to pay")
    PAID = "paid", _("Paid")
    CANCELLED = "cancelled", _("Cancelled")


class PayoutBatch(models.Model):
    """Approved entries in one currency that finance pays together (each entry points at
    its batch, so it is in at most one). Made open, exported, then marked paid with the
    bank's reference, once; cancelling an open batch releases its entries. A participant's
    entries are netted: owed-back (negative) entries reduce what the batch pays them, and
    a participant who would get less than nothing is left out (carried forward). See
    apps/rewards/payouts.py."""

    Status = PayoutStatus

    id = models.BigAutoField(primary_key=True)
    currency = models.CharField(max_length=3)
    campaign = models.ForeignKey(
        Campaign,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("The campaign chosen when the batch was made; empty for all campaigns."),
    )
    approved_from = models.DateField(null=True, blank=True)
    approved_to = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    total = _amount(
        verbose_name=_("total"), default=0, help_text=_("What the batch pays: its entries, netted.")
    )
    line_count = models.PositiveIntegerField(_("entries"), default=0)
    payee_count = models.PositiveIntegerField(_("payees"), default=0)
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(default=timezone.now)
    reference = models.CharField(
        max_length=100, blank=True, help_text=_("The bank's or payment provider's reference.")
    )
    paid_by = models.CharField(max_length=150, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.CharField(max_length=150, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("payout batch")
        verbose_name_plural = _("payout batches")
        permissions = [("pay_payoutbatch", "Can mark payout batches paid")]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=PayoutStatus.values), name="payout_status_valid"
            ),
            models.CheckConstraint(condition=Q(total__gte=0), name="payout_total_not_negative"),
            models.CheckConstraint(
                condition=~Q(status="paid") | (~Q(reference="") & Q(paid_at__isnull=False)),
                name="payout_paid_has_reference",
            ),
            models.CheckConstraint(
                condition=~Q(status="cancelled") | Q(cancelled_at__isnull=False),
                name="payout_cancelled_has_date",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {format_amount(self.total, self.currency)} {self.currency}"


class FinanceAction(models.TextChoices):
    REPORT_EXPORTED = "report_exported", _("Reward report exported")
    EXPORT_REQUESTED = "export_requested", _("Reward report requested (background)")
    EXPORT_DOWNLOADED = "export_downloaded", _("Export file downloaded")
    EXPORT_EXPIRED = "export_expired", _("Export file deleted after its retention")
    RECONCILIATION_EXPORTED = "reconciliation_exported", _("Reconciliation exported")
    BATCH_CREATED = "batch_created", _("Payout batch made")
    BATCH_EXPORTED = "batch_exported", _("Payout batch exported")
    BATCH_PAID = "batch_paid", _("Payout batch marked paid")
    BATCH_CANCELLED = "batch_cancelled", _("Payout batch cancelled")


class FinanceLog(models.Model):
    """Who exported or paid what, and when. Append-only: on PostgreSQL a trigger refuses
    UPDATE and DELETE (migration 0004)."""

    Action = FinanceAction

    id = models.BigAutoField(primary_key=True)
    action = models.CharField(max_length=30, choices=Action.choices)
    actor = models.CharField(
        max_length=150, help_text=_("admin:<user>, cli:<system user>, or a job for a user.")
    )
    batch = models.ForeignKey(
        PayoutBatch, on_delete=models.PROTECT, null=True, blank=True, related_name="log"
    )
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("finance log entry")
        verbose_name_plural = _("finance log")
        constraints = [
            models.CheckConstraint(
                condition=Q(action__in=FinanceAction.values), name="financelog_action_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor}: {self.action}"
