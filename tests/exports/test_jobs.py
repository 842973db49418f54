"""Large reports run as a Celery job (in-process here, as with no broker): an ExportJob
row with progress, totals and the file, downloadable only by finance."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from django.core.management import call_command
from django.db.models import Sum
from django.test import Client
from django.utils import timezone

from apps.exports.models import ExportJob
from apps.exports.tasks import purge_old_export_files, run_export_job
from apps.rewards.models import FinanceLog, Reward

pytestmark = pytest.mark.django_db

REPORT = "/admin/exports/exportjob/report/"
EXPORTS = "/admin/exports/exportjob/"


@pytest.fixture(autouse=True)
def small_threshold(settings, tmp_path):
    settings.FISSION = {**settings.FISSION, "EXPORT_SYNC_MAX_ROWS": 3}
    settings.MEDIA_ROOT = tmp_path / "media"


def ask(client: Client, django_capture_on_commit_callbacks, **data: str):
    with django_capture_on_commit_callbacks(execute=True):
        return client.post(REPORT, {"date_field": "created", "format": "csv", **data})


def test_a_large_report_becomes_a_job_whose_file_finance_downloads(
    finance_client, ledger, django_capture_on_commit_callbacks, settings
):
    response = ask(finance_client, django_capture_on_commit_callbacks, format="xlsx")
    assert response.status_code == 302 and response["Location"] == EXPORTS
    job = ExportJob.objects.get()
    assert job.status == "done" and job.requested_by.username == "fiona"
    assert job.row_count == job.progress == Reward.objects.count()
    assert job.started_at <= job.finished_at
    # The file is in default storage under MEDIA_ROOT, with a name nobody can guess.
    path = Path(job.file.path)
    assert path.is_relative_to(settings.MEDIA_ROOT) and path.suffix == ".xlsx"
    assert len(path.stem.split("-")[-1]) == 16
    database = {
        (r["currency"], r["state"]): r["s"]
        for r in Reward.objects.values("currency", "state").annotate(s=Sum("amount"))
    }
    assert {(t["currency"], t["state"]): Decimal(t["amount"]) for t in job.totals} == database

    listing = finance_client.get(EXPORTS)
    download = f"{EXPORTS}{job.pk}/download/"
    assert download.encode() in listing.content
    response = finance_client.get(download)
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="rewards-export-{job.pk}.xlsx"'
    book = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    assert book["Rewards"].max_row == Reward.objects.count() + 1
    actions = list(FinanceLog.objects.order_by("id").values_list("action", "actor"))
    assert actions[-3:] == [
        ("export_requested", "admin:fiona"),
        ("report_exported", f"export job #{job.pk} for admin:fiona"),
        ("export_downloaded", "admin:fiona"),
    ]


def test_only_finance_downloads_export_files(
    finance_client, operator_client, ledger, django_capture_on_commit_callbacks
):
    ask(finance_client, django_capture_on_commit_callbacks)
    job = ExportJob.objects.get()
    download = f"{EXPORTS}{job.pk}/download/"
    assert operator_client.get(download).status_code == 403
    anonymous = Client().get(download)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    # Never a public media URL.
    assert Client().get(f"/media/{job.file.name}").status_code == 404
    assert finance_client.get(f"{EXPORTS}999/download/").status_code == 404


def test_the_job_writes_what_the_command_writes(
    finance_client, ledger, django_capture_on_commit_callbacks, tmp_path
):
    ask(finance_client, django_capture_on_commit_callbacks, campaign="shop")
    job = ExportJob.objects.get()
    out = tmp_path / "cli.csv"
    call_command("export_rewards", "--campaign", "shop", "-o", str(out), stdout=io.StringIO())
    assert Path(job.file.path).read_bytes() == out.read_bytes()
    rows = list(csv.reader(io.StringIO(out.read_text("utf-8-sig"))))
    assert len(rows) - 1 == job.row_count == Reward.objects.filter(campaign=ledger).count()


def test_running_the_task_again_does_nothing(
    finance_client, ledger, django_capture_on_commit_callbacks
):
    ask(finance_client, django_capture_on_commit_callbacks)
    job = ExportJob.objects.get()
    run_export_job(job.pk)
    again = ExportJob.objects.get()
    assert (again.file.name, again.finished_at) == (job.file.name, job.finished_at)
    assert FinanceLog.objects.filter(action="report_exported").count() == 1


def test_a_job_whose_worker_died_is_taken_again(ledger, fiona):
    job = ExportJob.objects.create(
        status="running",
        started_at=timezone.now() - timedelta(hours=2),
        filters={"campaign": "usd"},
        requested_by=fiona,
    )
    run_export_job(job.pk)
    job.refresh_from_db()
    assert job.status == "done" and job.row_count == 2


def test_a_job_that_cannot_run_says_why(fiona, db):
    job = ExportJob.objects.create(filters={"batch": 999}, requested_by=fiona)
    run_export_job(job.pk)
    job.refresh_from_db()
    assert job.status == "failed" and "no payout batch" in job.error
    assert not job.file


def test_export_files_past_their_retention_are_deleted_and_the_job_says_so(
    finance_client, ledger, django_capture_on_commit_callbacks, settings
):
    settings.FISSION = {**settings.FISSION, "EXPORT_RETENTION_DAYS": 30}
    ask(finance_client, django_capture_on_commit_callbacks)
    old = ExportJob.objects.get()
    ask(finance_client, django_capture_on_commit_callbacks, campaign="shop")
    recent = ExportJob.objects.exclude(pk=old.pk).get()
    ExportJob.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=31))
    old_path, recent_path = Path(old.file.path), Path(recent.file.path)

    with django_capture_on_commit_callbacks(execute=True):
        assert purge_old_export_files() == 1
    old.refresh_from_db()
    recent.refresh_from_db()
    assert (old.status, old.file.name) == ("expired", "")
    # What the job was stays: its filters, rows and totals.
    assert old.row_count == Reward.objects.count() and old.totals
    assert not old_path.exists() and recent_path.exists() and recent.status == "done"
    expired = FinanceLog.objects.get(action="export_expired")
    assert (expired.actor, expired.details["job"]) == ("retention", old.pk)

    listing = finance_client.get(EXPORTS)
    assert b"deleted after 30 days" in listing.content
    assert f"{old.row_count:,} / ".encode() not in listing.content  # rows, not progress
    assert f"{EXPORTS}{old.pk}/download/".encode() not in listing.content
    assert finance_client.get(f"{EXPORTS}{old.pk}/download/").status_code == 404
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "apps.exports.tasks.purge_old_export_files" in tasks
    # Again: nothing more to do.
    with django_capture_on_commit_callbacks(execute=True):
        assert purge_old_export_files() == 0
    assert FinanceLog.objects.filter(action="export_expired").count() == 1


def test_a_purge_that_rolls_back_keeps_the_file(
    finance_client, ledger, django_capture_on_commit_callbacks, monkeypatch
):
    ask(finance_client, django_capture_on_commit_callbacks)
    job = ExportJob.objects.get()
    ExportJob.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timedelta(days=400))

    def log_fails(**kwargs: object) -> None:
        raise RuntimeError("the finance log could not be written")

    monkeypatch.setattr("apps.exports.services.finance_log", log_fails)
    with pytest.raises(RuntimeError), django_capture_on_commit_callbacks(execute=True):
        purge_old_export_files()
    job.refresh_from_db()
    assert job.status == "done" and Path(job.file.path).exists()
