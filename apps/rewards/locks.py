"""Finding and locking what an event changes: the participant it names and their nearest
ancestors, locked in ascending id order (FOR NO KEY UPDATE) so that two events never
wait on each other in a circle, and the campaign first when it has a budget cap. The
services (services.py) take these locks before they look for a duplicate; the ledger
and the payouts rely on them (see services.py for how "exactly once" holds).
"""

from __future__ import annotations

from typing import NoReturn

from django.db import connection

from apps.campaigns.models import MAX_COMMISSION_LEVELS, Campaign
from apps.common.errors import NotFound, Unprocessable
from apps.referrals.models import Participant

from . import engine


def try_lock(name: str) -> bool:
    """A transaction-scoped PostgreSQL advisory lock, without waiting. Elsewhere (SQLite
    serialises writers anyway) always True."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))", [name])
        row = cursor.fetchone()
    return bool(row and row[0])


def lock_tree(campaign: Campaign, participant: Participant) -> engine.Tree:
    """Lock (FOR NO KEY UPDATE, which still lets children be inserted under these rows)
    the campaign when it has a budget cap, then the participant and up to 3 ancestors in
    ascending id order; return them fresh."""
    lock_campaign(campaign)
    ids = [participant.pk, *participant.ancestor_ids[:MAX_COMMISSION_LEVELS]]
    rows = Participant.objects.select_for_update(no_key=True).filter(pk__in=ids).order_by("pk")
    return _tree(campaign, participant.pk, list(rows))


def lock_campaign(campaign: Campaign) -> None:
    if campaign.budget_cap is not None:
        # Every grant in a capped campaign reads the campaign's total first.
        list(Campaign.objects.select_for_update(no_key=True).filter(pk=campaign.pk).values("pk"))


def _tree(campaign: Campaign, participant_id: int, rows: list[Participant]) -> engine.Tree:
    by_id = {p.pk: p for p in rows}
    for row in rows:
        row.campaign = campaign
    participant = by_id[participant_id]
    ancestors = participant.ancestor_ids[:MAX_COMMISSION_LEVELS]
    return engine.Tree(
        participant=participant, ancestors=[by_id[i] for i in ancestors if i in by_id]
    )


# The participant an event names (by id or by external id, in the campaign) and its
# nearest ancestors, whose ids are in the participant's own path (which never changes),
# locked in ascending id order. Written out, not built by the ORM on every event.
_LOCK_TREE_SQL = """
    id IN (
        SELECT unnest(
            (string_to_array(t.path, '/'))[cardinality(string_to_array(t.path, '/')) - %s:]
            || t.id::text
        )::bigint
        FROM referrals_participant t
        WHERE t.campaign_id = %s AND t.{column} = %s
    )
    ORDER BY id
    FOR NO KEY UPDATE
"""


def find_and_lock(
    campaign: Campaign, participant_id: int | None, external_id: str | None
) -> engine.Tree:
    """The participant an event names, and its ancestors, locked as `lock_tree` locks
    them. On PostgreSQL one statement finds and locks them all (ascending ids, as
    `lock_tree`); elsewhere, a lookup then `lock_tree`."""
    if connection.vendor != "postgresql":
        return lock_tree(campaign, _participant(campaign, participant_id, external_id))
    lock_campaign(campaign)
    by_id = participant_id is not None
    sql = _LOCK_TREE_SQL.format(column="id" if by_id else "external_id")
    value = participant_id if by_id else external_id
    rows = list(
        Participant.objects.raw(
            f"SELECT * FROM referrals_participant WHERE {sql}",  # noqa: S608 (constant SQL)
            [MAX_COMMISSION_LEVELS - 1, campaign.pk, value],
        )
    )
    named = [p for p in rows if (p.pk == participant_id if by_id else p.external_id == external_id)]
    if not named:
        _not_found(campaign, participant_id, external_id)
    if by_id and external_id and named[0].external_id != external_id:
        _identity_conflict()
    return _tree(campaign, named[0].pk, rows)


def _not_found(campaign: Campaign, participant_id: int | None, external_id: str | None) -> NoReturn:
    if participant_id is not None:
        raise NotFound(
            f"No participant {participant_id} in campaign {campaign.slug!r}.",
            code="participant_not_found",
            fields={"participant_id": "unknown in this campaign"},
        )
    raise NotFound(
        f"No participant with external_id {external_id!r} in campaign {campaign.slug!r}.",
        code="participant_not_found",
        fields={"external_id": "unknown in this campaign"},
    )


def _identity_conflict() -> NoReturn:
    raise Unprocessable(
        "participant_id and external_id name two different participants.",
        code="identity_conflict",
        fields={"external_id": "belongs to another participant"},
    )


def _participant(
    campaign: Campaign, participant_id: int | None, external_id: str | None
) -> Participant:
    found: Participant | None = None
    if participant_id is not None:
        found = Participant.objects.filter(pk=participant_id, campaign=campaign).first()
        if found is not None and external_id and found.external_id != external_id:
            _identity_conflict()
    else:
        found = Participant.objects.filter(campaign=campaign, external_id=external_id).first()
    if found is None:
        _not_found(campaign, participant_id, external_id)
    return found
