from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.campaigns.models import Campaign
from apps.common.names import public_name

# The SQL expression that turns a stored path into an array of ancestor ids; the GIN
# index of migration 0002 is built on exactly this expression, so a subtree query that
# uses it is one index scan at any depth.
PATH_ARRAY_SQL = "string_to_array(path, '/')"


class ParticipantStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    FLAGGED = "flagged", _("Flagged for review")
    BLOCKED = "blocked", _("Blocked")


class Participant(models.Model):
    """One person in one campaign: a node of the campaign's referral tree.

    The tree is append-only. `referrer`, `depth` and `path` are set once, at insert, from
    the referrer's row and never change, so no cycle can form and the ancestors of any
    node are in its own row: `path` lists their ids, root first ("" for a root).
    """

    Status = ParticipantStatus

    # No index of its own: the (campaign, ...) indexes below start with it (docs/indexes.md).
    campaign = models.ForeignKey(
        Campaign, on_delete=models.PROTECT, related_name="participants", db_index=False
    )
    email = models.EmailField(_("email"), help_text=_("As the person typed it."))
    email_normalized = models.CharField(
        max_length=254, editable=False, help_text=_("Used to find duplicates.")
    )
    name = models.CharField(_("name"), max_length=100, blank=True)
    external_id = models.CharField(
        max_length=128, null=True, blank=True, help_text=_("The host application's user id.")
    )
    # No index of its own: participant_referrer_joined starts with it (docs/indexes.md).
    referrer = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="referrals",
        help_text=_("Who invited this participant. Empty for a seed."),
        db_index=False,
    )
    depth = models.PositiveIntegerField(default=0, help_text=_("0 for a seed."))
    path = models.TextField(default="", blank=True, editable=False)
    code = models.CharField(max_length=32, unique=True, help_text=_("In the invite link /r/<code>"))
    token = models.CharField(max_length=64, unique=True, editable=False)
    channel = models.CharField(
        max_length=32,
        blank=True,
        help_text=_("How they joined: web, api, import, or the link's channel."),
    )
    language = models.CharField(max_length=10, blank=True)
    consent_at = models.DateTimeField(null=True, blank=True)
    consent_version = models.CharField(max_length=32, blank=True)
    consent_withdrawn_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text=_("When the person withdrew consent to messages. Nothing is sent after it."),
    )
    verified_at = models.DateTimeField(null=True, blank=True)
    qualified_at = models.DateTimeField(
        null=True, blank=True, help_text=_("When this participant met the qualifying event.")
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    joined_at = models.DateTimeField(default=timezone.now)
    join_ip_hash = models.CharField(max_length=64, blank=True, editable=False)
    join_visitor_id = models.CharField(max_length=64, blank=True, editable=False)
    # What the fraud rules compare at later joins: the device class of the browser, and
    # the keyed hash of the /24 (IPv6: /48) around the address. Never the address itself.
    # Database defaults too, for writers that bypass the ORM (generate_load_data's COPY).
    join_ua_class = models.CharField(
        max_length=8, blank=True, editable=False, default="", db_default=""
    )
    join_network_hash = models.CharField(
        max_length=64, blank=True, editable=False, default="", db_default=""
    )

    class Meta:
        ordering = ["-joined_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "email_normalized"], name="participant_unique_email"
            ),
            models.UniqueConstraint(
                fields=["campaign", "external_id"],
                condition=Q(external_id__isnull=False),
                name="participant_unique_external_id",
            ),
            models.CheckConstraint(
                condition=Q(referrer__isnull=True, depth=0, path="")
                | Q(referrer__isnull=False, depth__gt=0),
                name="participant_depth_matches_referrer",
            ),
            models.CheckConstraint(
                condition=Q(status__in=ParticipantStatus.values), name="participant_status_valid"
            ),
        ]
        indexes = [
            # Cohorts, listings and K-factor over a campaign's joins by date. Covering: the
            # report's counts, generations, cohorts and cycle time (both sides of the
            # referee-referrer join) read the index alone, never the wide rows; a campaign's
            # seeds (depth 0) too, so (campaign, depth) has no index of its own.
            models.Index(
                fields=["campaign", "joined_at"],
                include=["id", "referrer", "depth", "qualified_at", "status"],
                name="participant_campaign_joined",
            ),
            # The K-factor report's qualified referees (which change after joining, so the
            # report counts them live): a third of the campaign's rows, and narrow.
            models.Index(
                fields=["campaign", "joined_at"],
                include=["status"],
                condition=Q(referrer__isnull=False) & Q(qualified_at__isnull=False),
                name="participant_qualified_referee",
            ),
            # The join-time burst rules: joins of a campaign from one network (and, within
            # it, one address) in the last minutes. Partial: API, import and seed joins
            # carry no address and are never looked up this way.
            models.Index(
                fields=["campaign", "join_network_hash", "joined_at"],
                condition=~Q(join_network_hash=""),
                name="participant_join_network",
            ),
            # The velocity rule (a referrer's referees in the last minute) and the
            # personal page's list of friends, oldest first.
            models.Index(fields=["referrer", "joined_at"], name="participant_referrer_joined"),
        ]

    def __str__(self) -> str:
        return f"{self.name or self.email} ({self.code})"

    @property
    def ancestor_ids(self) -> list[int]:
        """Ids of all ancestors, nearest first."""
        return [int(x) for x in reversed(self.path.split("/"))] if self.path else []

    @property
    def path_for_children(self) -> str:
        return f"{self.path}/{self.pk}" if self.path else str(self.pk)

    @property
    def first_name(self) -> str:
        """What other people may see of the name: the first word, or for a name written
        without spaces in Chinese characters, the family name and a mask ("王**")."""
        return public_name(self.name)


