"""manage.py export_rewards: the columns of DESIGN.md, CSV and XLSX, filters, bad input."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import openpyxl
import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from apps.exports.formats import copy_csv, escape_text, write_report
from apps.exports.report import ReportFilters, report_filters, report_rows
from apps.referrals.models import Participant
from apps.rewards.models import FinanceLog, PayoutBatch, Reward

pytestmark = pytest.mark.django_db

COLUMNS = [
    "reward_id", "campaign", "participant_id", "external_id", "participant_name", "source",
    "level", "tier_threshold", "order_id", "amount", "currency", "state", "created_at",
    "approved_at", "paid_at", "payout_batch",
]  # fmt: skip


def export(tmp_path: Path, *args: str, name: str = "rewards.csv") -> Path:
    out = tmp_path / name
    call_command("export_rewards", *args, "-o", str(out), stdout=io.StringIO())
    return out


def read_csv(path: Path) -> list[dict[str, str]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "UTF-8 with a byte-order mark"
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))


def database_totals(**filters: object) -> dict[tuple[str, str], Decimal]:
    rows = Reward.objects.filter(**filters).values("currency", "state").annotate(s=Sum("amount"))
    return {(r["currency"], r["state"]): r["s"] for r in rows}


def test_the_csv_has_the_design_columns_in_order_and_a_bom(ledger, tmp_path):
    path = export(tmp_path)
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf" + ",".join(COLUMNS).encode() + b"\r\n")
    rows = read_csv(path)
    assert len(rows) == Reward.objects.count()
    assert [int(r["reward_id"]) for r in rows] == sorted(
        Reward.objects.values_list("pk", flat=True)
    )


def test_each_row_says_what_the_database_says(ledger, tmp_path, bob):
    rows = {int(r["reward_id"]): r for r in read_csv(export(tmp_path))}
    tier = Reward.objects.get(participant=bob, source="tier", adjusts__isnull=True)
    row = rows[tier.pk]
    assert row["campaign"] == "shop"
    assert row["participant_id"] == str(bob.pk)
    assert (row["external_id"], row["participant_name"]) == ("'@u-1", "'+Bob")
    assert (row["source"], row["level"], row["tier_threshold"]) == ("tier", "", "2")
    assert (row["amount"], row["currency"], row["state"]) == ("50.00", "CNY", "paid")
    batch = PayoutBatch.objects.get()
    assert row["payout_batch"] == str(batch.pk)
    # ISO 8601 in the site's time zone (Asia/Shanghai in the tests' settings)
    assert row["paid_at"].endswith("+08:00")
    assert row["paid_at"] == timezone.localtime(tier.paid_at).isoformat(timespec="seconds")
    assert row["approved_at"] == timezone.localtime(tier.approved_at).isoformat(timespec="seconds")
    commission = Reward.objects.filter(participant=bob, source="commission").first()
    assert rows[commission.pk]["level"] == "1"
    assert rows[commission.pk]["order_id"] in ("o-1", "'=o-2")


def test_text_that_a_spreadsheet_would_run_is_escaped(ledger, tmp_path, alice, carol, dave):
    rows = read_csv(export(tmp_path))
    names = {r["participant_id"]: r["participant_name"] for r in rows}
    assert names[str(alice.pk)] == '\'=HYPERLINK("http://x")'
    assert names[str(carol.pk)] == "'-Carol\x07"
    assert names[str(dave.pk)] == "'\tDave"
    external = {r["participant_id"]: r["external_id"] for r in rows}
    assert external[str(dave.pk)] == "'\ru-4"
    assert {r["order_id"] for r in rows} >= {"'=o-2", "o-1"}
    for value in ("=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert escape_text(value) == "'" + value
    for value in ("Alice", "1-2", "a=b", "", "'quoted", " =x"):
        assert escape_text(value) == value


def test_negative_amounts_stay_plain_numbers(ledger, tmp_path):
    rows = read_csv(export(tmp_path))
    negative = [r["amount"] for r in rows if r["amount"].startswith("-")]
    assert sorted(negative) == sorted(
        f"{a:.2f}" for a in Reward.objects.filter(amount__lt=0).values_list("amount", flat=True)
    )
    assert "-50.00" in negative and "-20.00" in negative
    for row in rows:
        Decimal(row["amount"])  # every amount is a number, none prefixed


def test_csv_totals_equal_the_database(ledger, tmp_path):
    sums: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in read_csv(export(tmp_path)):
        sums[(row["currency"], row["state"])] += Decimal(row["amount"])
    assert dict(sums) == database_totals()
    assert {c for c, _s in sums} == {"CNY", "USD"}


def test_xlsx_rows_numbers_and_totals_equal_the_database(ledger, tmp_path, alice):
    path = export(tmp_path, "--format", "xlsx", name="rewards.xlsx")
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["Rewards", "Totals"]
    rows = list(book["Rewards"].iter_rows(values_only=True))
    assert list(rows[0]) == COLUMNS
    assert len(rows) - 1 == Reward.objects.count()
    amounts = [row[9] for row in rows[1:]]
    assert all(isinstance(a, int | float) for a in amounts), "amounts are numbers"
    assert min(amounts) == -50
    by_id = {row[0]: row for row in rows[1:]}
    alices = [row for row in rows[1:] if row[2] == alice.pk]
    assert alices[0][4] == '\'=HYPERLINK("http://x")'  # escaped, never a formula
    carol_row = next(row for row in rows[1:] if str(row[4]).startswith("'-Carol"))
    assert carol_row[4] == "'-Carol"  # a control character XML cannot hold is dropped
    reward = Reward.objects.filter(state="paid").first()
    assert by_id[reward.pk][14] is not None and by_id[reward.pk][14].tzinfo is None
    totals = list(book["Totals"].iter_rows(values_only=True))
    assert list(totals[0]) == ["currency", "state", "rows", "amount"]
    found = {(c, s): Decimal(str(a)).quantize(Decimal("0.01")) for c, s, _n, a in totals[1:]}
    assert found == database_totals()
    counts = {(c, s): n for c, s, n, _a in totals[1:]}
    assert sum(counts.values()) == Reward.objects.count()


def test_the_format_follows_the_file_name(ledger, tmp_path):
    path = export(tmp_path, name="report.xlsx")
    assert path.read_bytes()[:2] == b"PK"  # a zip: XLSX


def test_filters_campaign_state_dates_and_batch(ledger, tmp_path):
    assert {r["campaign"] for r in read_csv(export(tmp_path, "--campaign", "usd"))} == {"usd"}
    paid = read_csv(export(tmp_path, "--state", "paid"))
    assert paid and {r["state"] for r in paid} == {"paid"}
    assert len(paid) == Reward.objects.filter(state="paid").count()
    batch = PayoutBatch.objects.get()
    lines = read_csv(export(tmp_path, "--batch", str(batch.pk)))
    assert {int(r["reward_id"]) for r in lines} == set(batch.lines.values_list("pk", flat=True))
    today = timezone.localdate(Reward.objects.first().created_at).isoformat()
    assert len(read_csv(export(tmp_path, "--from", today, "--to", today))) >= 1
    assert read_csv(export(tmp_path, "--from", "2001-01-01", "--to", "2001-01-31")) == []
    paid_since = read_csv(export(tmp_path, "--date-field", "paid", "--from", "2001-01-01"))
    assert len(paid_since) == len(paid)


def test_every_export_is_logged_with_who_and_when(ledger, tmp_path):
    export(tmp_path, "--state", "approved")
    entry = FinanceLog.objects.filter(action="report_exported").get()
    assert entry.actor.startswith("cli:")
    assert entry.details["filters"]["state"] == "approved"
    assert entry.details["rows"] == Reward.objects.filter(state="approved").count()
    assert entry.created_at is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-03-02", "--to", "2026-03-01"], "to must not be before from"),
        (["--from", "2026-02-30"], "from must be a date"),
        (["--from", ""], ""),  # empty: no bound, not an error
        (["--campaign", "nope"], "no campaign 'nope'"),
        (["--state", "owed"], "state must be one of"),
        (["--date-field", "refunded"], "date_field must be one of"),
        (["--batch", "999"], "no payout batch"),
    ],
)
def test_bad_filters_are_refused_and_nothing_is_written(tmp_path, db, args, message):
    out = tmp_path / "r.csv"
    if not message:
        call_command("export_rewards", *args, "-o", str(out), stdout=io.StringIO())
        assert out.exists()
        return
    with pytest.raises(CommandError, match=message):
        call_command("export_rewards", *args, "-o", str(out), stdout=io.StringIO())
    assert not out.exists()
    assert not FinanceLog.objects.exists()


def test_an_unknown_format_and_an_unwritable_path_are_refused(tmp_path, db):
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("export_rewards", "--format", "pdf", "-o", str(tmp_path / "r.pdf"))
    with pytest.raises(CommandError, match="Cannot write"):
        call_command("export_rewards", "-o", str(tmp_path / "missing" / "r.csv"))


def test_an_empty_report_is_the_header_alone(tmp_path, db):
    path = export(tmp_path)
    assert path.read_bytes() == b"\xef\xbb\xbf" + ",".join(COLUMNS).encode() + b"\r\n"
    book = openpyxl.load_workbook(export(tmp_path, name="e.xlsx"))
    assert list(book["Totals"].iter_rows(values_only=True)) == [
        ("currency", "state", "rows", "amount")
    ]


def test_the_database_writes_the_csv_the_python_rows_would(ledger, alice, bob, carol, dave):
    """On PostgreSQL the command's CSV comes from COPY (copy_csv); the streaming download
    and SQLite write it row by row in Python. Both must give the same bytes: quotes,
    commas and line breaks in names, formula escapes, empty and missing cells, minor
    units (JPY 0, KWD 3 decimals, rounded half up), negative amounts, local times."""
    if connection.vendor != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    Participant.objects.filter(pk=alice.pk).update(name='Ann "the boss", Lee\nline two')
    Participant.objects.filter(pk=bob.pk).update(name="", external_id="")
    Participant.objects.filter(pk=carol.pk).update(name="张三, =x", external_id='"q"')
    Participant.objects.filter(pk=dave.pk).update(name="\\.", external_id="\r\n")
    # Paid entries never change (a trigger): the others are made into the odd cases.
    unpaid = Reward.objects.exclude(state="paid").order_by("id")
    positive = list(unpaid.filter(amount__gt=0).values_list("pk", flat=True))
    negative = list(unpaid.filter(amount__lt=0).values_list("pk", flat=True))
    assert len(positive) >= 2 and len(negative) >= 2
    Reward.objects.filter(pk=positive[0]).update(currency="JPY", amount=Decimal("1234.5000"))
    Reward.objects.filter(pk=positive[1]).update(currency="KWD", amount=Decimal("1.2345"))
    Reward.objects.filter(pk=negative[0]).update(amount=Decimal("-0.0040"))
    Reward.objects.filter(pk=negative[1]).update(amount=Decimal("-1.2350"))
    for filters in (
        ReportFilters(),
        report_filters(state="paid"),
        report_filters(campaign="shop", date_from="2000-01-01", date_field="approved"),
    ):
        copied = io.BytesIO()
        totals = copy_csv(filters, copied)
        python = io.BytesIO()
        expected = write_report(report_rows(filters), "csv", python)
        assert copied.getvalue() == python.getvalue()
        assert totals.items() == expected.items() and totals.rows == expected.rows
    everything = io.BytesIO()
    copy_csv(ReportFilters(), everything)
    text = everything.getvalue().decode("utf-8-sig")
    assert '"Ann ""the boss"", Lee\nline two"' in text
    assert ",1235,JPY," in text and ",1.235,KWD," in text and ",-0.00,CNY," in text


def test_the_copy_leaves_the_connection_reading_times_right(ledger):
    """copy_csv formats times in the site's zone; Django reads times as the connection's
    zone, so the caller's transaction must get it back afterwards."""
    if connection.vendor != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    reward = Reward.objects.filter(paid_at__isnull=False).first()
    copy_csv(ReportFilters(), io.BytesIO())
    assert Reward.objects.get(pk=reward.pk).paid_at == reward.paid_at


