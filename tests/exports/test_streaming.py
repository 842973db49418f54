"""The report streams: resident memory stays flat however many rows there are (100,000
here; a million in the benchmark suite). Each export runs in a fresh process, whose peak
resident size is read at its end, so nothing else in the test run blurs it."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from apps.exports.report import report_filters, report_rows
from apps.rewards.models import Conversion, Reward
from tests.factories import CampaignFactory, ParticipantFactory

SMALL, MEDIUM, LARGE = 10_000, 20_000, 100_000
# What 10,000 rows held in memory at once would take several times over.
FLAT = 10 * 1024  # KiB

# The child prints its peak resident size: VmHWM, the high-water mark of this process's
# own memory (ru_maxrss would also count the parent's, inherited across fork and exec).
CHILD = """
import re, sys
import django
django.setup()
from django.core.management import call_command
call_command("export_rewards", *sys.argv[1:])
with open("/proc/self/status") as status:
    print(re.search(r"VmHWM:\\s+(\\d+) kB", status.read()).group(1))
"""


def _rewards(slug: str, count: int) -> None:
    """`count` approved tier rewards of one participant in a new campaign."""
    campaign = CampaignFactory(slug=slug)
    person = ParticipantFactory(campaign=campaign)
    conversion = Conversion.objects.create(campaign=campaign, participant=person, type="signup")
    now = timezone.now()
    if connection.vendor != "postgresql":
        Reward.objects.bulk_create(
            Reward(
                campaign=campaign, participant=person, source="tier", tier_threshold=n,
                conversion=conversion, amount=Decimal("12.34"), currency="CNY",
                state="approved", created_at=now, updated_at=now, approved_at=now,
            )
            for n in range(1, count + 1)
        )  # fmt: skip
        return
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO rewards_reward (
                campaign_id, participant_id, source, tier_threshold, conversion_id, order_id,
                kind, description, amount, currency, state, reason, created_at, updated_at,
                approved_at, payout_reference)
            SELECT %s, %s, 'tier', g, %s, '', '', '', 12.34, 'CNY', 'approved', '',
                   %s, %s, %s, ''
            FROM generate_series(1, %s) AS g
            """,
            [campaign.pk, person.pk, conversion.pk, now, now, now, count],
        )


def _peak_kib(tmp_path: Path, *args: str) -> tuple[int, int]:
    """(peak resident KiB, lines written) of `export_rewards *args` in its own process."""
    db = connection.settings_dict
    url = f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    out = tmp_path / "out"
    done = subprocess.run(  # noqa: S603 (our own interpreter and arguments)
        [sys.executable, "-c", CHILD, *args, "-o", str(out)],
        cwd=settings.BASE_DIR,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    with out.open("rb") as handle:
        lines = sum(1 for _ in handle) if args[-1] == "csv" else 0
    return int(done.stdout.strip().splitlines()[-1]), lines


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="the export runs in a child process, which reaches only a PostgreSQL test database",
)
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's /proc")
def test_resident_memory_stays_flat_from_ten_thousand_to_a_hundred_thousand_rows(tmp_path):
    _rewards("small", SMALL)
    _rewards("medium", MEDIUM)
    _rewards("large", LARGE - SMALL - MEDIUM)
    small, lines = _peak_kib(tmp_path, "--campaign", "small", "--format", "csv")
    assert lines == SMALL + 1
    every, lines = _peak_kib(tmp_path, "--format", "csv")
    assert lines == LARGE + 1
    assert every - small < FLAT, f"CSV: {small} KiB for {SMALL:,} rows, {every} for {LARGE:,}"
    # XLSX costs more per row; twice the rows is enough to tell streaming from not.
    small, _ = _peak_kib(tmp_path, "--campaign", "small", "--format", "xlsx")
    medium, _ = _peak_kib(tmp_path, "--campaign", "medium", "--format", "xlsx")
    assert medium - small < FLAT, f"XLSX: {small} KiB for {SMALL:,} rows, {medium} for {MEDIUM:,}"


@pytest.mark.django_db
def test_rows_are_read_chunk_by_chunk(db):
    _rewards("small", SMALL)
    seen: list[int] = []
    rows = sum(1 for _ in report_rows(report_filters(), progress=seen.append))
    assert rows == sum(seen) == SMALL
    assert max(seen) <= 2_000  # told chunk by chunk, not once at the end
