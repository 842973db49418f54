"""Payout batches and the finance log: what finance pays together, and who exported or
paid what."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.campaigns.models import Campaign
from apps.common.money import format_amount

from .fields import amount_field


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
    total = amount_field(
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
