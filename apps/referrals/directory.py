"""The invite-code directory: where each code leads (participant id, campaign id), kept in
Django's cache (CACHE_URL; Redis in production) and so shared by every web process.

The invite redirect (selectors.invite_target) asks each process's own memory first, then
this directory, and PostgreSQL last. A code found in PostgreSQL is written here, so a
code costs one query in the whole deployment, not one per process and restart; joins
write their new code at once, and `manage.py warm_invite_codes` writes every live code
(after an import, or when the cache was emptied).

What a code leads to never changes (an erasure gives the person a new code and deletes
the old one here), so entries do not expire: the cache's own eviction bounds them. The
directory says nothing about the campaign's state (draft, ended), which the redirect
checks every time. When the cache fails, the redirect goes to PostgreSQL and leaves the
directory alone for RETRY_AFTER_SECONDS, so a cache that is down costs one timeout per
process, not one per click.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator

from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone

from apps.common.breaker import Breaker

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5.0
breaker = Breaker("invite directory", RETRY_AFTER_SECONDS)


def _key(code: str) -> str:
    return f"fission:invite:{code}"


def lookup(code: str) -> tuple[int, int] | None:
    """(participant id, campaign id) of `code`, or None when the directory does not know
    it or cannot be reached."""
    if not breaker.usable():
        return None
    try:
        found = cache.get(_key(code))
    except Exception as exc:  # any cache backend's own error type
        breaker.failed(exc)
        return None
    breaker.worked()
    return found


def remember(targets: Iterable[tuple[str, int, int]]) -> None:
    """Write (code, participant id, campaign id) entries; a failure only logs."""
    entries = {_key(code): (person, campaign) for code, person, campaign in targets}
    if not entries or not breaker.usable():
        return
    try:
        cache.set_many(entries, timeout=None)
    except Exception as exc:
        breaker.failed(exc)


def forget(code: str) -> None:
    """Delete a code that leads nowhere any more (erasure replaced it). Logged as an error
    when the cache cannot be reached: the old link would lead to the (erased) participant
    until the entry is evicted or deleted by hand (the log names the key)."""
    try:
        cache.delete(_key(code))
    except Exception as exc:
        logger.error("invite directory: could not delete %s: %s", _key(code), exc)
        breaker.failed(exc)


def live_targets(*, batch: int = 10_000) -> Iterator[tuple[str, int, int]]:
    """(code, participant id, campaign id) of every participant of a public campaign (not
    a draft, not over), read in chunks of `batch`."""
    from apps.campaigns.models import Campaign

    from .models import Participant

    live = (
        Participant.objects.exclude(
            campaign__status__in=[Campaign.Status.DRAFT, Campaign.Status.ENDED]
        )
        .filter(Q(campaign__ends_at__isnull=True) | Q(campaign__ends_at__gt=timezone.now()))
        .values_list("code", "id", "campaign_id")
    )
    return live.iterator(chunk_size=batch)


def fill(*, batch: int = 10_000) -> int:
    """Write the code of every live participant (live_targets); returns how many. Raises
    when the cache fails."""
    rows = live_targets(batch=batch)
    written = 0
    while chunk := list(itertools.islice(rows, batch)):
        entries = {_key(code): (person, campaign) for code, person, campaign in chunk}
        cache.set_many(entries, timeout=None)
        written += len(chunk)
    return written
