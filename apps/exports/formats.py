"""The finance report as CSV and XLSX, written as the rows stream past.

CSV: UTF-8 with a byte-order mark (so spreadsheet programs read Chinese names), RFC 4180
quoting, amounts as plain numbers in the currency's minor unit ("-2.00"), times in ISO
8601 with the site's UTC offset. XLSX (openpyxl's write-only mode, which writes each row
to disk as it comes): the rows on the first sheet with amounts as numbers and times as
local date-times, the totals per currency and state on the second.

Text that a spreadsheet would run as a formula (starting with =, +, -, @, a tab or a
carriage return: OWASP's "CSV injection") gets a leading apostrophe in both formats.
Amounts and ids are numbers and never escaped, so a negative amount stays a number.

On PostgreSQL the CSV file is written by the database itself: `copy_csv` has it format
every cell exactly as `_csv_row` would (the same escaping, minor units and ISO times) and
streams the rows with COPY ... TO STDOUT (FORMAT csv), near the speed of a bare COPY and
with flat memory. The rows in Python (`csv_chunks`) remain for the streaming download and
for SQLite; tests hold the two to the same bytes.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import IO, Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from apps.common.money import format_amount, minor_units, minor_units_table, quantize
from apps.rewards.payouts import Payee

from .report import (
    COLUMNS,
    REPORT_FIELDS,
    Progress,
    ReportFilters,
    Row,
    Totals,
    report_queryset,
    report_totals,
)

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Characters XML 1.0 cannot hold (openpyxl refuses them); dropped from XLSX text.
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
# CSV rows per chunk of a streaming response.
ROWS_PER_CHUNK = 500
TOTALS_COLUMNS = ("currency", "state", "rows", "amount")
_WIDTHS = {"B": 16, "D": 16, "E": 24, "I": 18, "M": 20, "N": 20, "O": 20}


def escape_text(value: str) -> str:
    """`value`, with a leading ' when a spreadsheet would run it as a formula."""
    return "'" + value if value.startswith(FORMULA_START) else value


def _text(value: str | None) -> str:
    return "" if value is None else escape_text(value)


def _iso(value: datetime | None) -> str:
    return "" if value is None else timezone.localtime(value).isoformat(timespec="seconds")


def _csv_row(row: Row) -> list[Any]:
    (
        reward_id, campaign, participant_id, external_id, name, source, level, threshold,
        order_id, amount, currency, state, created_at, approved_at, paid_at, batch,
    ) = row  # fmt: skip
    return [
        reward_id, _text(campaign), participant_id, _text(external_id), _text(name),
        _text(source), level, threshold, _text(order_id), format_amount(amount, currency),
        _text(currency), _text(state), _iso(created_at), _iso(approved_at), _iso(paid_at),
        batch,
    ]  # fmt: skip


