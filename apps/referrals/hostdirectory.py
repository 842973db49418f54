"""The host's invite directory: where invite codes lead, in a SQLite file that every web
process of one machine shares. Off unless INVITE_HOST_DIRECTORY names the file; put it on
a memory file system (/dev/shm on Linux), one file per machine.

The invite redirect (selectors.invite_target) asks, in order: its process's own memory;
this file (a read of about 4 µs, no round trip); the invite directory in the shared cache
(directory.py, one round trip to Redis); PostgreSQL. What it learns from the last two it
writes here, so a code costs one round trip per machine rather than one per process, and
`manage.py warm_invite_codes`, run on the machine, writes every live code at once: after
a deploy, when every process starts with an empty memory, no click waits on Redis.

Entries expire after INVITE_CACHE_SECONDS, as the processes' own memory does: a code that
an erasure replaced on another machine stops leading anywhere here within that time. The
file says nothing about the campaign's state, which the redirect checks every time.

It is a cache: SQLite in WAL mode (readers never wait for the writer), synchronous=NORMAL
(a crash may lose the last writes, never the file). A write that finds another holding
the file beyond TIMEOUT_SECONDS is dropped; any other failure (a full disk, a corrupt
file, a path that cannot be opened) is logged and the file left alone for
RETRY_AFTER_SECONDS: the redirect then asks Redis, as it would without it.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator

from django.conf import settings

from apps.common.breaker import Breaker

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5.0
# How long a write waits for another process's write to finish (readers never wait in
# WAL mode). A redirect's write is one row, far shorter than this; one that still finds
# the file busy is dropped: the code is learned again on its next first sight.
TIMEOUT_SECONDS = 0.05
# How long an erasure or a fill waits for the file: these must not be dropped.
PATIENT_SECONDS = 10.0
FILL_BATCH = 10_000
breaker = Breaker("host invite directory", RETRY_AFTER_SECONDS)

_CREATE = """
CREATE TABLE IF NOT EXISTS invite_code_v1 (
    code TEXT PRIMARY KEY,
    participant_id INTEGER NOT NULL,
    campaign_id INTEGER NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID
"""
_LOOKUP = "SELECT participant_id, campaign_id FROM invite_code_v1 WHERE code = ? AND expires_at > ?"
_WRITE = "INSERT OR REPLACE INTO invite_code_v1 VALUES (?, ?, ?, ?)"

# One connection per thread and process: SQLite connections are not shared between
# threads here, and one opened before a fork is never used after it.
_local = threading.local()


def _path() -> str:
    return str(settings.FISSION["INVITE_HOST_DIRECTORY"])


def _connection(path: str) -> sqlite3.Connection:
    owner = (path, os.getpid())
    found: tuple[tuple[str, int], sqlite3.Connection] | None = getattr(_local, "found", None)
    if found is not None and found[0] == owner:
        return found[1]
    connection = sqlite3.connect(path, timeout=TIMEOUT_SECONDS, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(_CREATE)
    _local.found = (owner, connection)
    return connection


def lookup(code: str) -> tuple[int, int] | None:
    """(participant id, campaign id) of `code` while its entry lasts, or None."""
    path = _path()
    if not path or not breaker.usable():
        return None
    try:
        row = _connection(path).execute(_LOOKUP, (code, time.time())).fetchone()
    except sqlite3.Error as exc:
        breaker.failed(exc)
        return None
    breaker.worked()
    return (row[0], row[1]) if row is not None else None


def remember(targets: Iterable[tuple[str, int, int]], seconds: float) -> None:
    """Write (code, participant id, campaign id) entries lasting `seconds`; a failure
    only logs."""
    path = _path()
    if not path or seconds <= 0 or not breaker.usable():
        return
    try:
        _write(_connection(path), targets, time.time() + seconds)
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_BUSY:
            breaker.failed(exc)


def forget(code: str) -> None:
    """Delete a code that leads nowhere any more (erasure replaced it) from this
    machine's file, waiting for a busy file as long as a fill would; the other machines'
    entries expire. Logged as an error when it fails: the entry then lasts until it
    expires."""
    path = _path()
    if not path:
        return
    try:
        with _patient(_connection(path)) as connection:
            connection.execute("DELETE FROM invite_code_v1 WHERE code = ?", (code,))
    except sqlite3.Error as exc:
        logger.error("host invite directory: could not delete %s from %s: %s", code, path, exc)


def fill(targets: Iterable[tuple[str, int, int]], seconds: float) -> int:
    """Delete the expired entries and write `targets` lasting `seconds`, in batches
    (waiting up to PATIENT_SECONDS for the file between them); returns how many. Raises
    sqlite3.Error when the file cannot be written."""
    expires_at = time.time() + seconds
    written = 0
    with _patient(_connection(_path())) as connection:
        connection.execute("DELETE FROM invite_code_v1 WHERE expires_at <= ?", (time.time(),))
        rows = iter(targets)
        while batch := list(itertools.islice(rows, FILL_BATCH)):
            _write(connection, batch, expires_at)
            written += len(batch)
    return written


@contextlib.contextmanager
def _patient(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """The connection waiting up to PATIENT_SECONDS for a busy file, then as before."""
    connection.execute(f"PRAGMA busy_timeout = {int(PATIENT_SECONDS * 1000)}")
    try:
        yield connection
    finally:
        connection.execute(f"PRAGMA busy_timeout = {int(TIMEOUT_SECONDS * 1000)}")


def enabled() -> bool:
    return bool(_path())


def _write(
    connection: sqlite3.Connection, targets: Iterable[tuple[str, int, int]], expires_at: float
) -> None:
    rows = [(code, person, campaign, expires_at) for code, person, campaign in targets]
    if not rows:
        return
    connection.execute("BEGIN IMMEDIATE")  # one transaction: the file is in autocommit
    try:
        connection.executemany(_WRITE, rows)
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
