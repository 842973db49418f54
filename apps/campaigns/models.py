from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.common.money import AMOUNT_DECIMAL_PLACES, AMOUNT_MAX_DIGITS

MAX_COMMISSION_LEVELS = 3  # deeper schemes are pyramid selling in many jurisdictions


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    ACTIVE = "active", _("Active")
    PAUSED = "paused", _("Paused")
    ENDED = "ended", _("Ended")


class QualifyingEvent(models.TextChoices):
    SIGNUP = "signup", _("Sign-up")
    VERIFIED_SIGNUP = "verified_signup", _("Verified sign-up")
    PURCHASE = "purchase", _("Purchase")


class Campaign(models.Model):
    Status = CampaignStatus
    QualifyingEvent = QualifyingEvent

    slug = models.SlugField(
        max_length=50, unique=True, help_text=_("Short name used in links: /c/<slug>/")
    )
    name = models.CharField(_("name"), max_length=200)
    status = models.CharField(
        max_length=10,
        choices=Status.choices,
        default=Status.DRAFT,
        help_text=_("Only active campaigns take new participants."),
    )
    starts_at = models.DateTimeField(
        null=True, blank=True, help_text=_("Empty: open as soon as it is active.")
    )
    ends_at = models.DateTimeField(
        null=True, blank=True, help_text=_("Empty: open until ended by hand.")
    )
    qualifying_event = models.CharField(
        max_length=20,
        choices=QualifyingEvent.choices,
        default=QualifyingEvent.SIGNUP,
        help_text=_("What an invited friend must do for the referral to count."),
    )
    min_purchase_amount = models.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS,
        decimal_places=AMOUNT_DECIMAL_PLACES,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0))],
        help_text=_("For purchase campaigns: the smallest purchase that qualifies."),
    )
    currency = models.CharField(
        max_length=3,
        default="CNY",
        help_text=_("ISO 4217 code of the minimum purchase and the budget caps."),
    )
    attribution_window_days = models.PositiveSmallIntegerField(
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(365)],
        help_text=_("How long after clicking a link a join still counts for the inviter."),
    )
    holding_days = models.PositiveSmallIntegerField(
        default=14,
        validators=[MaxValueValidator(365)],
        help_text=_("Rewards wait this long (for refunds) before they are approved."),
    )
    budget_cap = models.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS,
        decimal_places=AMOUNT_DECIMAL_PLACES,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0))],
        help_text=_("Stop granting rewards once this much has been granted. Empty: no cap."),
    )
    per_referrer_cap = models.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS,
        decimal_places=AMOUNT_DECIMAL_PLACES,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0))],
        help_text=_("The most one participant can earn. Empty: no cap."),
    )
    k_alert_threshold = models.DecimalField(
        max_digits=6,
        decimal_places=3,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0))],
        help_text=_("Alert when the 7-day K-factor falls below this. Empty: no alert."),
    )
    k_alert_drop_fraction = models.DecimalField(
        max_digits=4,
        decimal_places=3,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(Decimal("0.99"))],
        help_text=_(
            "Alert when the 7-day K-factor falls by more than this fraction from the week "
            "before (0.3: it fell by 30 percent). Empty: no alert."
        ),
    )
    leaderboard_public = models.BooleanField(
        default=False,
        help_text=_(
            "Show a public leaderboard of the top referrers at /c/<slug>/leaderboard/ "
            "(first names and initials only)."
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__isnull=True)
                | Q(starts_at__isnull=True)
                | Q(ends_at__gt=F("starts_at")),
                name="campaign_ends_after_start",
            ),
            models.CheckConstraint(
                condition=Q(attribution_window_days__gte=1) & Q(attribution_window_days__lte=365),
                name="campaign_attribution_window_range",
            ),
            models.CheckConstraint(
                condition=Q(holding_days__lte=365), name="campaign_holding_days_range"
            ),
            models.CheckConstraint(
                condition=Q(status__in=CampaignStatus.values), name="campaign_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(qualifying_event__in=QualifyingEvent.values),
                name="campaign_qualifying_event_valid",
            ),
            models.CheckConstraint(
                condition=Q(k_alert_drop_fraction__isnull=True)
                | Q(k_alert_drop_fraction__gt=0, k_alert_drop_fraction__lt=1),
                name="campaign_k_alert_drop_fraction_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def is_open(self, at: datetime | None = None) -> bool:
        """Whether the campaign takes joins now (or at `at`)."""
        at = at or timezone.now()
        return (
            self.status == self.Status.ACTIVE
            and (self.starts_at is None or self.starts_at <= at)
            and (self.ends_at is None or at < self.ends_at)
        )

    def closed_reason(self, at: datetime | None = None) -> str:
        """Why the campaign does not take joins: draft, paused, ended, not_started; '' if open."""
        at = at or timezone.now()
        if self.status != self.Status.ACTIVE:
            return str(self.status)
        if self.starts_at is not None and at < self.starts_at:
            return "not_started"
        if self.ends_at is not None and at >= self.ends_at:
            return "ended"
        return ""

    def landing_copy(self, language: str | None = None) -> LandingCopy | None:
        """The copy in `language`, else in the site's language, else any."""
        copies = {c.language: c for c in self.landing_copies.all()}
        for lang in (language, settings.LANGUAGE_CODE):
            if lang in copies:
                return copies[lang]
        return next(iter(copies.values()), None)


class RewardKind(models.TextChoices):
    COUPON = "coupon", _("Coupon")
    POINTS = "points", _("Points")
    CASH = "cash", _("Cash")
    MEMBERSHIP = "membership", _("Membership")
    CUSTOM = "custom", _("Custom")


class RewardSpec(models.Model):
    """What a reward is: shared by tiers and the referee reward."""

    kind = models.CharField(max_length=12, choices=RewardKind.choices, default=RewardKind.COUPON)
    amount = models.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS,
        decimal_places=AMOUNT_DECIMAL_PLACES,
        default=Decimal(0),
        validators=[MinValueValidator(Decimal(0))],
        help_text=_("Value of the reward (0 for rewards without a money value)."),
    )
    currency = models.CharField(max_length=3, default="CNY", help_text=_("ISO 4217 code."))
    description = models.CharField(
        max_length=500, blank=True, help_text=_("Shown to participants, e.g. '50 CNY coupon'.")
    )

    class Meta:
        abstract = True