def csv_chunks(
    rows: Iterable[Row], totals: Totals, *, header: Iterable[str] = COLUMNS
) -> Iterator[bytes]:
    """The CSV in chunks of bytes, BOM first, adding each row to `totals`: the body of a
    StreamingHttpResponse, or written to a file by `write_report`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(header)
    pending = 0
    for row in rows:
        totals.add(row)
        writer.writerow(_csv_row(row))
        pending += 1
        if pending == ROWS_PER_CHUNK:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    yield buffer.getvalue().encode("utf-8")


# The report's cells, as copy_csv names them: one per COLUMNS entry, in order.
_COPY_NAMES = (
    "reward_id", "campaign", "participant_id", "external_id", "name", "source", "level",
    "tier_threshold", "order_id", "amount", "currency", "state", "created_at", "approved_at",
    "paid_at", "batch",
)  # fmt: skip
_COPY_TEXT = {"campaign", "external_id", "name", "source", "order_id", "currency", "state"}
_COPY_TIMES = {"created_at", "approved_at", "paid_at"}
# Rows per write (and per progress report) of copy_csv.
COPY_ROWS_PER_WRITE = 2000


def _copy_cell(name: str, params: list[Any]) -> str:
    """The SQL that writes cell `name` of the report's row `r` as `_csv_row` does. An
    empty text is written as NULL, because COPY quotes an empty string ("") where the
    csv module writes nothing."""
    column = f"r.{name}"
    if name in _COPY_TEXT:
        params.extend(FORMULA_START)
        starts = ", ".join(["%s"] * len(FORMULA_START))
        return (
            f"NULLIF(CASE WHEN left({column}, 1) IN ({starts}) THEN '''' || {column} "
            f"ELSE {column} END, '')"
        )
    if name in _COPY_TIMES:
        # In the session's time zone, the site's (set_config in copy_csv); to the second,
        # cut like isoformat(timespec="seconds"), with the offset as +HH:MM.
        return f"""to_char({column}, 'YYYY-MM-DD"T"HH24:MI:SSTZH:TZM')"""
    if name == "amount":
        # Literals, not parameters (the expression is used twice): our own table of
        # three-letter codes and small numbers.
        cases = " ".join(
            f"WHEN '{currency}' THEN {int(places)}"
            for currency, places in minor_units_table().items()
            if currency.isalpha()
        )
        places = f"CASE upper(r.currency) {cases} ELSE 2 END"
        rounded = f"round(r.amount, {places})"
        # Decimal keeps the sign of a negative amount that rounds to zero ("-0.00").
        return f"CASE WHEN r.amount < 0 AND {rounded} = 0 THEN '-' ELSE '' END || {rounded}"
    return column


# What copy_csv sets for its statement, in this order:
# - TimeZone: the site's, in which the times are written;
# - jit: off. The formatting makes the statement costly enough for PostgreSQL to compile
#   it with LLVM's inlining and optimisation, which took longer (0.8 s of CPU on the
#   benchmark's million rows) than the compiled code saves on one pass over the rows;
# - work_mem: EXPORT_WORK_MEM, so that the sort by id stays in memory instead of writing
#   temporary files (50 MB per worker process at a million rows).
_EXPORT_SETTINGS = ("TimeZone", "jit", "work_mem")
_SHOW_SETTINGS = "SELECT " + ", ".join(f"current_setting('{n}')" for n in _EXPORT_SETTINGS)
_SET_SETTINGS = "SELECT " + ", ".join(f"set_config('{n}', %s, true)" for n in _EXPORT_SETTINGS)


def copy_csv(filters: ReportFilters, file: IO[bytes], progress: Progress | None = None) -> Totals:
    """Write the report as CSV to `file` with PostgreSQL's COPY; return its totals.

    The totals come from the database in the same snapshot as the rows (one REPEATABLE
    READ transaction when this is the outermost one), so they match what was written;
    the rows written are counted, and a difference is an error rather than a wrong file.
    """
    queryset = report_queryset(filters).order_by().values_list(*REPORT_FIELDS)
    inner, inner_params = queryset.query.sql_with_params()
    params: list[Any] = []
    cells = ", ".join(_copy_cell(name, params) for name in _COPY_NAMES)
    # Every name here is ours; the filters' values stay parameters.
    sql = (
        f"COPY (SELECT {cells} FROM ({inner}) AS r({', '.join(_COPY_NAMES)}) "  # noqa: S608
        "ORDER BY r.reward_id) TO STDOUT (FORMAT csv)"
    )
    outermost = not connection.in_atomic_block
    written = 0
    with transaction.atomic(), connection.cursor() as cursor:
        if outermost:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        # The settings this statement needs, each given back at the end: this may be
        # inside a caller's transaction, and an error rolls them back with it.
        cursor.execute(_SHOW_SETTINGS)
        saved = cursor.fetchone()
        cursor.execute(
            _SET_SETTINGS,
            [timezone.get_current_timezone_name(), "off", settings.FISSION["EXPORT_WORK_MEM"]],
        )
        totals = Totals.of(report_totals(filters))
        file.write(("\ufeff" + ",".join(COLUMNS) + "\r\n").encode("utf-8"))
        pending: list[bytes] = []
        # Bound here: COPY takes no server-side parameters, nor Django's debug cursor any.
        statement = cursor.mogrify(sql, [*params, *inner_params])
        with cursor.copy(statement) as copy:
            for row in copy:
                pending.append(bytes(row))
                if len(pending) == COPY_ROWS_PER_WRITE:
                    file.write(_crlf(pending))
                    written += len(pending)
                    if progress is not None:
                        progress(len(pending))
                    pending.clear()
        if pending:
            file.write(_crlf(pending))
            written += len(pending)
            if progress is not None:
                progress(len(pending))
        # Django reads times as the connection's own zone, which the first of these was.
        cursor.execute(_SET_SETTINGS, list(saved))
    if written != totals.rows:
        raise RuntimeError(
            f"The report changed while it was written ({written} rows, {totals.rows} in "
            "its totals): export it again."
        )
    return totals


def _crlf(rows: list[bytes]) -> bytes:
    """COPY's rows (one per message, each ending in a newline) with the csv module's line
    ends (CRLF). A newline inside a quoted cell stays as it is: without a quote in the
    chunk every newline ends a row, else only each row's last byte is replaced."""
    chunk = b"".join(rows)
    if b'"' not in chunk:
        return chunk.replace(b"\n", b"\r\n")
    return b"".join(row[:-1] + b"\r\n" for row in rows)


