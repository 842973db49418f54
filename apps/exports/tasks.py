"""Background exports. Thin: the services hold the rules."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from . import services


@shared_task(
    acks_late=True,
    ignore_result=True,
    soft_time_limit=settings.FISSION["EXPORT_JOB_TIME_LIMIT"],
    time_limit=settings.FISSION["EXPORT_JOB_TIME_LIMIT"] + 60,
)
def run_export_job(job_id: int) -> None:
    """Write export job `job_id`'s file. Claimed with a conditional UPDATE: a second
    delivery of the same message does nothing."""
    services.export_job_run(job_id=job_id)


@shared_task(ignore_result=True)
def purge_old_export_files() -> int:
    """Nightly: delete export files past EXPORT_RETENTION_DAYS."""
    return services.export_files_purge()
