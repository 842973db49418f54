"""Rewards: the ledger of what is owed, and each entry's history of states."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.campaigns.models import MAX_COMMISSION_LEVELS, Campaign
from apps.common.money import format_amount
from apps.referrals.models import Participant

from .conversions import Conversion
from .fields import amount_field


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
    amount = amount_field()
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
