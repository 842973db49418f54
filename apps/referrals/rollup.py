"""Rolling the referral tree's subtree sizes up into SubtreeSize (PostgreSQL).

Each run adds the participants above the watermark to the counts of all their ancestors
in one INSERT … SELECT over the stored paths, then moves the watermark. Participants
never leave the tree, so counts only grow. `roll_up` is that batch loop for any
append-only table; the K-factor report's tallies use it too (apps.analytics.rollup).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from django.db import OperationalError, connection, transaction
from django.db.models import Model

from .models import PATH_ARRAY_SQL, Participant, TreeRollup

logger = logging.getLogger(__name__)

BATCH = 200_000
LOCK_TIMEOUT = "200ms"


def committed_top(model: type[Model]) -> int | None:
    """The highest id of `model`'s table (an append-only log: participants, clicks) below
    which every insert has committed or aborted.

    Ids are taken while an INSERT holds its ROW EXCLUSIVE lock, so once a SHARE lock is
    granted no transaction still holds an id it has not committed. The lock is kept for
    one statement; if a long transaction (an import) is running, give up for this round
    rather than make joins (or clicks) queue behind us.
    """
    table = connection.ops.quote_name(model._meta.db_table)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            cursor.execute(f"LOCK TABLE {table} IN SHARE MODE")
            cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}")  # noqa: S608
            (top,) = cursor.fetchone()
    except OperationalError:
        logger.info("roll-up skipped: %s is busy", model._meta.db_table)
        return None
    return int(top)


class Watermark(Protocol):
    watermark: int

    def save(self) -> None: ...


def roll_up(
    model: type[Model],
    *,
    lock: Callable[[], Watermark],
    fold: Callable[[int, int], int],
    batch: int,
) -> int:
    """Fold every committed row of `model` (an append-only table) above a watermark into
    what it feeds, one batch per transaction: `lock()` returns the watermark row locked
    for the transaction (so two runs wait for each other), `fold(low, high)` adds the
    rows with ids in (low, high] and returns how many it counted. Returns the total."""
    top = committed_top(model)
    if top is None:
        return 0
    done = 0
    while True:
        with transaction.atomic():
            state = lock()
            low = state.watermark
            if low >= top:
                return done
            high = min(top, low + batch)
            done += fold(low, high)
            state.watermark = high
            state.save()


def tree_rollup(*, batch: int = BATCH) -> int:
    """Roll up every committed participant above the watermark; returns how many.

    Safe to run concurrently: the watermark row is locked for each batch.
    """
    if connection.vendor != "postgresql":
        return 0  # elsewhere subtree sizes are counted directly
    return roll_up(Participant, lock=_locked_tree_state, fold=_fold_subtrees, batch=batch)


def _locked_tree_state() -> TreeRollup:
    TreeRollup.objects.get_or_create(id=1)
    return TreeRollup.objects.select_for_update().get(id=1)


def _fold_subtrees(low: int, high: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(  # a constant expression; the bounds are parameters
            f"""
            INSERT INTO referrals_subtreesize (participant_id, descendants)
            SELECT ancestor::bigint, count(*)
            FROM referrals_participant p, unnest({PATH_ARRAY_SQL}) AS ancestor
            WHERE p.id > %s AND p.id <= %s
            GROUP BY ancestor
            ON CONFLICT (participant_id) DO UPDATE
            SET descendants = referrals_subtreesize.descendants + EXCLUDED.descendants
            """,  # noqa: S608
            [low, high],
        )
        cursor.execute(
            "SELECT count(*) FROM referrals_participant WHERE id > %s AND id <= %s",
            [low, high],
        )
        (rows,) = cursor.fetchone()
    return int(rows)
