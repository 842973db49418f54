from __future__ import annotations

import hashlib

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


def hash_key(key: str) -> str:
    # The key carries 192 random bits, so a plain SHA-256 cannot be brute-forced and
    # lets authentication be one indexed lookup.
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKey(models.Model):
    """A host application's key. Only its hash is stored; the key is shown once."""

    name = models.CharField(max_length=100, help_text=_("Who uses this key, e.g. 'shop backend'."))
    prefix = models.CharField(max_length=12, editable=False, help_text=_("To recognise a key."))
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Optional: when set, events from this key must carry a Standard Webhooks signature
    # made with it (or, while the host rotates, with the previous one).
    signing_secret = models.CharField(
        max_length=100,
        blank=True,
        editable=False,
        help_text=_("When set, events must be signed with it (Standard Webhooks)."),
    )
    previous_signing_secret = models.CharField(
        max_length=100,
        blank=True,
        editable=False,
        help_text=_("Still accepted while the host switches to the new secret."),
    )

    class Meta:
        verbose_name = _("API key")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class WebhookEvent(models.TextChoices):
    REWARD_GRANTED = "reward.granted", _("Reward granted")
    REWARD_APPROVED = "reward.approved", _("Reward approved")
    REWARD_REVERSED = "reward.reversed", _("Reward reversed")


class WebhookEndpoint(models.Model):
    """A URL of the host application that receives signed webhooks (Standard Webhooks)."""

    url = models.URLField(max_length=500, help_text=_("Where the events are POSTed (https)."))
    description = models.CharField(max_length=200, blank=True)
    campaign = models.ForeignKey(
        "campaigns.Campaign",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("Only this campaign's events. Empty: every campaign."),
    )
    events = models.JSONField(
        default=list,
        blank=True,
        help_text=_(
            'Event types to send, e.g. ["reward.granted"]. Empty: all of '
            "reward.granted, reward.approved and reward.reversed."
        ),
    )
    secret = models.CharField(
        max_length=100, editable=False, help_text=_("Signing secret (whsec_…).")
    )
    previous_secret = models.CharField(
        max_length=100,
        blank=True,
        editable=False,
        help_text=_("While rotating, webhooks are signed with both secrets."),
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("webhook endpoint")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.url

    def wants(self, event_type: str) -> bool:
        return not self.events or event_type in self.events


class WebhookDeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    DELIVERED = "delivered", _("Delivered")
    FAILED = "failed", _("Failed")


class WebhookDelivery(models.Model):
    """One event for one endpoint. Written in the transaction that caused the event (an
    outbox), so no event is lost when the broker is down: the sweep task sends it later."""

    Status = WebhookDeliveryStatus

    id = models.BigAutoField(primary_key=True)
    # No index of its own: webhook_delivery_unique_event starts with it (docs/indexes.md).
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    campaign = models.ForeignKey("campaigns.Campaign", on_delete=models.CASCADE, related_name="+")
    event_id = models.CharField(
        max_length=64, help_text=_("The webhook-id header: the same on every retry.")
    )
    event_type = models.CharField(max_length=32, choices=WebhookEvent.choices)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)

    class Meta:
        verbose_name_plural = _("webhook deliveries")
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "event_id"], name="webhook_delivery_unique_event"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=WebhookDeliveryStatus.values),
                name="webhook_delivery_status_valid",
            ),
        ]
        indexes = [
            # The sweep: pending deliveries that are due.
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status="pending"),
                name="webhook_delivery_due",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} → {self.endpoint_id}"


class WebhookAttempt(models.Model):
    """One try at sending a delivery: its answer, or the network error."""

    id = models.BigAutoField(primary_key=True)
    # No index of its own: webhook_attempt_unique_number starts with it (docs/indexes.md).
    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log", db_index=False
    )
    number = models.PositiveSmallIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    response_body = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["number"]
        constraints = [
            models.UniqueConstraint(
                fields=["delivery", "number"], name="webhook_attempt_unique_number"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.number}: {self.status_code or self.error}"
