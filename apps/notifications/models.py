"""Messages to participants: the operator's texts per campaign, and the log of what was sent.

Every message is one `Message` row, unique per (participant, kind, cause): the row is
written in the same transaction as what caused it (an outbox), and a worker claims it
(queued → sending) with a conditional UPDATE before it hands the email over. So a task
that runs twice, or two workers at once, send it once; a rolled-back cause sends nothing.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.campaigns.models import Campaign
from apps.referrals.models import Participant
from apps.rewards.models import Reward


class MessageKind(models.TextChoices):
    VERIFY = "verify", _("Email verification")
    WELCOME = "welcome", _("Welcome")
    FRIEND_JOINED = "friend_joined", _("A friend joined")
    FRIEND_QUALIFIED = "friend_qualified", _("A friend qualified")
    REWARD_UNLOCKED = "reward_unlocked", _("Reward unlocked")
    REWARD_APPROVED = "reward_approved", _("Reward approved")
    ONE_AWAY = "one_away", _("Next tier one friend away")


class MessageStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")
    SKIPPED = "skipped", _("Not sent")


class CampaignMessage(models.Model):
    """One kind of message in one campaign: on or off, and the operator's texts.

    Without a row, a kind is on and uses the default texts; a language without a text
    uses the default text of that language.
    """

    Kind = MessageKind

    # No index of its own: campaign_message_unique starts with it (docs/indexes.md).
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    enabled = models.BooleanField(
        _("send"),
        default=True,
        help_text=_("Untick to stop sending this message in this campaign."),
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("campaign message")
        verbose_name_plural = _("campaign messages")
        ordering = ["campaign", "kind"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "kind"], name="campaign_message_unique"),
            models.CheckConstraint(
                condition=Q(kind__in=MessageKind.values), name="campaign_message_kind_valid"
            ),
            # Without it nobody who joins on the web could qualify in a verified-sign-up
            # campaign; its words can still be changed.
            models.CheckConstraint(
                condition=~Q(kind="verify") | Q(enabled=True),
                name="campaign_message_verify_always_on",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.campaign} · {self.get_kind_display()}"

    def clean(self) -> None:
        if self.kind == MessageKind.VERIFY and not self.enabled:
            raise ValidationError(
                {
                    "enabled": _(
                        "The verification email cannot be switched off: without it, people "
                        "who join on the web cannot confirm their address. Change its words "
                        "instead."
                    )
                }
            )


class MessageText(models.Model):
    """The operator's subject and body of a message in one language.

    Placeholders in braces ({name}, {invite_link}, …) are filled in when the message is
    sent; which ones a kind may use is checked when the text is saved (texts.validate).
    """

    # No index of its own: message_text_unique_language starts with it (docs/indexes.md).
    message = models.ForeignKey(
        CampaignMessage, on_delete=models.CASCADE, related_name="texts", db_index=False
    )
    language = models.CharField(max_length=10, choices=settings.LANGUAGES)
    subject = models.CharField(max_length=200)
    body = models.TextField(
        help_text=_(
            "Plain text; a blank line starts a new paragraph and links become clickable in "
            "the HTML part. Write {{ and }} for a brace itself."
        )
    )

    class Meta:
        verbose_name = _("text")
        verbose_name_plural = _("texts")
        ordering = ["language"]
        constraints = [
            models.UniqueConstraint(
                fields=["message", "language"], name="message_text_unique_language"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.message} [{self.language}]"

    def clean(self) -> None:
        from .texts import validate  # texts reads MessageKind from this module

        if self.message_id is not None:
            validate(kind=self.message.kind, subject=self.subject, body=self.body)


class Message(models.Model):
    """One message to one participant for one cause, and what became of it.

    The body is not kept: it holds the key to the personal page and, for a
    verification, a link that confirms the address. The preview shows the words.
    """

    Kind = MessageKind
    Status = MessageStatus

    id = models.BigAutoField(primary_key=True)
    # No index of its own: message_campaign_created starts with it (docs/indexes.md).
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    # No index of its own: message_unique_cause starts with it (docs/indexes.md).
    participant = models.ForeignKey(
        Participant, on_delete=models.CASCADE, related_name="messages_received", db_index=False
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    cause = models.CharField(
        max_length=64, help_text=_("What the message is about: join, friend:<id>, reward:<id>…")
    )
    friend = models.ForeignKey(
        Participant,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("The friend the message is about."),
    )
    reward = models.ForeignKey(
        Reward,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("The reward the message is about."),
    )
    tier_threshold = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    language = models.CharField(max_length=10, blank=True)
    subject = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True, help_text=_("The delivery error, or why it was not sent."))
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("message sent")
        verbose_name_plural = _("message log")
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["participant", "kind", "cause"], name="message_unique_cause"
            ),
            models.CheckConstraint(condition=Q(kind__in=MessageKind.values), name="message_kind"),
            models.CheckConstraint(
                condition=Q(status__in=MessageStatus.values), name="message_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status="sent") | Q(sent_at__isnull=False), name="message_sent_has_date"
            ),
        ]
        indexes = [
            # The sweep: queued messages whose (re)try is due.
            models.Index(
                fields=["next_attempt_at"], condition=Q(status="queued"), name="message_due"
            ),
            # The log of a campaign, newest first.
            models.Index(fields=["campaign", "created_at"], name="message_campaign_created"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.participant_id} ({self.status})"
