"""Trust: the fraud rules' settings and allowlist, the consent texts people agreed to,
data-subject requests (exports, erasures) and the click log's retention."""

from __future__ import annotations

import ipaddress

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.campaigns.models import Campaign
from apps.common.emails import ascii_domain
from apps.referrals.models import Participant


class FraudRule(models.TextChoices):
    """The rules; each value is also the reason code of the flags it writes."""

    SELF_REFERRAL = "self_referral", _("Self-referral")
    DISPOSABLE_EMAIL = "disposable_email", _("Disposable email address")
    IP_BURST = "ip_burst", _("Many joins from one address")
    NETWORK_BURST = "network_burst", _("Many joins from one network")
    REFERRAL_VELOCITY = "referral_velocity", _("Friends joining faster than people can")
    DEAD_REFERRALS = "dead_referrals", _("Invited friends who never come back")


class RuleAction(models.TextChoices):
    OFF = "off", _("Off")
    FLAG = "flag", _("Flag for review")
    BLOCK = "block", _("Block")


class FraudRuleSetting(models.Model):
    """One campaign's setting for one rule. A rule without a row runs with its defaults:
    flag for review, the default threshold and window (see apps/trust/rules.py)."""

    Rule = FraudRule
    Action = RuleAction

    # No index of its own: fraudrule_unique starts with it (docs/indexes.md).
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="fraud_rules", db_index=False
    )
    rule = models.CharField(max_length=20, choices=Rule.choices)
    action = models.CharField(
        max_length=5,
        choices=Action.choices,
        default=Action.FLAG,
        help_text=_(
            "Flag: the person joins, but their referral does not count and their rewards "
            "wait for review. Block: the join is refused (and kept, so you can review it)."
        ),
    )
    threshold = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=_(
            "Bursts: the join that makes this many from one address or network in the "
            "window. Velocity: the friend that makes this many for one inviter in the "
            "window. Friends who never come back: at least this many. Empty: the default."
        ),
    )
    window = models.DurationField(
        null=True,
        blank=True,
        help_text=_(
            "Bursts and velocity: the time span, e.g. 00:10:00 for ten minutes. Friends "
            "who never come back: how long after joining, e.g. 30 00:00:00 for 30 days. "
            "Empty: the default."
        ),
    )
    min_share = models.DecimalField(
        max_digits=3,
        decimal_places=2,
        null=True,
        blank=True,
        help_text=_(
            "Friends who never come back: the share of an inviter's friends, from 0 to 1 "
            "(0.80 = 80 %). Empty: the default."
        ),
    )

    class Meta:
        verbose_name = _("fraud rule")
        verbose_name_plural = _("fraud rules")
        ordering = ["campaign", "rule"]
        constraints = [
            # One setting per rule and campaign; its index serves the join's read of a
            # campaign's settings.
            models.UniqueConstraint(fields=["campaign", "rule"], name="fraudrule_unique"),
            models.CheckConstraint(
                condition=Q(rule__in=FraudRule.values), name="fraudrule_rule_valid"
            ),
            models.CheckConstraint(
                condition=Q(action__in=RuleAction.values), name="fraudrule_action_valid"
            ),
            models.CheckConstraint(
                condition=Q(threshold__isnull=True) | Q(threshold__gte=1),
                name="fraudrule_threshold_positive",
            ),
            models.CheckConstraint(
                condition=Q(min_share__isnull=True) | Q(min_share__gte=0, min_share__lte=1),
                name="fraudrule_share_in_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_rule_display()}: {self.get_action_display()}"


class AllowlistKind(models.TextChoices):
    NETWORK = "network", _("IP network")
    DOMAIN = "domain", _("Email domain")


class AllowlistEntry(models.Model):
    """An office or a household whose joins the shared-signal rules leave alone: an IP
    network (many people behind one address) or an email domain (a company's)."""

    Kind = AllowlistKind

    # No index of its own: allowlist_unique_per_campaign starts with it (docs/indexes.md).
    campaign = models.ForeignKey(
        Campaign,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="allowlist",
        help_text=_("Empty: every campaign."),
        db_index=False,
    )
    kind = models.CharField(max_length=7, choices=Kind.choices)
    value = models.CharField(
        max_length=255,
        help_text=_(
            "An IP network such as 203.0.113.0/24 or 2001:db8::/48 (a single address is "
            "fine), or an email domain such as example.com (its subdomains included)."
        ),
    )
    note = models.CharField(max_length=200, blank=True, help_text=_("Whose it is, and why."))
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("allowlist entry")
        verbose_name_plural = _("allowlist")
        ordering = ["kind", "value"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "kind", "value"], name="allowlist_unique_per_campaign"
            ),
            models.UniqueConstraint(
                fields=["kind", "value"],
                condition=Q(campaign__isnull=True),
                name="allowlist_unique_global",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=AllowlistKind.values), name="allowlist_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.value

    def clean(self) -> None:
        """Store the value in its canonical form, or say what is wrong with it."""
        value = self.value.strip()
        if self.kind == AllowlistKind.NETWORK:
            try:
                self.value = str(ipaddress.ip_network(value, strict=False))
            except ValueError:
                raise ValidationError(
                    {"value": _("Enter an IP address or network, such as 203.0.113.0/24.")}
                ) from None
        elif self.kind == AllowlistKind.DOMAIN:
            try:
                self.value = ascii_domain(value.lstrip("@").lstrip("*."))
            except ValueError:
                raise ValidationError(
                    {"value": _("Enter a domain name, such as example.com.")}
                ) from None
            if "." not in self.value:
                raise ValidationError({"value": _("Enter a domain name, such as example.com.")})


class ConsentText(models.Model):
    """The exact words a person agreed to when joining, per version and language.

    A participant's consent points here by (consent_version, language): both are stored
    on the participant at joining. Rows are written by the join itself the first time a
    wording is shown, and never changed: new words get a new version.
    """

    version = models.CharField(max_length=32)
    language = models.CharField(max_length=10)
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("consent text")
        verbose_name_plural = _("consent texts")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["version", "language"], name="consent_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.version} ({self.language})"


class DataExportRequest(models.Model):
    """A person asked, on their personal page, for their data by email. The task that
    sends it claims the row (sent_at) first, so a retried task sends it once; the rows
    also bound how often one person can ask."""

    id = models.BigAutoField(primary_key=True)
    # No index of its own: export_participant_time starts with it (docs/indexes.md).
    participant = models.ForeignKey(
        Participant, on_delete=models.CASCADE, related_name="+", editable=False, db_index=False
    )
    requested_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("data export request")
        verbose_name_plural = _("data export requests")
        ordering = ["-requested_at"]
        indexes = [
            # The rate limit: a participant's requests of the last day.
            models.Index(fields=["participant", "requested_at"], name="export_participant_time"),
        ]

    def __str__(self) -> str:
        return f"export {self.pk} for {self.participant_id}"


class ErasureLog(models.Model):
    """That a participant's personal data was erased, when and by whom; nothing about
    the person (their row keeps only its place in the tree and the books)."""

    id = models.BigAutoField(primary_key=True)
    participant = models.OneToOneField(
        Participant, on_delete=models.PROTECT, related_name="+", editable=False
    )
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="+")
    erased_at = models.DateTimeField(default=timezone.now)
    actor = models.CharField(max_length=150, help_text=_("Who asked: an operator or a command."))
    clicks_scrubbed = models.PositiveIntegerField(
        default=0, help_text=_("Visits from the person's browser whose identifiers were erased.")
    )

    class Meta:
        verbose_name = _("erasure")
        verbose_name_plural = _("erasure log")
        ordering = ["-erased_at"]

    def __str__(self) -> str:
        return f"participant {self.participant_id} erased {self.erased_at:%Y-%m-%d}"


class ClickRetention(models.Model):
    """How far a campaign's click log has been rolled up and purged.

    Every local day up to `frozen_through` has its daily snapshot row (visitors that day,
    over 7 days), and those figures are final: the clicks of those days may be, or have
    been, deleted, so analytics reads their visitors from the snapshots, and a rebuild of
    the snapshots leaves them as they are.
    """

    campaign = models.OneToOneField(
        Campaign, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    frozen_through = models.DateField()
    clicks_deleted = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("click retention")
        verbose_name_plural = _("click retention")

    def __str__(self) -> str:
        return f"{self.campaign_id} through {self.frozen_through}"
