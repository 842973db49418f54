"""Purchases taken in at once and applied by a worker: `Prefer: respond-async` (RFC 7240).

Applying a purchase (its tree's locks, three commissions, their ledger entries, webhook
events) costs about ten bare requests; taking it in costs one statement. A host that
posts many purchases (a sale, a viral spike) sends `Prefer: respond-async`, gets 202 with
the event as `queued`, and learns of the rewards by webhook or GET /rewards/. The worker
applies queued purchases in the order they came, exactly as a synchronous event would be
applied (services.py), and each one once:

- Taking in: one prepared statement in autocommit, an INSERT ... ON CONFLICT DO NOTHING
  on the unique (campaign, order_id) of purchases. It stores the purchase, or reads the
  stored purchase it repeats. Anything else (someone unknown, another currency, a repeat
  with other details or still in flight) finds nothing, and services.conversion_ingest
  takes the event the long way, which answers it or says what is wrong.
- Applying: a worker claims the oldest queued event with FOR UPDATE SKIP LOCKED, locks its
  tree as a synchronous event does, applies it and marks it applied in one transaction.
  Two workers never apply one event; one rolled back stays queued for the next pass.
- Waking the worker: each process publishes one pass per GATHER_SECONDS at most, due at
  the end of that window, so every purchase it took in before then is in that pass. A pass
  lost with the broker is made up by the periodic sweep (QUEUED_EVENTS_SWEEP_SECONDS).

A refund whose purchase is still queued waits for it, like one that came first.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from apps.api.models import ApiKey
from apps.campaigns.models import Campaign
from apps.common.postgresql.base import DatabaseWrapper as PostgreSQL
from apps.referrals.models import Participant

from . import engine, locks
from .models import Conversion, ConversionStatus, ConversionType
from .serializers import event_json

logger = logging.getLogger(__name__)

GATHER_SECONDS = 0.2
# Events one pass applies before it hands over to a new pass (another worker may take it).
PASS_LIMIT = 2000


def _take_in_sql(column: str) -> str:
    """One statement: find the participant (by `column`, id or external id) in the campaign
    (by slug, in the purchase's currency) and store the purchase as queued; or, when it
    repeats a purchase of theirs stored before the statement began, read that one."""
    conversion, participant = Conversion._meta.db_table, Participant._meta.db_table
    purchase, queued = ConversionType.PURCHASE.value, ConversionStatus.QUEUED.value
    fields = ["id", "participant_id", "amount", "currency", "occurred_at", "status", "response"]

    def columns(table: str) -> str:
        return ", ".join(f"{table}.{field}" for field in fields)

    return f"""
WITH p AS (
    SELECT t.id, t.campaign_id, t.qualified_at IS NOT NULL AS qualified
    FROM {participant} t
    JOIN {Campaign._meta.db_table} c ON c.id = t.campaign_id
    WHERE c.slug = %s::varchar AND c.currency = %s::varchar AND t.{column} = %s
), stored AS (
    INSERT INTO {conversion} (
        campaign_id, participant_id, type, order_id, amount, currency, occurred_at,
        received_at, api_key_id, idempotency_key, status, note, qualifying,
        response_status, response
    )
    SELECT p.campaign_id, p.id, '{purchase}', %s::varchar, %s::numeric, %s::varchar,
        %s::timestamptz, %s::timestamptz, %s::bigint, '', '{queued}', '', false, 202, '{{}}'
    FROM p
    ON CONFLICT (campaign_id, order_id) WHERE type = '{purchase}' DO NOTHING
    RETURNING {", ".join(fields)}
)
SELECT {columns("stored")}, p.qualified, true FROM stored JOIN p ON p.id = stored.participant_id
UNION ALL
SELECT {columns("s")}, p.qualified, false
FROM {conversion} s JOIN p ON s.campaign_id = p.campaign_id AND s.participant_id = p.id
WHERE s.type = '{purchase}' AND s.order_id = %s::varchar AND NOT EXISTS (SELECT FROM stored)
"""  # noqa: S608 (table names from the models; every value is a parameter)


_TAKE_IN_SQL = {column: _take_in_sql(column) for column in ("id", "external_id")}


def take_in(
    *,
    campaign_slug: str,
    participant_id: int | None,
    external_id: str | None,
    order_id: str,
    amount: Decimal,
    currency: str,
    occurred_at: datetime,
    api_key: ApiKey | None,
) -> tuple[int, dict[str, Any]] | None:
    """Store a purchase as queued in one statement: (202, its body). A repeat of the same
    purchase of the same person's, stored before: (200, the stored event's body). None for
    anything else (someone unknown, another currency, a repeat with other details or one
    still in flight, not PostgreSQL), for the caller to take the event the long way, which
    answers it or says what is wrong."""
    if connection.vendor != "postgresql" or (participant_id is None) == (external_id is None):
        return None
    column, who = (
        ("id", participant_id) if participant_id is not None else ("external_id", external_id)
    )
    # Prepared: planning this statement costs the server as much as running it.
    with cast(PostgreSQL, connection).prepared_cursor() as cursor:
        cursor.execute(
            _TAKE_IN_SQL[column],
            [campaign_slug, currency, who, order_id, amount, currency, occurred_at,
             timezone.now(), api_key.pk if api_key else None, order_id],
        )  # fmt: skip
        row = cursor.fetchone()
    if row is None:
        return None
    pk, buyer, stored_amount, stored_currency, stored_at, status, response, qualified, new = row
    if not new and (stored_amount != amount or stored_currency != currency):
        return None
    conversion = Conversion(
        pk=pk,
        campaign=Campaign(slug=campaign_slug),
        participant_id=buyer,
        type=ConversionType.PURCHASE,
        order_id=order_id,
        amount=stored_amount,
        currency=stored_currency,
        occurred_at=stored_at,
        status=status,
        # Django has psycopg hand jsonb over as text.
        response=json.loads(response) if isinstance(response, str) else response,
    )
    if new:
        wake_worker()
    return (202 if new else 200), answer_json(conversion, qualified=qualified)


def answer_json(conversion: Conversion, *, qualified: bool) -> dict[str, Any]:
    """What a purchase answers, first and to repeats: the answer kept when it was applied
    (`response`), or while it is queued the event as taken in, with no rewards yet."""
    return conversion.response or event_json(conversion, [], qualified=qualified)


_wake_lock = threading.Lock()
_pass_due = 0.0  # time.monotonic() at which the pass this process last published runs


def wake_worker() -> None:
    """Make sure a pass runs after what this process has just queued: publish one, due
    GATHER_SECONDS from now, unless one published earlier is not due yet (it will find
    this event). With in-process tasks (no broker) the pass runs here and now."""
    global _pass_due
    from .tasks import apply_queued_events

    if settings.CELERY_TASK_ALWAYS_EAGER:
        apply_queued_events.delay()
        return
    now = time.monotonic()
    with _wake_lock:
        if now < _pass_due:
            return
        _pass_due = now + GATHER_SECONDS
    try:
        apply_queued_events.apply_async(countdown=GATHER_SECONDS)
    except BrokerError as exc:
        logger.warning("broker unreachable: queued events left for the sweep: %s", exc)


def apply_queued(*, limit: int | None = None) -> int:
    """Apply queued events, oldest first, each in its own transaction, until none is left
    or `limit` (PASS_LIMIT) were tried. Returns how many were applied. An event that fails
    is logged and left queued for the next pass."""
    limit = PASS_LIMIT if limit is None else limit
    applied = 0
    failed: list[int] = []
    while applied + len(failed) < limit:
        conversion = None
        try:
            with transaction.atomic():
                conversion = _claim(failed)
                if conversion is None:
                    break
                _apply(conversion)
            applied += 1
        except Exception:
            if conversion is None:
                raise
            logger.exception("queued event %s failed: left for the next pass", conversion.pk)
            failed.append(conversion.pk)
    return applied


def _claim(skip: list[int]) -> Conversion | None:
    return (
        Conversion.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("campaign", "participant", "api_key")
        .filter(status=ConversionStatus.QUEUED)
        .exclude(pk__in=skip)
        .order_by("id")
        .first()
    )


def _apply(conversion: Conversion) -> None:
    from .services import apply_event

    tree = locks.lock_tree(conversion.campaign, conversion.participant)
    engine.prepare(conversion, tree)
    conversion.status = ConversionStatus.APPLIED
    api_key = conversion.api_key
    apply_event(conversion, tree, actor=f"api:{api_key.name}" if api_key else "api")
