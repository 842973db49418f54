"""Reads of the referral tree and its participants."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection
from django.db.models import Count, Prefetch, Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.campaigns.models import Campaign, LandingCopy, RewardTier
from apps.common.errors import NotFound
from apps.common.memory import Remembered
from apps.common.names import public_name

from . import directory, hostdirectory
from .models import PATH_ARRAY_SQL, FraudFlag, Participant

# What a join reads of the referrer: the tree columns, and what the fraud rules compare.
REFERRER_FIELDS = (
    "id", "campaign_id", "code", "name", "email_normalized", "depth", "path", "status",
    "join_ip_hash", "join_visitor_id", "join_ua_class",
)  # fmt: skip


def participant_get(pk: int, *, detail: bool = False) -> Participant:
    """A participant with its campaign and referrer; with `detail`, also the campaign's
    tiers and the participant's flags, for the detail JSON."""
    queryset = Participant.objects.select_related("campaign", "referrer")
    if detail:
        queryset = queryset.prefetch_related(
            "campaign__tiers", Prefetch("flags", queryset=FraudFlag.objects.order_by("created_at"))
        )
    try:
        return queryset.get(pk=pk)
    except (Participant.DoesNotExist, ValueError, OverflowError):
        raise NotFound(f"No participant {pk}.", code="participant_not_found") from None


def participant_by_code(code: str) -> Participant | None:
    """The owner of an invite code, with its campaign: one indexed lookup."""
    return Participant.objects.select_related("campaign").filter(code=code).first()


@dataclass(frozen=True)
class InviteTarget:
    """What the invite redirect needs to know about a code, and nothing more."""

    participant_id: int
    campaign_id: int
    campaign_slug: str
    attribution_window_days: int


# Where invite codes lead, remembered by each process (see INVITE_CACHE_SECONDS): code ->
# (participant id, campaign id); and campaign id -> (slug, attribution window, status,
# end), which a process re-reads every CAMPAIGN_STATE_SECONDS, so that a campaign that
# ends or goes back to draft is honoured within that time.
_codes: Remembered[str, tuple[int, int]] = Remembered(limit=50_000)
_campaigns: Remembered[int, tuple[str, int, str, datetime | None]] = Remembered(limit=50_000)
CAMPAIGN_STATE_SECONDS = 5.0
# Raw SQL: on the hottest path the ORM's building of this query costs several times the
# query itself (a unique-index lookup joined to the campaign's primary key).
_TARGET_SQL = f"""
SELECT p.id, p.campaign_id, c.slug, c.attribution_window_days, c.status, c.ends_at
FROM {Participant._meta.db_table} p JOIN {Campaign._meta.db_table} c ON c.id = p.campaign_id
WHERE p.code = %s
"""  # noqa: S608 (table names from the models; the code is a parameter)


def invite_target(code: str) -> InviteTarget | None:
    """Where an invite link leads: the participant of `code` (a unique-index lookup) and
    what the redirect needs of their campaign, or None.

    A code of a campaign that is over (ended) or not public yet (draft) leads nowhere,
    exactly like a code that does not exist: the same query and the same answer, so
    trying codes tells nobody which ones were ever handed out.

    Each process remembers codes for INVITE_CACHE_SECONDS (codes only change when a
    person is erased) and its campaigns' state for CAMPAIGN_STATE_SECONDS, so a popular
    link's clicks cost no query; a code this process has not seen yet is asked of the
    machine's file (hostdirectory.py, when set), then of the invite directory shared by
    all processes (directory.py), before PostgreSQL. Unknown codes are not remembered,
    so guessing codes cannot push the popular ones out.
    """
    remember = settings.FISSION["INVITE_CACHE_SECONDS"]
    known = _codes.get(code)
    if known is None and remember:
        known = hostdirectory.lookup(code)
        if known is None:
            known = directory.lookup(code)
            if known is not None:
                hostdirectory.remember([(code, *known)], remember)
        if known is not None:
            _codes.put(code, known, remember)
    if known is not None:
        participant_id, campaign_id = known
        state = _campaigns.get(campaign_id)
        if state is None:
            row = (
                Campaign.objects.filter(pk=campaign_id)
                .values_list("slug", "attribution_window_days", "status", "ends_at")
                .first()
            )
            if row is None:
                return None
            state = _campaigns.put(campaign_id, row, CAMPAIGN_STATE_SECONDS)
    else:
        with connection.cursor() as cursor:
            cursor.execute(_TARGET_SQL, [code])
            found = cursor.fetchone()
        if found is None:
            return None
        participant_id, campaign_id = found[0], found[1]
        state = (found[2], found[3], found[4], _aware(found[5]))
        if remember:
            _codes.put(code, (participant_id, campaign_id), remember)
            _campaigns.put(campaign_id, state, CAMPAIGN_STATE_SECONDS)
            invite_targets_share([(code, participant_id, campaign_id)])
    slug, window_days, status, ends_at = state
    if not campaign_is_public(status=status, ends_at=ends_at):
        return None
    return InviteTarget(participant_id, campaign_id, slug, window_days)


def _aware(value: datetime | str | None) -> datetime | None:
    """A timestamp column read by raw SQL: SQLite gives text in UTC, PostgreSQL an aware
    datetime."""
    if value is None or (isinstance(value, datetime) and timezone.is_aware(value)):
        return value
    parsed = parse_datetime(value) if isinstance(value, str) else value
    if parsed is None:
        raise ValueError(f"not a timestamp: {value!r}")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)


def invite_targets_share(targets: list[tuple[str, int, int]]) -> None:
    """Write where codes lead (code, participant id, campaign id) to the invite directory
    and this machine's file: a join's new code, or one read from PostgreSQL."""
    directory.remember(targets)
    hostdirectory.remember(targets, settings.FISSION["INVITE_CACHE_SECONDS"])


