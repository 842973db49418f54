"""The click buffer: invite clicks queued in Redis, written to the click log by COPY.

Off unless CLICK_BUFFER_URL names a Redis database. Then a redirect hands its click to
its process's sender (`queue`: an append to a list in memory, no round trip) and answers
at once; the sender thread pushes whatever has gathered in one RPUSH, and a periodic task
writes the buffer to the click log in batches. Every click is written exactly once:

1. The redirect gives the click a random UUID (`buffer_id`) and queues it as one line of
   PostgreSQL's COPY text format (clicklines.py); the sender RPUSHes the queued lines, one
   item each, onto PENDING.
2. A flush moves up to a batch of clicks from PENDING onto a processing list of its own
   and records that list, with the time, in FLUSHES: one Lua script, so two flushers
   never take the same clicks and no click is ever in neither place.
3. It checks each line against the format, then COPYs the batch as it is into a
   temporary table and inserts it into the click log ON CONFLICT (buffer_id) DO NOTHING,
   in one transaction. Nothing in between decodes or encodes a click: a click costs the
   web process one string and the flush one match.
4. After the commit it deletes its processing list and its FLUSHES entry (one MULTI).

A flusher that dies between 2 and 4 leaves its list behind. A later flush takes over
lists older than LEASE_SECONDS (claimed by a compare-and-set on their time in FLUSHES, so
one flusher at a time) and writes them again: what was already written is skipped by
the unique `buffer_id`, so a crash after the COPY's commit duplicates nothing.

When Redis cannot be reached the sender writes its clicks to the click log itself (the
same COPY, the same `buffer_id`: if a push did arrive after all, a timeout on the
answer, its flush finds the clicks already written); when neither can take them it keeps
them and tries again. A process that exits (a restart, a deploy) sends what it holds
first. What a process holds is only what gathered since the sender's last push, at most
GATHER_SECONDS (50 ms) of clicks: a process killed outright (SIGKILL, out of memory) in
that moment loses those, as Redis itself, with its AOF written every second, would lose
a second of them.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import threading
import time
import uuid

import redis
from django.conf import settings
from django.db import connection, transaction

from . import clicklines
from .models import Click, Participant

logger = logging.getLogger(__name__)

# Keys share one hash tag, so the Lua scripts also run on a Redis Cluster.
PENDING = "{fission:clicks}:pending"
FLUSHES = "{fission:clicks}:flushes"
PROCESSING = "{fission:clicks}:processing:"
BATCH = 20_000
# A processing list older than this belongs to a flusher that died: a flush takes it
# over. Far longer than writing one batch takes (well under a second).
LEASE_SECONDS = 60.0
# After Redis failed to answer, this process inserts clicks directly for this long
# before it tries Redis again, so that an unreachable Redis costs each redirect nothing.
RETRY_AFTER_SECONDS = 5.0
TIMEOUT_SECONDS = 0.5
FLUSH_TIMEOUT_SECONDS = 10.0

# KEYS: pending, processing list, flushes. ARGV: batch size, now.
_TAKE = """
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
local n = #items
if n == 0 then return 0 end
for i = 1, n, 1000 do
  redis.call('RPUSH', KEYS[2], unpack(items, i, math.min(i + 999, n)))
end
redis.call('LTRIM', KEYS[1], n, -1)
redis.call('ZADD', KEYS[3], ARGV[2], KEYS[2])
return n
"""
# KEYS: flushes, processing list. ARGV: taken before (a time), now.
_CLAIM = """
local taken = redis.call('ZSCORE', KEYS[1], KEYS[2])
if taken and tonumber(taken) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], ARGV[2], KEYS[2])
  return 1
