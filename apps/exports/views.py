"""Finance pages in the admin (staff only, through admin_view; each checks its permission):
the report form, export downloads, the reconciliation, and a payout batch's actions.
Thin: forms check input, services do the work and the logging."""

from __future__ import annotations

import tempfile
from datetime import date
from itertools import islice
from typing import Any, cast

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from apps.common.errors import FissionError
from apps.common.money import format_amount
from apps.rewards import payouts
from apps.rewards.models import FinanceAction, PayoutBatch, PayoutStatus

from . import reconciliation, services
from .formats import CONTENT_TYPES, payees_chunks
from .forms import MarkPaidForm, PayoutBatchForm, ReconciliationForm, ReportForm
from .report import ReportFilters, report_count

EXPORT_PERMISSION = "exports.export_rewards"
PAY_PERMISSION = "rewards.pay_payoutbatch"
# Payees listed on a batch's page; the payees file has them all.
PAYEES_SHOWN = 200


def require(request: HttpRequest, permission: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied


def _user(request: HttpRequest) -> User:
    # Every view here is behind admin_view: the user is signed-in staff.
    return cast(User, request.user)


def _actor(request: HttpRequest) -> str:
    return services.user_actor(_user(request))


def _attachment(response: HttpResponseBase, filename: str) -> HttpResponseBase:
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response


def report_response(request: HttpRequest, filters: ReportFilters, fmt: str) -> HttpResponseBase:
    """The report now (a CSV streams as it is read; an XLSX is written to a temporary file
    first), or, above EXPORT_SYNC_MAX_ROWS rows, a background job and a redirect."""
    count = report_count(filters)
    if count > settings.FISSION["EXPORT_SYNC_MAX_ROWS"]:
        job = services.export_job_request(
            filters=filters,
            fmt=fmt,
            user=_user(request),
            expected_rows=count,
        )
        messages.success(
            request,
            _(
                "%(rows)s rows: export #%(job)s is being prepared; it appears in this list "
                "when it is ready."
            )
            % {"rows": f"{count:,}", "job": job.pk},
        )
        return HttpResponseRedirect(reverse("admin:exports_exportjob_changelist"))
    filename = f"rewards-{filters.describe()}.{fmt}"
    if fmt == "csv":
        chunks = services.report_stream(filters=filters, actor=_actor(request), expected_rows=count)
        return _attachment(
            StreamingHttpResponse(chunks, content_type=CONTENT_TYPES["csv"]), filename
        )
    handle = tempfile.TemporaryFile()  # noqa: SIM115 (FileResponse closes it once sent)
    services.report_export(filters=filters, fmt=fmt, file=handle, actor=_actor(request))
    handle.seek(0)
    return FileResponse(
        handle, as_attachment=True, filename=filename, content_type=CONTENT_TYPES["xlsx"]
    )


def _page(
    request: HttpRequest, model_admin: admin.ModelAdmin, template: str, **context: Any
) -> HttpResponse:
    return render(
        request,
        template,
        {**model_admin.admin_site.each_context(request), "opts": model_admin.opts, **context},
    )


@require_http_methods(["GET", "POST"])
def report_form(request: HttpRequest, model_admin: admin.ModelAdmin) -> HttpResponseBase:
    require(request, EXPORT_PERMISSION)
    form = ReportForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        return report_response(request, form.filters, form.cleaned_data["format"])
    response = _page(
        request,
        model_admin,
        "admin/exports/report_form.html",
        form=form,
        title=_("Reward report"),
        sync_max=settings.FISSION["EXPORT_SYNC_MAX_ROWS"],
    )
    if request.method == "POST":
        response.status_code = 400  # the form says what is wrong
    return response


def job_download(
    request: HttpRequest, job_id: int, model_admin: admin.ModelAdmin
) -> HttpResponseBase:
    require(request, EXPORT_PERMISSION)
    try:
        job = services.export_job_file(job_id=job_id, actor=_actor(request))
    except FissionError as exc:
        raise Http404(exc.message) from exc
    return FileResponse(
        job.file.open("rb"),
        as_attachment=True,
        filename=f"rewards-export-{job.pk}.{job.format}",
        content_type=CONTENT_TYPES[job.format],
    )


def reconciliation_page(request: HttpRequest, model_admin: admin.ModelAdmin) -> HttpResponseBase:
    require(request, EXPORT_PERMISSION)
    form = ReconciliationForm(request.GET or None)
    lines: list[reconciliation.Line] = []
    totals: list[reconciliation.Line] = []
    asked = bool(request.GET)
    if not asked or form.is_valid():
        data = form.cleaned_data if asked else {}
        campaign = data.get("campaign")
        start: date | None = data.get("date_from")
        end: date | None = data.get("date_to")
        lines = reconciliation.reconciliation(campaign=campaign, date_from=start, date_to=end)
        if request.GET.get("format") == "csv":
            period = {
                "campaign": campaign.slug if campaign else None,
                "from": start,
                "to": end,
            }
            body = services.reconciliation_csv(lines, actor=_actor(request), period=period)
            scope = campaign.slug if campaign else "all"
            name = f"reconciliation-{scope}-{start or ''}..{end or ''}.csv"
            return _attachment(HttpResponse(body, content_type=CONTENT_TYPES["csv"]), name)
        totals = reconciliation.totals_by_currency(lines) if len(lines) > 1 else []
    response = _page(
        request,
        model_admin,
        "admin/exports/reconciliation.html",
        form=form,
        lines=lines,
        totals=totals,
        csv_query=_with_format(request, "csv"),
        title=_("Reconciliation"),
    )
    if asked and not form.is_valid():
        response.status_code = 400
    return response


def _with_format(request: HttpRequest, fmt: str) -> str:
    query = request.GET.copy()
    query["format"] = fmt
    return query.urlencode()


# --- Payout batches -------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def batch_add(request: HttpRequest, model_admin: admin.ModelAdmin) -> HttpResponse:
    require(request, "rewards.add_payoutbatch")
    form = PayoutBatchForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            result = payouts.payout_batch_create(
                actor=_actor(request),
                currency=data["currency"],
                campaign=data.get("campaign"),
                approved_from=data.get("approved_from"),
                approved_to=data.get("approved_to"),
            )
        except FissionError as exc:
            form.add_error(None, exc.message)
        else:
            batch_created_message(request, result)
            return HttpResponseRedirect(
                reverse("admin:rewards_payoutbatch_change", args=[result.batch.pk])
            )
    response = _page(
        request,
        model_admin,
        "admin/exports/payoutbatch_add.html",
        form=form,
        title=_("New payout batch"),
    )
    if request.method == "POST":
        response.status_code = 400
    return response


def batch_created_message(request: HttpRequest, result: payouts.BatchResult) -> None:
    batch = result.batch
    messages.success(
        request,
        _("Payout batch #%(id)s: %(payees)s payees, %(lines)s entries, %(total)s %(currency)s.")
        % {
            "id": batch.pk,
            "payees": batch.payee_count,
            "lines": batch.line_count,
            "total": format_amount(batch.total, batch.currency),
            "currency": batch.currency,
        },
    )
    if result.carried_forward:
        messages.warning(
            request,
            _(
                "%(count)s participants owe back more than they are due and were left out; "
                "their entries are carried forward to a later batch."
            )
            % {"count": len(result.carried_forward)},
        )


def _batch(batch_id: int) -> PayoutBatch:
    batch = PayoutBatch.objects.select_related("campaign").filter(pk=batch_id).first()
    if batch is None:
        raise Http404
    return batch


@require_POST
def batch_pay(
    request: HttpRequest, batch_id: int, model_admin: admin.ModelAdmin
) -> HttpResponseBase:
    require(request, PAY_PERMISSION)
    batch = _batch(batch_id)
    url = reverse("admin:rewards_payoutbatch_change", args=[batch.pk])
    form = MarkPaidForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Give the payment's reference to mark the batch paid."))
        return HttpResponseRedirect(url)
    try:
        batch, changed = payouts.payout_batch_mark_paid(
            batch_id=batch.pk, reference=form.cleaned_data["reference"], actor=_actor(request)
        )
    except FissionError as exc:
        messages.error(request, exc.message)
        return HttpResponseRedirect(url)
    if changed:
        messages.success(
            request,
            _("Payout batch #%(id)s is paid (reference %(reference)s).")
            % {"id": batch.pk, "reference": batch.reference},
        )
    else:
        messages.warning(
            request,
            _("Payout batch #%(id)s was already paid (reference %(reference)s): nothing changed.")
            % {"id": batch.pk, "reference": batch.reference},
        )
    return HttpResponseRedirect(url)


@require_POST
def batch_cancel(
    request: HttpRequest, batch_id: int, model_admin: admin.ModelAdmin
) -> HttpResponseBase:
    require(request, "rewards.change_payoutbatch")
    batch = _batch(batch_id)
    url = reverse("admin:rewards_payoutbatch_change", args=[batch.pk])
    try:
        batch, changed = payouts.payout_batch_cancel(batch_id=batch.pk, actor=_actor(request))
    except FissionError as exc:
        messages.error(request, exc.message)
        return HttpResponseRedirect(url)
    if changed:
        messages.success(
            request,
            _("Payout batch #%(id)s is cancelled; its entries can go in another batch.")
            % {"id": batch.pk},
        )
    return HttpResponseRedirect(url)


def batch_lines(
    request: HttpRequest, batch_id: int, fmt: str, model_admin: admin.ModelAdmin
) -> HttpResponseBase:
    require(request, EXPORT_PERMISSION)
    batch = _batch(batch_id)
    if fmt not in CONTENT_TYPES:
        raise Http404
    return report_response(request, ReportFilters(batch=batch), fmt)


def batch_payees(
    request: HttpRequest, batch_id: int, model_admin: admin.ModelAdmin
) -> HttpResponseBase:
    require(request, EXPORT_PERMISSION)
    batch = _batch(batch_id)
    payouts.finance_log(
        action=FinanceAction.BATCH_EXPORTED,
        actor=_actor(request),
        batch=batch,
        file="payees.csv",
        payees=batch.payee_count,
        total=batch.total,
    )
    response = StreamingHttpResponse(
        payees_chunks(payouts.payout_payees(batch)), content_type=CONTENT_TYPES["csv"]
    )
    return _attachment(response, f"payout-batch-{batch.pk}-payees.csv")


def batch_context(request: HttpRequest, batch: PayoutBatch) -> dict[str, Any]:
    """What the batch's page adds to the admin's change form."""
    user = request.user
    is_open = batch.status == PayoutStatus.OPEN
    return {
        "batch": batch,
        "payees": list(islice(payouts.payout_payees(batch), PAYEES_SHOWN)),
        "can_export": user.has_perm(EXPORT_PERMISSION),
        "can_pay": is_open and user.has_perm(PAY_PERMISSION),
        "can_cancel": is_open and user.has_perm("rewards.change_payoutbatch"),
        "pay_form": MarkPaidForm(),
        "export_jobs_url": reverse("admin:exports_exportjob_changelist"),
    }