PAYEES_COLUMNS = (
    "participant_id",
    "external_id",
    "participant_name",
    "currency",
    "amount",
    "lines",
)


def payees_chunks(payees: Iterable[Payee]) -> Iterator[bytes]:
    """A payout batch's payees as CSV (BOM, escaped like the report): what to transfer to
    whom, one line per participant."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(PAYEES_COLUMNS)
    for index, payee in enumerate(payees, 1):
        writer.writerow([
            payee.participant_id, _text(payee.external_id), _text(payee.name),
            _text(payee.currency), format_amount(payee.amount, payee.currency), payee.lines,
        ])  # fmt: skip
        if index % ROWS_PER_CHUNK == 0:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def _xlsx_text(value: str | None) -> str | None:
    return None if value is None else escape_text(_XML_ILLEGAL.sub("", value))


def _naive(value: datetime | None) -> datetime | None:
    # Excel has no time zones: local wall-clock time, as the CSV's (without the offset).
    return None if value is None else timezone.localtime(value).replace(tzinfo=None)


_NUMBER_FORMATS = {0: "0", 2: "0.00", 3: "0.000"}


def _amount_cell(sheet: WriteOnlyWorksheet, amount: Decimal, currency: str) -> WriteOnlyCell:
    cell = WriteOnlyCell(sheet, value=quantize(amount, currency))
    cell.number_format = _NUMBER_FORMATS.get(minor_units(currency), "0.00")
    return cell


def _header(sheet: WriteOnlyWorksheet, names: Iterable[str]) -> list[WriteOnlyCell]:
    cells = []
    for name in names:
        cell = WriteOnlyCell(sheet, value=name)
        cell.font = Font(bold=True)
        cells.append(cell)
    return cells


def write_xlsx(rows: Iterable[Row], file: IO[bytes], totals: Totals) -> None:
    workbook = Workbook(write_only=True)
    sheet: WriteOnlyWorksheet = workbook.create_sheet("Rewards")
    for column, width in _WIDTHS.items():
        sheet.column_dimensions[column].width = width
    sheet.append(_header(sheet, COLUMNS))
    for row in rows:
        totals.add(row)
        (
            reward_id, campaign, participant_id, external_id, name, source, level, threshold,
            order_id, amount, currency, state, created_at, approved_at, paid_at, batch,
        ) = row  # fmt: skip
        sheet.append([
            reward_id, _xlsx_text(campaign), participant_id, _xlsx_text(external_id),
            _xlsx_text(name), _xlsx_text(source), level, threshold, _xlsx_text(order_id),
            _amount_cell(sheet, amount, currency), _xlsx_text(currency), _xlsx_text(state),
            _naive(created_at), _naive(approved_at), _naive(paid_at), batch,
        ])  # fmt: skip
    summary: WriteOnlyWorksheet = workbook.create_sheet("Totals")
    summary.append(_header(summary, TOTALS_COLUMNS))
    for currency, state, count, amount in totals.items():
        summary.append([currency, state, count, _amount_cell(summary, amount, currency)])
    workbook.save(file)


def write_report(rows: Iterable[Row], fmt: str, file: IO[bytes]) -> Totals:
    """Write the report in `fmt` ("csv" or "xlsx") to a binary file; return its totals."""
    totals = Totals()
    if fmt == "xlsx":
        write_xlsx(rows, file, totals)
    else:
        for chunk in csv_chunks(rows, totals):
            file.write(chunk)
    return totals


CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