def invite_code_forget(code: str) -> None:
    """Forget a code that no longer leads anywhere (erasure replaces it): at once in this
    process, the directory and this machine's file, within INVITE_CACHE_SECONDS in the
    other processes and machines."""
    _codes.forget(code)
    directory.forget(code)
    hostdirectory.forget(code)


def invite_targets_forget() -> None:
    """Forget what this process remembers of invite codes and campaigns (tests)."""
    _codes.forget()
    _campaigns.forget()


def campaign_is_public(*, status: str, ends_at: datetime | None) -> bool:
    """Whether a campaign's invite links and inviters are shown: not a draft, not over.
    (A paused campaign, or one that has not started, keeps its links: it comes back.)"""
    if status in (Campaign.Status.DRAFT, Campaign.Status.ENDED):
        return False
    return ends_at is None or timezone.now() < ends_at


def inviter_in_campaign(campaign: Campaign, code: str) -> Participant | None:
    """The participant behind an invite code, if the code is of this campaign."""
    return Participant.objects.filter(code=code, campaign=campaign).only(*REFERRER_FIELDS).first()


def participant_by_token(token: str) -> Participant | None:
    """A participant by the secret token of their personal page, with what the page shows
    of the campaign (its tiers and landing copy) prefetched."""
    return (
        Participant.objects.select_related("campaign")
        .prefetch_related(
            Prefetch("campaign__tiers", queryset=RewardTier.objects.order_by("threshold")),
            Prefetch("campaign__landing_copies", queryset=LandingCopy.objects.all()),
        )
        .filter(token=token)
        .first()
    )


def participant_code_by_token(token: str) -> str | None:
    """The invite code of the participant whose page `token` opens (QR codes)."""
    return Participant.objects.filter(token=token).values_list("code", flat=True).first()


def referral_first_names(participant: Participant, *, limit: int = 100) -> list[str]:
    """What the participant may see of their direct referrals: first names only (see
    `public_name`), oldest first, at most `limit`."""
    names = participant.referrals.order_by("joined_at", "id").values_list("name", flat=True)
    return [public_name(name) for name in names[:limit]]


def ancestors(participant: Participant, *, levels: int = 3) -> list[Participant]:
    """Up to `levels` ancestors, nearest first: one primary-key lookup at any depth."""
    ids = participant.ancestor_ids[:levels]
    if not ids:
        return []
    by_id = Participant.objects.in_bulk(ids)
    return [by_id[i] for i in ids if i in by_id]


def descendants(participant: Participant) -> QuerySet[Participant]:
    """Everyone below `participant` in its referral tree, at any depth.

    On PostgreSQL a containment test on the path array, served by a GIN index; elsewhere
    a prefix match on the path (correct, unindexed: for development databases).
    """
    if connection.vendor == "postgresql":
        # Ids are unique across campaigns, so the path alone picks the subtree.
        return Participant.objects.extra(  # noqa: S610 (a constant expression; the id is a parameter)
            where=[f"{PATH_ARRAY_SQL} @> ARRAY[%s]::text[]"], params=[str(participant.pk)]
        )
    prefix = participant.path_for_children
    return Participant.objects.filter(campaign_id=participant.campaign_id).filter(
        Q(path=prefix) | Q(path__startswith=prefix + "/")
    )


def descendant_count(participant: Participant) -> int:
    """The size of the subtree below `participant` (not counting it).

    On PostgreSQL: the rolled-up count plus the descendants who joined since the last
    roll-up. The watermark is read first, as a value, so that the planner sees the live
    part for what it is (a primary-key range scan over the few newest rows) rather than
    guessing a third of the table and scanning in parallel.
    """
    if connection.vendor != "postgresql":
        return descendants(participant).count()
    with connection.cursor() as cursor:
        cursor.execute("SELECT watermark FROM referrals_treerollup WHERE id = 1")
        row = cursor.fetchone()
        watermark = row[0] if row else 0
        cursor.execute(
            f"""
            SELECT COALESCE(
                (SELECT descendants FROM referrals_subtreesize WHERE participant_id = %s), 0
            ) + (
                SELECT count(*) FROM referrals_participant
                WHERE id > %s AND {PATH_ARRAY_SQL} @> ARRAY[%s]::text[]
            )
            """,  # noqa: S608 (a constant expression; the values are parameters)
            [participant.pk, watermark, str(participant.pk)],
        )
        (count,) = cursor.fetchone()
    return int(count)


def qualified_referral_count(participant: Participant) -> int:
    """Direct referrals that count toward tiers: qualified and not flagged or blocked."""
    return participant.referrals.filter(
        qualified_at__isnull=False, status=Participant.Status.ACTIVE
    ).count()


def with_referral_counts(queryset: QuerySet[Participant]) -> QuerySet[Participant]:
    return queryset.annotate(direct_referrals=Count("referrals"))


def participant_progress(
    participant: Participant, qualified: int | None = None
) -> dict[str, object]:
    """Qualified direct referrals so far and the next tier still ahead (or None). Give
    `qualified` when it was counted already (for many participants at once)."""
    if qualified is None:
        qualified = qualified_referral_count(participant)
    tiers = sorted(participant.campaign.tiers.all(), key=lambda t: t.threshold)
    upcoming = next((t for t in tiers if t.threshold > qualified), None)
    return {
        "qualified_referrals": qualified,
        "next_tier": None
        if upcoming is None
        else {
            "threshold": upcoming.threshold,
            "remaining": upcoming.threshold - qualified,
            "description": upcoming.description,
        },
    }
