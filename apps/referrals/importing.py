"""Importing participants from another tool's CSV, all or nothing.

Columns: email, name, external_id, referrer_email, joined_at (ISO 8601). Parents may
follow their children in the file: rows are inserted level by level down the tree, each
level with multi-row INSERTs, so 100,000 rows take seconds, not minutes.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TextIO

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.campaigns.models import Campaign
from apps.common.codes import new_invite_code, new_token
from apps.common.emails import normalize_email
from apps.common.errors import FissionError

from .models import Participant
from .services import EXTERNAL_ID_MAX, NAME_MAX

COLUMNS = ("email", "name", "external_id", "referrer_email", "joined_at")
BATCH = 2000
MAX_REPORTED = 20


class ImportFailed(FissionError):
    code = "import_failed"

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        self.problems = sorted(problems)
        shown = [f"line {line}: {text}" for line, text in self.problems[:MAX_REPORTED]]
        more = len(problems) - len(shown)
        message = "\n".join(shown) + (f"\n… and {more} more problems" if more else "")
        super().__init__(message)


@dataclass
class Row:
    line: int
    email: str
    email_normalized: str
    name: str
    external_id: str | None
    referrer: str  # normalised email of the referrer, or ""
    joined_at: datetime
    depth: int = -1
    children: list[Row] = field(default_factory=list)


@dataclass
class ImportResult:
    created: int
    skipped: int  # already in the campaign


def _parse(
    reader: Iterable[dict[str, str]], line_of: Callable[[], int]
) -> tuple[list[Row], list[tuple[int, str]]]:
    rows: list[Row] = []
    problems: list[tuple[int, str]] = []
    seen_email: dict[str, int] = {}
    seen_external: dict[str, int] = {}
    now = timezone.now()
    for raw in reader:
        line = line_of()
        try:
            email_normalized = normalize_email(raw.get("email") or "")
        except ValueError:
            problems.append((line, f"{raw.get('email')!r} is not an email address"))
            continue
        name = (raw.get("name") or "").strip()
        external_id = (raw.get("external_id") or "").strip() or None
        referrer = ""
        if (raw.get("referrer_email") or "").strip():
            try:
                referrer = normalize_email(raw["referrer_email"])
            except ValueError:
                problems.append(
                    (line, f"referrer_email {raw['referrer_email']!r} is not an email address")
                )
                continue
        joined_text = (raw.get("joined_at") or "").strip()
        joined_at = now
        if joined_text:
            try:
                parsed = parse_datetime(joined_text)
            except ValueError:
                parsed = None
            if parsed is None:
                problems.append((line, f"joined_at {joined_text!r} is not an ISO 8601 time"))
                continue
            joined_at = parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)
        if len(name) > NAME_MAX:
            problems.append((line, f"name longer than {NAME_MAX} characters"))
            continue
        if external_id and len(external_id) > EXTERNAL_ID_MAX:
            problems.append((line, f"external_id longer than {EXTERNAL_ID_MAX} characters"))
            continue
        if referrer == email_normalized:
            problems.append((line, f"{raw['email']} cannot be their own referrer"))
            continue
        if email_normalized in seen_email:
            problems.append(
                (line, f"{raw['email']} appears already on line {seen_email[email_normalized]}")
            )
            continue
        if external_id and external_id in seen_external:
            first = seen_external[external_id]
            problems.append((line, f"external_id {external_id!r} appears already on line {first}"))
            continue
        seen_email[email_normalized] = line
        if external_id:
            seen_external[external_id] = line
        rows.append(
            Row(
                line,
                (raw.get("email") or "").strip(),
                email_normalized,
                name,
                external_id,
                referrer,
                joined_at,
            )
        )
    return rows, problems


def _chunks(items: list[str], size: int = 5000) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _existing(campaign: Campaign, emails: list[str]) -> dict[str, Participant]:
    found: dict[str, Participant] = {}
    for chunk in _chunks(emails):
        for p in Participant.objects.filter(campaign=campaign, email_normalized__in=chunk).only(
            "id", "email_normalized", "depth", "path", "joined_at", "external_id"
        ):
            found[p.email_normalized] = p
    return found


def _unique_codes(count: int) -> list[str]:
    """`count` fresh invite codes, unique among themselves and against the database."""
    length = settings.FISSION["INVITE_CODE_LENGTH"]
    codes: set[str] = set()
    while len(codes) < count:
        wanted = count - len(codes)
        fresh = {new_invite_code(length) for _ in range(wanted)} - codes
        for chunk in _chunks(list(fresh)):
            fresh -= set(Participant.objects.filter(code__in=chunk).values_list("code", flat=True))
        codes |= fresh
    return list(codes)


def participants_import(
    *, campaign: Campaign, file: TextIO, progress: Callable[[int], None] | None = None
) -> ImportResult:
    """Import the CSV in `file` into `campaign`, all or nothing.

    Rows whose email is already in the campaign are skipped (so a re-run is harmless);
    any bad row aborts the whole import with every problem listed by line number.
    """
    reader = csv.DictReader(file)
    missing = [c for c in ("email",) if c not in (reader.fieldnames or [])]
    unknown = [c for c in (reader.fieldnames or []) if c not in COLUMNS]
    if missing or unknown:
        raise ImportFailed(
            [(1, f"the header must name the columns {', '.join(COLUMNS)}"
                 + (f"; missing {', '.join(missing)}" if missing else "")
                 + (f"; unknown {', '.join(unknown)}" if unknown else ""))]
        )  # fmt: skip
    rows, problems = _parse(reader, lambda: reader.line_num)
    by_email = {r.email_normalized: r for r in rows}
    wanted = list({*by_email, *(r.referrer for r in rows if r.referrer)})
    existing = _existing(campaign, wanted)
    external_ids: list[str] = [r.external_id for r in rows if r.external_id]
    taken_external = {
        e: email
        for chunk in _chunks(external_ids)
        for e, email in Participant.objects.filter(
            campaign=campaign, external_id__in=chunk
        ).values_list("external_id", "email_normalized")
    }
    new_rows = [r for r in rows if r.email_normalized not in existing]
    for r in new_rows:
        if r.external_id in taken_external:
            problems.append(
                (r.line, f"external_id {r.external_id!r} belongs to another participant")
            )
        if r.referrer and r.referrer not in by_email and r.referrer not in existing:
            problems.append(
                (r.line, f"referrer {r.referrer} is neither in the file nor in the campaign")
            )

    # Depth by walking up each chain; a chain that comes back on itself is a cycle.
    for r in new_rows:
        if r.depth >= 0:
            continue
        chain: list[Row] = []
        node: Row | None = r
        while node is not None and node.depth < 0 and node not in chain:
            chain.append(node)
            parent = node.referrer
            node = by_email.get(parent) if parent and parent not in existing else None
        if node is not None and node in chain:
            problems.append((node.line, f"the referrers form a cycle through {node.email}"))
            for c in chain:
                c.depth = 0  # mark visited; the import fails anyway
            continue
        for c in reversed(chain):
            parent_email = c.referrer
            if parent_email in existing:
                c.depth = existing[parent_email].depth + 1
            elif parent_email in by_email:
                c.depth = by_email[parent_email].depth + 1
            else:  # a root, or an unknown referrer already reported
                c.depth = 0
    for r in new_rows:
        parent_joined = None
        if r.referrer in existing:
            parent_joined = existing[r.referrer].joined_at
        elif r.referrer in by_email:
            parent_joined = by_email[r.referrer].joined_at
        if parent_joined is not None and r.joined_at < parent_joined:
            problems.append((r.line, "joined_at is before their referrer joined"))
    if problems:
        raise ImportFailed(problems)

    new_rows.sort(key=lambda r: r.depth)
    placed: dict[str, tuple[int, str]] = {
        e: (p.pk, p.path_for_children) for e, p in existing.items()
    }
    codes = iter(_unique_codes(len(new_rows)))
    with transaction.atomic():
        for start in range(0, len(new_rows), BATCH):
            batch = new_rows[start : start + BATCH]
            # A batch may hold parents and their children: split it where a row's
            # referrer is not yet placed.
            while batch:
                ready = [r for r in batch if not r.referrer or r.referrer in placed]
                batch = [r for r in batch if r.referrer and r.referrer not in placed]
                objs = [
                    Participant(
                        campaign=campaign,
                        email=r.email,
                        email_normalized=r.email_normalized,
                        name=r.name,
                        external_id=r.external_id,
                        referrer_id=placed[r.referrer][0] if r.referrer else None,
                        depth=r.depth,
                        path=placed[r.referrer][1] if r.referrer else "",
                        code=next(codes),
                        token=new_token(),
                        channel="import",
                        consent_at=r.joined_at,
                        consent_version="import",
                        joined_at=r.joined_at,
                    )
                    for r in ready
                ]
                created = Participant.objects.bulk_create(objs)
                for r, p in zip(ready, created, strict=True):
                    placed[r.email_normalized] = (p.pk, p.path_for_children)
                if progress:
                    progress(len(created))
    return ImportResult(created=len(new_rows), skipped=len(rows) - len(new_rows))
