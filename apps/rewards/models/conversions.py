"""Conversions: the host's events (and joins and review decisions), kept as received,
and the idempotency keys that make a retried request answer as the first did."""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.api.models import ApiKey
from apps.campaigns.models import Campaign
from apps.referrals.models import Participant

from .fields import amount_field


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
    amount = amount_field(null=True, blank=True)
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
    applied_amount = amount_field(
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