class Click(models.Model):
    """One visit through an invite link. Append-only; never updated.

    No raw IP address: `ip_hash` is a keyed hash. Link-preview bots and HEAD requests are
    recorded with `is_bot` and never counted as visitors.
    """

    class UserAgentClass(models.TextChoices):
        MOBILE = "mobile", _("Phone")
        TABLET = "tablet", _("Tablet")
        DESKTOP = "desktop", _("Desktop")
        BOT = "bot", _("Bot or link preview")
        OTHER = "other", _("Other")

    id = models.BigAutoField(primary_key=True)
    # No index of its own: click_campaign_created starts with it (docs/indexes.md).
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="clicks")
    created_at = models.DateTimeField(default=timezone.now)
    channel = models.CharField(max_length=32, blank=True)
    visitor_id = models.CharField(max_length=64, blank=True)
    ip_hash = models.CharField(max_length=64, blank=True)
    ua_class = models.CharField(max_length=8, choices=UserAgentClass.choices, default="other")
    is_bot = models.BooleanField(default=False)
    # Set on clicks that went through the click buffer (CLICK_BUFFER_URL): the random id
    # the redirect gave the click, which makes writing it a second time (a flush retried
    # after a crash, a push that timed out and was also inserted directly) a no-op.
    buffer_id = models.UUIDField(null=True, blank=True, editable=False)

    class Meta:
        indexes = [
            # Funnels and channels per campaign and period; retention deletes.
            models.Index(fields=["campaign", "created_at"], name="click_campaign_created"),
            # The K-factor report's distinct visitors (and each day's): an index-only scan
            # that reads the campaign's visits already in visitor order, never the table.
            models.Index(
                fields=["campaign", "visitor_id"],
                include=["created_at"],
                condition=Q(is_bot=False) & ~Q(visitor_id=""),
                name="click_campaign_visitor",
            ),
        ]
        constraints = [
            # Each buffered click is written once: the flush inserts ON CONFLICT DO
            # NOTHING against this index. Partial, so that direct inserts (no buffer_id)
            # pay nothing for it and the index holds only buffered clicks.
            models.UniqueConstraint(
                fields=["buffer_id"],
                condition=Q(buffer_id__isnull=False),
                name="click_buffer_id_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"click {self.pk} on {self.participant_id}"


class FraudFlag(models.Model):
    """A fraud rule that fired on a participant, with its reasons and evidence.

    Automated decisions keep their reasons and a person can overturn them (PIPL art. 24).
    The evidence holds counts and which signals matched, never an address, a hash or
    another person's details, so it can be shown to the person in their data export.
    """

    # No index of its own: flag_unique_code starts with it (docs/indexes.md).
    participant = models.ForeignKey(
        Participant, on_delete=models.CASCADE, related_name="flags", db_index=False
    )
    code = models.CharField(max_length=32, help_text=_("e.g. self_referral, disposable_email"))
    score = models.PositiveSmallIntegerField(default=0)
    reason = models.CharField(max_length=300)
    evidence = models.JSONField(default=dict, blank=True)
    action = models.CharField(
        max_length=5,
        blank=True,
        choices=[("flag", _("Held for review")), ("block", _("Blocked"))],
        help_text=_("What the rule did: hold the participant for review, or block them."),
    )
    created_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=150, blank=True)
    resolution = models.CharField(
        max_length=10,
        blank=True,
        choices=[("upheld", _("Upheld")), ("overturned", _("Overturned"))],
    )
    resolution_note = models.CharField(
        max_length=300, blank=True, help_text=_("Why the person who reviewed it decided so.")
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["participant", "code"], name="flag_unique_code"),
            models.CheckConstraint(
                condition=Q(resolution__in=["", "upheld", "overturned"]),
                name="flag_resolution_valid",
            ),
            models.CheckConstraint(
                condition=Q(action__in=["", "flag", "block"]), name="flag_action_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} on {self.participant_id}"


class SubtreeSize(models.Model):
    """How many descendants a participant had as of the tree roll-up (PostgreSQL).

    Counting a viral seed's 150,000 descendants from the path index takes tens of
    milliseconds; this table makes it one primary-key read plus a count of the few
    participants who joined since the last roll-up (those above `TreeRollup.watermark`).
    """

    participant = models.OneToOneField(
        Participant, primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    descendants = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.participant_id}: {self.descendants}"


class TreeRollup(models.Model):
    """One row: every participant with an id at or below `watermark` is counted in the
    SubtreeSize rows of all its ancestors; those above it are counted live."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    watermark = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="tree_rollup_single_row")]

    def __str__(self) -> str:
        return f"tree roll-up at {self.watermark}"