end
return 0
"""

_TEMP_TABLE = """
CREATE TEMPORARY TABLE IF NOT EXISTS click_flush (
    buffer_id uuid, campaign_id bigint, participant_id bigint, created_at timestamptz,
    channel varchar(32), visitor_id varchar(64), ip_hash varchar(64), ua_class varchar(8),
    is_bot boolean
) ON COMMIT DELETE ROWS
"""
_COPY = f"COPY click_flush ({', '.join(clicklines.COLUMNS)}) FROM STDIN"
# Clicks of no participant (participants are never deleted: a forged or corrupt item)
# are left out, rather than failing the batch on the foreign key for ever. Ids follow
# the clicks' times, as they do when clicks are inserted one by one.
_INSERT = f"""
INSERT INTO referrals_click ({", ".join(clicklines.COLUMNS)})
SELECT {", ".join("f." + c for c in clicklines.COLUMNS)}
FROM click_flush f
JOIN referrals_participant p ON p.id = f.participant_id AND p.campaign_id = f.campaign_id
ORDER BY f.created_at
ON CONFLICT (buffer_id) WHERE buffer_id IS NOT NULL DO NOTHING
"""  # noqa: S608 (constant column names)


class Unavailable(Exception):
    """Redis could not be reached (or is being left alone for a few seconds)."""


def enabled() -> bool:
    return bool(settings.FISSION["CLICK_BUFFER_URL"])


_local = threading.local()
_down_until = 0.0


def client(*, timeout: float = TIMEOUT_SECONDS) -> redis.Redis:
    """This thread's client of the buffer: one connection of its own, which costs a push
    half what a shared connection pool does (it reconnects by itself when dropped).

    Redirects wait at most TIMEOUT_SECONDS before inserting the click themselves; a flush
    waits FLUSH_TIMEOUT_SECONDS, as a slow answer there only delays the clicks."""
    key = (settings.FISSION["CLICK_BUFFER_URL"], timeout)
    found: redis.Redis | None = getattr(_local, "clients", {}).get(key)
    if found is None:
        found = redis.Redis.from_url(
            key[0],
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            single_connection_client=True,
        )
        _local.clients = {**getattr(_local, "clients", {}), key: found}
    return found


def push(clicks: list[str]) -> None:
    """Append clicks (lines) to the buffer (one RPUSH). Raises Unavailable when Redis
    cannot take them: the caller then writes them itself."""
    global _down_until
    if _down_until and time.monotonic() < _down_until:
        raise Unavailable("the click buffer failed a moment ago")
    try:
        client().rpush(PENDING, *clicks)
    except redis.RedisError as exc:
        _down_until = time.monotonic() + RETRY_AFTER_SECONDS
        logger.warning(
            "click buffer unavailable, inserting clicks directly for %s s: %s",
            RETRY_AFTER_SECONDS,
            exc,
        )
        raise Unavailable(str(exc)) from exc
    _down_until = 0.0


# A sender pushes at most this many clicks in one RPUSH, and holds at most MAX_HELD while
# neither Redis nor PostgreSQL takes them (then it drops the oldest, with an error).
SEND_BATCH = 1_000
MAX_HELD = 200_000
# The sender waits this long after the first click of a batch before it pushes, so that
# under load one push carries many clicks and a redirect wakes the thread at most once
# per window. It is also what a process killed outright can lose.
GATHER_SECONDS = 0.05
RESEND_AFTER_SECONDS = 1.0


class Sender:
    """This process's clicks on their way to the buffer, and the thread that sends them.

    `queue` appends (no lock, no round trip) and wakes the thread if it waits; the thread
    lets clicks gather for GATHER_SECONDS, then sends everything queued in one RPUSH, so
    that under load one round trip carries many clicks and a redirect waits for none. The
    thread starts with the first click of each process; a forked child starts afresh (its
    parent sends its own)."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._clicks: collections.deque[str] = collections.deque()
        self._wake = threading.Event()
        self._sending = threading.Lock()  # one send at a time: the thread's, or `send`
        self._starting = threading.Lock()
        self._started = False

    def queue(self, click: str) -> None:
        self._clicks.append(click)
        if not self._started:
            self._start()
        if not self._wake.is_set():  # waking a thread costs more than the rest of this
            self._wake.set()

    def held(self) -> int:
        return len(self._clicks)

    def _start(self) -> None:
        with self._starting:
            if not self._started:
                threading.Thread(target=self._run, name="click-sender", daemon=True).start()
                self._started = True

    def _run(self) -> None:
        while True:
            self._wake.wait()
            # Clicks queued meanwhile find the thread awake and do not wake it again.
            time.sleep(GATHER_SECONDS)
            self._wake.clear()
            sent = False
            try:
                sent = self.send()
                # The click log's connection, if Redis was down (a rare path: no idle
                # connection per web process is worth keeping for it).
                connection.close()
            except Exception:  # the thread must live on: it is the process's only one
                logger.exception("click buffer: the sender failed; trying again")
            if not sent:
                time.sleep(RESEND_AFTER_SECONDS)
                self._wake.set()

    def send(self) -> bool:
        """Send every click held now: to Redis, or to the click log when Redis cannot
        take them. Returns False when neither could (the clicks are kept)."""
        with self._sending:
            while self._clicks:
                batch = [self._clicks.popleft() for _ in range(min(SEND_BATCH, len(self._clicks)))]
                try:
                    _deliver(batch)
                except Exception:
                    logger.exception("click buffer: %d clicks kept, sent again soon", len(batch))
                    self._clicks.extendleft(reversed(batch))
                    dropped = 0
                    while len(self._clicks) > MAX_HELD:
                        self._clicks.popleft()
                        dropped += 1
                    if dropped:
                        logger.error("click buffer: %d clicks dropped, %d held", dropped, MAX_HELD)
                    return False
            return True


