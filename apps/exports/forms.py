"""Finance forms in the admin. Each checks its input through the same code as the command
(report_filters, report_range), so the web and the command line refuse the same things."""

from __future__ import annotations

from datetime import date
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from apps.analytics.ranges import report_range
from apps.campaigns.models import Campaign
from apps.common.errors import FissionError
from apps.rewards.models import Reward, RewardState

from .report import ReportFilters, report_filters

# Field names of report_filters' problems, as the forms call them.
_FIELD_NAMES = {"from": "date_from", "to": "date_to"}


def _date_input() -> forms.DateInput:
    return forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class _CampaignChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.name} ({obj.slug})"


def _campaign_field() -> forms.ModelChoiceField:
    return _CampaignChoice(
        queryset=Campaign.objects.order_by("name"),
        to_field_name="slug",
        required=False,
        empty_label=_("All campaigns"),
        label=_("Campaign"),
    )


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _apply_problems(form: forms.Form, exc: FissionError) -> None:
    for name, problems in exc.fields.items():
        field = _FIELD_NAMES.get(name, name)
        for problem in problems:
            form.add_error(field if field in form.fields else None, problem)


class ReportForm(forms.Form):
    campaign = _campaign_field()
    date_from = forms.DateField(label=_("From"), required=False, widget=_date_input())
    date_to = forms.DateField(label=_("To"), required=False, widget=_date_input())
    date_field = forms.ChoiceField(
        label=_("Dates apply to"),
        choices=[
            ("created", _("when the entry was made")),
            ("approved", _("when it was approved")),
            ("paid", _("when it was paid")),
        ],
        initial="created",
    )
    state = forms.ChoiceField(
        label=_("State"),
        required=False,
        choices=[("", _("Any state")), *RewardState.choices],
    )
    format = forms.ChoiceField(
        label=_("Format"),
        choices=[("csv", _("CSV (UTF-8, opens in any spreadsheet)")), ("xlsx", "Excel (XLSX)")],
        initial="csv",
    )

    filters: ReportFilters

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        campaign = data.get("campaign")
        try:
            self.filters = report_filters(
                campaign=campaign.slug if campaign else None,
                date_from=_iso(data.get("date_from")),
                date_to=_iso(data.get("date_to")),
                state=data.get("state") or None,
                date_field=data.get("date_field"),
            )
        except FissionError as exc:
            _apply_problems(self, exc)
        return data


class ReconciliationForm(forms.Form):
    campaign = _campaign_field()
    date_from = forms.DateField(label=_("From"), required=False, widget=_date_input())
    date_to = forms.DateField(label=_("To"), required=False, widget=_date_input())

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        try:
            report_range(_iso(data.get("date_from")), _iso(data.get("date_to")))
        except FissionError as exc:
            _apply_problems(self, exc)
        return data


class PayoutBatchForm(forms.Form):
    currency = forms.ChoiceField(label=_("Currency"))
    campaign = _campaign_field()
    approved_from = forms.DateField(label=_("Approved from"), required=False, widget=_date_input())
    approved_to = forms.DateField(
        label=_("Approved up to"),
        required=False,
        widget=_date_input(),
        help_text=_("Local days, both included. Leave both empty for everything approved."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The currencies something is waiting to be paid in (the reward_payable index).
        currencies = (
            Reward.objects.filter(state=RewardState.APPROVED, payout_batch__isnull=True)
            .order_by("currency")
            .values_list("currency", flat=True)
            .distinct()
        )
        currency = self.fields["currency"]
        assert isinstance(currency, forms.ChoiceField)  # noqa: S101 (declared above)
        currency.choices = [(c, c) for c in currencies]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("approved_from"), data.get("approved_to")
        if start and end and end < start:
            self.add_error("approved_to", _("must not be before the first day"))
        return data


class MarkPaidForm(forms.Form):
    reference = forms.CharField(
        label=_("Payment reference"),
        max_length=100,
        help_text=_("The bank's or payment provider's reference for this payout."),
    )
