from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.campaigns.models import Campaign


class DailySnapshot(models.Model):
    """One campaign's figures for one local day, written by the nightly snapshot task.

    The daily series (joins, referred joins, visitors) draws the dashboard's charts
    without touching the participant and click tables; the newest row of each run also
    keeps the whole K-factor report as of that day (`report`, the Stats JSON) and the
    dashboard's extra tables (`extras`: channels, and top referrers by id only, so that
    no name is copied here and erasing a participant erases it everywhere).
    """

    # No index of its own: snapshot_unique_day starts with it (docs/indexes.md).
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    date = models.DateField(help_text=_("Local day (the site's time zone)."))
    joined = models.PositiveIntegerField(default=0)
    referred = models.PositiveIntegerField(default=0)
    visitors = models.PositiveIntegerField(
        default=0, help_text=_("Distinct visitors through invite links that day, bots excluded.")
    )
    visitors_7d = models.PositiveIntegerField(
        default=0, help_text=_("Distinct visitors over the 7 days ending that day.")
    )
    report = models.JSONField(null=True, blank=True)
    extras = models.JSONField(null=True, blank=True)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["campaign", "date"]
        constraints = [
            # One row per campaign and day: the upsert of a re-run targets it. Its index
            # also serves the dashboard's reads (a campaign's last 90 days, its newest
            # report).
            models.UniqueConstraint(fields=["campaign", "date"], name="snapshot_unique_day"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id} {self.date}"


class KAlertReason(models.TextChoices):
    THRESHOLD = "threshold", _("below the threshold")
    DROP = "drop", _("dropped week over week")


class KAlertFactor(models.TextChoices):
    INVITE = "i", _("invite rate (i)")
    CONVERSION = "c", _("conversion (c)")
    UNKNOWN = "", _("unknown (no earlier week to compare)")


class KAlert(models.Model):
    """One K-drop episode of a campaign: opened by the first check that sees the 7-day K
    low, kept (no new email) while it stays low, resolved when it recovers. A later drop
    opens a new episode."""

    Reason = KAlertReason
    Factor = KAlertFactor

    # No index of its own: kalert_unique_episode starts with it (docs/indexes.md).
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="k_alerts", db_index=False
    )
    started_on = models.DateField(help_text=_("Last day of the 7-day window that showed the drop."))
    reason = models.CharField(max_length=10, choices=Reason.choices)
    factor = models.CharField(
        max_length=1, choices=Factor.choices, blank=True, help_text=_("Which of i or c fell.")
    )
    k = models.FloatField(help_text=_("7-day K when the alert opened."))
    i = models.FloatField()
    c = models.FloatField()
    previous_k = models.FloatField(null=True, blank=True, help_text=_("The week before."))
    previous_i = models.FloatField(null=True, blank=True)
    previous_c = models.FloatField(null=True, blank=True)
    threshold = models.DecimalField(max_digits=6, decimal_places=3, null=True, blank=True)
    drop_fraction = models.DecimalField(max_digits=4, decimal_places=3, null=True, blank=True)
    last_checked_on = models.DateField()
    last_k = models.FloatField(help_text=_("7-day K at the latest check."))
    created_at = models.DateTimeField(default=timezone.now)
    emailed_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_k = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-started_on"]
        permissions = [("receive_k_alerts", "Can receive K-factor alert emails")]
        constraints = [
            # One alert per episode: a check run twice on the same day cannot open two.
            models.UniqueConstraint(
                fields=["campaign", "started_on"], name="kalert_unique_episode"
            ),
            # At most one open episode per campaign: one alert per drop, not one a day.
            # Its partial index also serves "the open alert of this campaign" (checks,
            # banners).
            models.UniqueConstraint(
                fields=["campaign"],
                condition=Q(resolved_at__isnull=True),
                name="kalert_one_open_per_campaign",
            ),
            models.CheckConstraint(
                condition=Q(reason__in=KAlertReason.values), name="kalert_reason_valid"
            ),
            models.CheckConstraint(
                condition=Q(factor__in=KAlertFactor.values), name="kalert_factor_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"K alert {self.campaign_id} {self.started_on}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


# --- Report tallies -----------------------------------------------------------------------
# What the K-factor report needs of the append-only tables (participants never leave the
# tree and their joining times never change; clicks are only added), folded up by the
# periodic roll-up (apps.analytics.rollup) so that a report reads a few hundred tally rows
# plus the rows added since, instead of every participant and click of the campaign.


class ReportRollup(models.Model):
    """How far the roll-up has read each source table: every row with an id at or below
    `watermark` is in the tallies; the rows above it are counted live. Local days are
    those of `time_zone` (a change of TIME_ZONE starts the tallies again)."""

    class Source(models.IntegerChoices):
        PARTICIPANTS = 1, _("Participants")
        CLICKS = 2, _("Clicks")

    source = models.PositiveSmallIntegerField(choices=Source.choices, primary_key=True)
    watermark = models.BigIntegerField(default=0)
    time_zone = models.CharField(max_length=64, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.get_source_display()} rolled up to {self.watermark}"


class JoinTally(models.Model):
    """Participants who joined on a local day at a depth of the tree, and how many of
    them have a referrer: the report's totals, generations and cohort sizes."""

    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    day = models.DateField()
    depth = models.PositiveIntegerField()
    joined = models.PositiveIntegerField(default=0)
    referred = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "day", "depth"], name="join_tally_unique")
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id} {self.day} depth {self.depth}: {self.joined}"


class CohortTally(models.Model):
    """Referees by their referrer's local day of joining and by how many days after the
    referrer they joined, rounded up (`gap_days`): referee joined − referrer joined ≤ the
    attribution window of W days exactly when gap_days ≤ W, whatever the window is set to
    later."""

    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    day = models.DateField()
    gap_days = models.IntegerField()
    referees = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "day", "gap_days"], name="cohort_tally_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id} {self.day} +{self.gap_days}d: {self.referees}"


class ReferralGap(models.Model):
    """How long after their referrer each referee joined, in order per campaign: the
    median cycle time is read by OFFSET along its index."""

    id = models.BigAutoField(primary_key=True)
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    gap = models.DurationField()

    class Meta:
        indexes = [models.Index(fields=["campaign", "gap"], name="referral_gap_order")]

    def __str__(self) -> str:
        return f"{self.campaign_id} {self.gap}"


class VisitorSeen(models.Model):
    """A visitor cookie that came through one of the campaign's invite links (not a bot).
    Not kept for a campaign whose clicks are past their retention (apps.trust.retention):
    its visitors are then counted from the daily snapshots and the clicks kept."""

    id = models.BigAutoField(primary_key=True)
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    visitor_id = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "visitor_id"], name="visitor_seen_unique")
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id} {self.visitor_id}"


class VisitorTally(models.Model):
    """How many VisitorSeen rows the campaign has."""

    campaign = models.OneToOneField(
        Campaign, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    visitors = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.campaign_id}: {self.visitors}"
