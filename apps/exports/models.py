"""Export jobs: a finance report too large to stream at once, written by a Celery worker
to default storage (under MEDIA_ROOT, never served as a public URL: a staff view that
checks the finance permission hands it out)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ExportStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")
    # Done, and its file deleted after EXPORT_RETENTION_DAYS.
    EXPIRED = "expired", _("Expired")


class ExportFormat(models.TextChoices):
    CSV = "csv", "CSV"
    XLSX = "xlsx", "XLSX"


class ExportJob(models.Model):
    Status = ExportStatus
    Format = ExportFormat

    id = models.BigAutoField(primary_key=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    format = models.CharField(max_length=4, choices=Format.choices, default=Format.CSV)
    filters = models.JSONField(
        default=dict, blank=True, help_text=_("The report's filters, as asked.")
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    row_count = models.PositiveBigIntegerField(
        default=0, help_text=_("Rows expected when asked; rows written when done.")
    )
    progress = models.PositiveBigIntegerField(default=0, help_text=_("Rows written so far."))
    totals = models.JSONField(
        default=list, blank=True, help_text=_("Per currency and state: rows and amount.")
    )
    file = models.FileField(upload_to="exports/%Y/%m/", blank=True, max_length=200)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("reward export")
        verbose_name_plural = _("reward exports")
        permissions = [
            ("export_rewards", "Can export reward reports, reconcile and download exports"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=ExportStatus.values), name="exportjob_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(format__in=ExportFormat.values), name="exportjob_format_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status="done") | ~Q(file=""), name="exportjob_done_has_file"
            ),
        ]

    def __str__(self) -> str:
        return f"export #{self.pk} ({self.format}, {self.status})"