def test_the_copy_runs_without_jit_with_the_export_work_mem_and_gives_both_back(
    ledger, tmp_path, settings, monkeypatch
):
    """The COPY is planned with jit off and EXPORT_WORK_MEM (its sort stays in memory),
    set for that statement only: inside a caller's transaction the session's own values
    are back afterwards."""
    if connection.vendor != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    settings.FISSION = {**settings.FISSION, "EXPORT_WORK_MEM": "7MB"}
    seen: list[tuple[str, str]] = []
    copy = psycopg.Cursor.copy

    def recording_copy(cursor, statement, *args, **kwargs):  # type: ignore[no-untyped-def]
        cursor.execute("SELECT current_setting('jit'), current_setting('work_mem')")
        seen.append(cursor.fetchone())
        return copy(cursor, statement, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "copy", recording_copy)

    def session() -> tuple[str, str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('jit'), current_setting('work_mem')")
            return cursor.fetchone()

    with transaction.atomic():
        before = session()
        copy_csv(ReportFilters(), io.BytesIO())
        assert session() == before != ("off", "7MB")
    assert seen == [("off", "7MB")]
    # The command goes through the same statement.
    path = export(tmp_path)
    assert len(read_csv(path)) == Reward.objects.count()
    assert seen[-1] == ("off", "7MB") and len(seen) == 2


@pytest.mark.parametrize("value", ["lots", "64", "0MB", "64 MB", "1TB"])
def test_a_work_mem_postgresql_would_refuse_stops_the_settings(value):
    """Refused when the settings load, rather than by PostgreSQL in the middle of an
    export."""
    result = subprocess.run(
        [sys.executable, "-c", "import config.settings"],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "EXPORT_WORK_MEM": value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "EXPORT_WORK_MEM must be a size such as 64MB" in result.stderr
