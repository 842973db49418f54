"""A buffered click as it travels (apps.referrals.clickbuffer): one line of PostgreSQL's
COPY text format, made in the request, checked by one match in the flush and handed to
COPY as it is, so that nothing on the way decodes or encodes a click.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from apps.common.codes import random_uuid

# The click log's columns a line holds, in its order.
COLUMNS = (
    "buffer_id", "campaign_id", "participant_id", "created_at", "channel", "visitor_id",
    "ip_hash", "ua_class", "is_bot",
)  # fmt: skip

# A click is one line of COPY's text format: COLUMNS in order, tab-separated, with the
# text columns' backslashes, tabs and line breaks escaped as COPY reads them.
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_TEXT = r"(?:[^\t\n\r\\\x00]|\\[\\tnr])"
_LINE = re.compile(
    r"[0-9a-f]{32}\t[0-9]{1,18}\t[0-9]{1,18}\t"
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?\+00:00\t"
    rf"{_TEXT}{{0,32}}\t{_TEXT}{{0,64}}\t{_TEXT}{{0,64}}\t"
    r"(?:mobile|tablet|desktop|bot|other)\t[tf]"
)
_UNESCAPES = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\r": "\r"}


def line(
    *,
    campaign_id: int,
    participant_id: int,
    channel: str,
    visitor_id: str,
    ip_hash: str,
    ua_class: str,
    is_bot: bool,
    buffer_id: uuid.UUID | None = None,
    created_at: datetime | None = None,
) -> str:
    """A click as the buffer carries it: a new random `buffer_id` and the time now, unless
    given. `channel`, `visitor_id` and `ip_hash` must fit their columns (32, 64 and 64
    characters): the flush drops a line that does not."""
    when = datetime.now(UTC) if created_at is None else created_at.astimezone(UTC)
    return (
        f"{(buffer_id or random_uuid()).hex}\t{campaign_id:d}\t{participant_id:d}\t"
        f"{when.isoformat()}\t{_text(channel)}\t{_text(visitor_id)}\t{_text(ip_hash)}\t"
        f"{ua_class}\t{'t' if is_bot else 'f'}"
    )


def _text(value: str) -> str:
    """A text column as COPY reads it, and as UTF-8 can carry it (a lone surrogate, which
    no encoding takes, becomes "?": it would hold the sender's clicks up for ever)."""
    if not value.isascii():
        value = value.encode(errors="replace").decode()
    return value.translate(_ESCAPES)


def checked(raw: bytes | str) -> str | None:
    """The line `raw` holds, if it is one; an item an earlier version queued (a JSON
    array, during a rolling deploy) as a line; None for anything else."""
    try:
        text = raw.decode() if isinstance(raw, bytes) else raw
        if text.startswith("["):
            return _legacy(text)
    except (ValueError, TypeError, AttributeError, OverflowError):
        return None
    return text if _LINE.fullmatch(text) else None


def _legacy(text: str) -> str | None:
    values = json.loads(text)
    if not isinstance(values, list) or len(values) != len(COLUMNS):
        return None
    found = line(
        buffer_id=uuid.UUID(values[0]),
        campaign_id=values[1],
        participant_id=values[2],
        created_at=datetime.fromisoformat(values[3]),
        channel=values[4],
        visitor_id=values[5],
        ip_hash=values[6],
        ua_class=values[7],
        is_bot=bool(values[8]),
    )
    return found if _LINE.fullmatch(found) else None


def row(text: str) -> list[Any]:
    """A checked line's columns as Python values (SQLite, which has no COPY)."""
    values: list[Any] = [
        re.sub(r"\\[\\tnr]", lambda m: _UNESCAPES[m.group()], field) for field in text.split("\t")
    ]
    values[0] = uuid.UUID(values[0])
    values[1], values[2] = int(values[1]), int(values[2])
    values[3] = datetime.fromisoformat(values[3])
    values[8] = values[8] == "t"
    return values
