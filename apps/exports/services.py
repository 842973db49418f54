"""Exports: writing the finance report to a file (the command and the job), asking for a
background export, running it; each logged in the finance log with who and when."""

from __future__ import annotations

import csv
import io
import logging
import secrets
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from functools import partial
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, User
from django.core.files import File
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.common.errors import NotFound
from apps.rewards.models import FinanceAction
from apps.rewards.payouts import finance_log

from . import tasks
from .formats import copy_csv, csv_chunks, escape_text, write_report
from .models import ExportJob, ExportStatus
from .reconciliation import COLUMNS as RECONCILIATION_COLUMNS
from .reconciliation import Line
from .report import Progress, ReportFilters, Totals, report_filters, report_rows

logger = logging.getLogger(__name__)


def user_actor(user: AbstractBaseUser) -> str:
    return f"admin:{user.get_username()}"


def report_export(
    *,
    filters: ReportFilters,
    fmt: str,
    file: IO[bytes],
    actor: str,
    progress: Progress | None = None,
) -> Totals:
    """Write the report to `file` and log it; return its totals."""
    if fmt == "csv" and connection.vendor == "postgresql":
        totals = copy_csv(filters, file, progress)
    else:
        totals = write_report(report_rows(filters, progress=progress), fmt, file)
    finance_log(
        action=FinanceAction.REPORT_EXPORTED,
        actor=actor,
        batch=filters.batch,
        format=fmt,
        filters=filters.as_json(),
        rows=totals.rows,
        totals=totals.as_json(),
    )
    return totals


def report_stream(*, filters: ReportFilters, actor: str, expected_rows: int) -> Iterator[bytes]:
    """The CSV as chunks for a streaming response, logged now (the response is sent
    after this returns, so the log names the rows counted when asked)."""
    finance_log(
        action=FinanceAction.REPORT_EXPORTED,
        actor=actor,
        batch=filters.batch,
        format="csv",
        filters=filters.as_json(),
        rows=expected_rows,
        streamed=True,
    )
    return csv_chunks(report_rows(filters), Totals())


def export_job_request(
    *, filters: ReportFilters, fmt: str, user: User, expected_rows: int
) -> ExportJob:
    """Queue a background export; the worker writes the file (export_job_run)."""
    job = ExportJob.objects.create(
        format=fmt, filters=filters.as_json(), requested_by=user, row_count=expected_rows
    )
    finance_log(
        action=FinanceAction.EXPORT_REQUESTED,
        actor=user_actor(user),
        batch=filters.batch,
        job=job.pk,
        format=fmt,
        filters=filters.as_json(),
        rows=expected_rows,
    )
    transaction.on_commit(lambda: tasks.run_export_job.delay(job.pk))
    return job


def _claim(job_id: int) -> ExportJob | None:
    """Take the job (a conditional UPDATE, so two deliveries run it once). A job left
    running longer than its time limit (its worker died) may be taken again."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.FISSION["EXPORT_JOB_TIME_LIMIT"])
    claimed = ExportJob.objects.filter(
        Q(status=ExportStatus.QUEUED) | Q(status=ExportStatus.RUNNING, started_at__lt=stale),
        pk=job_id,
    ).update(status=ExportStatus.RUNNING, started_at=now, progress=0, error="")
    return ExportJob.objects.select_related("requested_by").get(pk=job_id) if claimed else None


def export_job_run(*, job_id: int) -> None:
    """Write the job's file to default storage, with progress, totals and the log."""
    job = _claim(job_id)
    if job is None:
        return
    user = job.requested_by
    actor = f"export job #{job.pk} for " + (user_actor(user) if user else "a deleted user")

    def progress(rows: int) -> None:
        ExportJob.objects.filter(pk=job_id).update(progress=F("progress") + rows)

    try:
        filters = report_filters(**_filter_arguments(job.filters))
        with tempfile.TemporaryFile() as handle:
            totals = report_export(
                filters=filters, fmt=job.format, file=handle, actor=actor, progress=progress
            )
            handle.seek(0)
            name = f"rewards-{job.pk}-{secrets.token_hex(8)}.{job.format}"
            job.file.save(name, File(handle), save=False)
    except Exception as exc:
        logger.exception("export job %s failed", job_id)
        ExportJob.objects.filter(pk=job_id).update(
            status=ExportStatus.FAILED, finished_at=timezone.now(), error=str(exc)[:2000]
        )
        return
    ExportJob.objects.filter(pk=job_id).update(
        status=ExportStatus.DONE,
        file=job.file.name,
        finished_at=timezone.now(),
        row_count=totals.rows,
        progress=totals.rows,
        totals=totals.as_json(),
    )


def _filter_arguments(stored: dict[str, Any]) -> dict[str, Any]:
    return {
        "campaign": stored.get("campaign"),
        "date_from": stored.get("from"),
        "date_to": stored.get("to"),
        "state": stored.get("state"),
        "date_field": stored.get("date_field"),
        "batch": stored.get("batch"),
    }


def export_job_file(*, job_id: int, actor: str) -> ExportJob:
    """A finished job whose file is to be handed out; the download is logged."""
    job = ExportJob.objects.filter(pk=job_id, status=ExportStatus.DONE).first()
    if job is None or not job.file:
        raise NotFound(f"No finished export #{job_id}.", code="export_not_found")
    finance_log(
        action=FinanceAction.EXPORT_DOWNLOADED,
        actor=actor,
        job=job.pk,
        format=job.format,
        rows=job.row_count,
    )
    return job


def export_files_purge(*, now: datetime | None = None) -> int:
    """Delete the files of background exports finished more than EXPORT_RETENTION_DAYS
    ago (they name participants) and mark their jobs expired; each in the finance log.
    Returns how many. Safe to run twice, or at once: a job is taken by a conditional
    UPDATE before its file is deleted."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.FISSION["EXPORT_RETENTION_DAYS"])
    old = ExportJob.objects.filter(status=ExportStatus.DONE, finished_at__lt=cutoff)
    purged = 0
    for job in old.order_by("pk").iterator():
        with transaction.atomic():
            taken = ExportJob.objects.filter(pk=job.pk, status=ExportStatus.DONE).update(
                status=ExportStatus.EXPIRED, file=""
            )
            if not taken:
                continue
            finance_log(
                action=FinanceAction.EXPORT_EXPIRED,
                actor="retention",
                job=job.pk,
                format=job.format,
                rows=job.row_count,
                finished_at=job.finished_at,
            )
            # After the commit: a rollback must not leave a job that points at no file.
            name = str(job.file.name)  # a done job has one (exportjob_done_has_file)
            transaction.on_commit(partial(job.file.storage.delete, name), robust=True)
        purged += 1
    return purged


def reconciliation_csv(lines: Iterable[Line], *, actor: str, period: dict[str, Any]) -> bytes:
    """The reconciliation as CSV (UTF-8 with a BOM, like the report), logged."""
    lines = list(lines)
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer)
    writer.writerow(RECONCILIATION_COLUMNS)
    for line in lines:
        values = line.values()
        writer.writerow([escape_text(values[0]), *values[1:]])
    finance_log(
        action=FinanceAction.RECONCILIATION_EXPORTED, actor=actor, lines=len(lines), **period
    )
    return buffer.getvalue().encode("utf-8")