class RewardTier(RewardSpec):
    # No index of its own: tier_unique_threshold starts with it (docs/indexes.md).
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="tiers", db_index=False
    )
    threshold = models.PositiveIntegerField(
        validators=[MinValueValidator(1)],
        help_text=_("Qualified friends a participant must bring to unlock this reward."),
    )

    class Meta:
        ordering = ["campaign", "threshold"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "threshold"], name="tier_unique_threshold"),
            models.CheckConstraint(condition=Q(threshold__gte=1), name="tier_threshold_positive"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="tier_amount_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.threshold}: {self.description or self.kind}"


class RefereeReward(RewardSpec):
    """Double-sided campaigns: what the invited friend gets on qualifying."""

    campaign = models.OneToOneField(
        Campaign, on_delete=models.CASCADE, related_name="referee_reward"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="referee_amount_not_negative"),
        ]

    def __str__(self) -> str:
        return self.description or str(self.kind)


class CommissionLevel(models.Model):
    """Purchase campaigns: a percentage of each purchase to the referrer (level 1) and,
    optionally, to the two participants above them."""

    # No index of its own: commission_unique_level starts with it (docs/indexes.md).
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="commission_levels", db_index=False
    )
    level = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(MAX_COMMISSION_LEVELS)]
    )
    percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(Decimal(100))],
    )

    class Meta:
        ordering = ["campaign", "level"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "level"], name="commission_unique_level"),
            models.CheckConstraint(
                condition=Q(level__gte=1) & Q(level__lte=MAX_COMMISSION_LEVELS),
                name="commission_level_range",
            ),
            models.CheckConstraint(
                condition=Q(percent__gt=0) & Q(percent__lte=100),
                name="commission_percent_range",
            ),
        ]

    def __str__(self) -> str:
        return f"L{self.level}: {self.percent}%"


class LandingCopy(models.Model):
    """The operator's words on the landing page, per language, shown as written."""

    # No index of its own: landing_copy_unique_language starts with it (docs/indexes.md).
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="landing_copies", db_index=False
    )
    language = models.CharField(max_length=10, choices=settings.LANGUAGES)
    headline = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    reward_text = models.CharField(
        max_length=300,
        blank=True,
        help_text=_("The offer in one line, e.g. 'You both get 20 CNY'."),
    )

    class Meta:
        verbose_name_plural = _("landing copies")
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "language"], name="landing_copy_unique_language"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.campaign.slug} [{self.language}]"