def _deliver(clicks: list[str]) -> None:
    try:
        push(clicks)
    except Unavailable:
        # The same buffer_ids: should the push have arrived after all, its flush skips
        # them.
        with transaction.atomic():
            _insert(clicks)


sender = Sender()
atexit.register(sender.send)


def queue(click: str) -> None:
    """Hand a click (a `line`) to this process's sender (see Sender): returns at once."""
    sender.queue(click)


def pending() -> int:
    """Clicks waiting in the buffer (not counting batches being written), this process's
    own sent there first."""
    sender.send()
    return int(client(timeout=FLUSH_TIMEOUT_SECONDS).llen(PENDING)) + sender.held()


def flush(*, batch: int | None = None, max_batches: int = 50, lease: float | None = None) -> int:
    """Write buffered clicks to the click log: first the batches of flushers that died
    (taken more than `lease` seconds ago, LEASE_SECONDS unless given), then up to
    `max_batches` batches from the buffer. Returns the clicks written.

    Safe to run at any time, twice at once, or inside a transaction (the processing list
    is deleted when that transaction commits).
    """
    batch = batch or BATCH
    sender.send()  # this process's own clicks first
    redis_client = client(timeout=FLUSH_TIMEOUT_SECONDS)
    written = 0
    cutoff = time.time() - (LEASE_SECONDS if lease is None else lease)
    for key in redis_client.zrangebyscore(FLUSHES, "-inf", cutoff):
        name = key.decode() if isinstance(key, bytes) else str(key)
        if redis_client.eval(_CLAIM, 2, FLUSHES, name, cutoff, time.time()):
            logger.warning("click buffer: writing again the batch of a lost flush, %s", name)
            written += _write(redis_client, name)
    for _ in range(max_batches):
        name = PROCESSING + uuid.uuid4().hex
        taken = int(redis_client.eval(_TAKE, 3, PENDING, name, FLUSHES, batch, time.time()))
        if not taken:
            break
        written += _write(redis_client, name)
        if taken < batch:
            break
    return written


def _write(redis_client: redis.Redis, name: str) -> int:
    lines = []
    for raw in redis_client.lrange(name, 0, -1):
        checked = clicklines.checked(raw)
        if checked is None:  # never one bad item holding up the rest
            logger.error("click buffer: dropping an unreadable click %r", raw[:200])
        else:
            lines.append(checked)
    with transaction.atomic():
        written = _insert(lines) if lines else 0
        transaction.on_commit(lambda: _release(redis_client, name), robust=True)
    return written


def _release(redis_client: redis.Redis, name: str) -> None:
    # If this fails (Redis gone a moment), the list is written again after the lease,
    # and skipped click by click: nothing is lost or doubled.
    pipe = redis_client.pipeline(transaction=True)
    pipe.delete(name)
    pipe.zrem(FLUSHES, name)
    pipe.execute()


def _insert(lines: list[str]) -> int:
    """Write checked lines to the click log, skipping those already there; returns how
    many were new."""
    if connection.vendor != "postgresql":
        # SQLite (development): the same guarantee through the ORM.
        rows = [clicklines.row(text) for text in lines]
        clicks = {row[0]: Click(**dict(zip(clicklines.COLUMNS, row, strict=True))) for row in rows}
        known = set(Click.objects.filter(buffer_id__in=clicks).values_list("buffer_id", flat=True))
        people = Participant.objects.filter(pk__in={c.participant_id for c in clicks.values()})
        alive = set(people.values_list("pk", flat=True))
        fresh = [
            c for c in clicks.values() if c.participant_id in alive and c.buffer_id not in known
        ]
        Click.objects.bulk_create(fresh)
        return len(fresh)
    with connection.cursor() as cursor:
        cursor.execute(_TEMP_TABLE)
        # Left over from an earlier flush in the same transaction, if any.
        cursor.execute("TRUNCATE click_flush")
        with cursor.cursor.copy(_COPY) as copy:
            copy.write("\n".join(lines) + "\n")
        cursor.execute(_INSERT)
        return int(cursor.rowcount)
