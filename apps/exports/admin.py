"""Finance in the admin: reward exports (the report form, background jobs and their
files), the reconciliation, payout batches and the finance log. Payout batches and the
log are models of apps/rewards, administered here beside the reports that read them."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from apps.common.money import format_amount
from apps.rewards.models import FinanceLog, PayoutBatch

from . import views
from .models import ExportJob, ExportStatus


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ExportJob)
class ExportJobAdmin(ReadOnlyAdmin):
    """The exports list: background reports, their progress and, when done, the file
    (handed out by a view that checks the finance permission, never a public URL)."""

    list_display = [
        "id", "status", "format", "what", "progress_text", "totals_text", "requested_by",
        "created_at", "finished_at", "download",
    ]  # fmt: skip
    list_filter = ["status", "format"]
    list_select_related = ["requested_by"]
    date_hierarchy = "created_at"
    change_list_template = "admin/exports/exportjob/change_list.html"
    fields = [
        ("status", "format"), "filters", ("row_count", "progress"), "totals",
        ("requested_by", "created_at"), ("started_at", "finished_at"), "error",
    ]  # fmt: skip

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path(
                "report/",
                wrap(partial(views.report_form, model_admin=self)),
                name="exports_report",
            ),
            path(
                "reconciliation/",
                wrap(partial(views.reconciliation_page, model_admin=self)),
                name="exports_reconciliation",
            ),
            path(
                "<int:job_id>/download/",
                wrap(partial(views.job_download, model_admin=self)),
                name="exports_exportjob_download",
            ),
            *super().get_urls(),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "can_export": request.user.has_perm(views.EXPORT_PERMISSION),
            # Refresh the list while a job is under way, so that it shows up when done.
            "refresh": ExportJob.objects.filter(
                status__in=[ExportStatus.QUEUED, ExportStatus.RUNNING]
            ).exists(),
        }
        return super().changelist_view(request, extra_context)

    @admin.display(description=_("filters"))
    def what(self, obj: ExportJob) -> str:
        return ", ".join(f"{k}={v}" for k, v in obj.filters.items() if v) or str(_("everything"))

    @admin.display(description=_("rows"))
    def progress_text(self, obj: ExportJob) -> str:
        if obj.status in (ExportStatus.DONE, ExportStatus.EXPIRED):
            return f"{obj.row_count:,}"
        return f"{obj.progress:,} / {obj.row_count:,}"

    @admin.display(description=_("totals"))
    def totals_text(self, obj: ExportJob) -> str:
        return format_html_join(
            "",
            "{} {}: {} ({})<br>",
            ((t["currency"], t["state"], t["amount"], t["rows"]) for t in obj.totals),
        )

    @admin.display(description=_("file"))
    def download(self, obj: ExportJob) -> str:
        if obj.status == ExportStatus.EXPIRED:
            days = settings.FISSION["EXPORT_RETENTION_DAYS"]
            return _("deleted after %(days)s days") % {"days": days}
        if obj.status != ExportStatus.DONE:
            return obj.error[:80] if obj.status == ExportStatus.FAILED else "—"
        url = reverse("admin:exports_exportjob_download", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, _("download"))


@admin.register(PayoutBatch)
class PayoutBatchAdmin(admin.ModelAdmin):
    list_display = [
        "id", "status", "currency", "campaign", "money", "payee_count", "line_count",
        "created_at", "created_by", "reference", "paid_at", "paid_by",
    ]  # fmt: skip
    list_filter = ["status", "currency", "campaign"]
    list_select_related = ["campaign"]
    search_fields = ["=id", "reference"]
    date_hierarchy = "created_at"
    change_form_template = "admin/exports/payoutbatch_change.html"
    fields = [
        ("status", "currency", "campaign"), ("approved_from", "approved_to"),
        ("money", "payee_count", "line_count"), ("created_by", "created_at"),
        ("reference", "paid_by", "paid_at"), ("cancelled_by", "cancelled_at"),
    ]  # fmt: skip
    readonly_fields = [*(f.name for f in PayoutBatch._meta.fields), "money"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Nothing on a batch is edited by hand: it is paid or cancelled through its own
        # buttons (which check "pay" and "change" themselves), through the services.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # financial records: cancel an open batch, never delete one

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path(
                "<int:batch_id>/pay/",
                wrap(partial(views.batch_pay, model_admin=self)),
                name="rewards_payoutbatch_pay",
            ),
            path(
                "<int:batch_id>/cancel/",
                wrap(partial(views.batch_cancel, model_admin=self)),
                name="rewards_payoutbatch_cancel",
            ),
            path(
                "<int:batch_id>/lines.<str:fmt>",
                wrap(partial(views.batch_lines, model_admin=self)),
                name="rewards_payoutbatch_lines",
            ),
            path(
                "<int:batch_id>/payees.csv",
                wrap(partial(views.batch_payees, model_admin=self)),
                name="rewards_payoutbatch_payees",
            ),
            *super().get_urls(),
        ]

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # A batch is made by selecting what to pay, through the payout service.
        return views.batch_add(request, model_admin=self)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        batch = PayoutBatch.objects.filter(pk=object_id).first() if object_id.isdigit() else None
        if batch is not None:
            extra_context = {**(extra_context or {}), **views.batch_context(request, batch)}
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description=_("total"), ordering="total")
    def money(self, obj: PayoutBatch) -> str:
        return f"{format_amount(obj.total, obj.currency)} {obj.currency}"


@admin.register(FinanceLog)
class FinanceLogAdmin(ReadOnlyAdmin):
    """Every export and payout, with who and when (append-only)."""

    list_display = ["created_at", "action", "actor", "batch", "summary"]
    list_filter = ["action"]
    search_fields = ["actor", "=batch__id"]
    list_select_related = ["batch"]
    date_hierarchy = "created_at"
    fields = ["created_at", "action", "actor", "batch", "details"]

    @admin.display(description=_("details"))
    def summary(self, obj: FinanceLog) -> str:
        shown = {k: v for k, v in obj.details.items() if v not in (None, "", [], {})}
        return "; ".join(f"{k}: {v}" for k, v in shown.items())[:300]
