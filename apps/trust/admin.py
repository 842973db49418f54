"""Trust in the admin: each campaign's fraud rules and allowlist (inlines of the campaign
page), the flags with their reasons and a person's review of them, the allowlist for
every campaign, the consent texts, and the data-subject actions on participants.

Every decision is an action that calls a service, with a reason that is kept.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME, ActionForm
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from apps.referrals.models import FraudFlag, Participant

from . import services
from .models import (
    AllowlistEntry,
    ClickRetention,
    ConsentText,
    DataExportRequest,
    ErasureLog,
    FraudRuleSetting,
)
from .privacy import participant_erase
from .selectors import person_export


class DecisionActionForm(ActionForm):
    reason = forms.CharField(
        label=_("Reason"),
        required=False,
        max_length=300,
        help_text=_("Why you decide so; kept with the decision and the rewards it changes."),
    )


def _actor(request: HttpRequest) -> str:
    return f"admin:{request.user.get_username()}"


# --- Inlines of the campaign page ------------------------------------------------------


class FraudRuleSettingInline(admin.TabularInline):
    model = FraudRuleSetting
    extra = 0
    fields = ["rule", "action", "threshold", "window", "min_share"]
    verbose_name = _("fraud rule")
    verbose_name_plural = _(
        "fraud rules (a rule not listed flags for review with its defaults; see the README)"
    )


class CampaignAllowlistInline(admin.TabularInline):
    model = AllowlistEntry
    extra = 0
    fields = ["kind", "value", "note"]
    verbose_name = _("allowlisted office or household")
    verbose_name_plural = _("allowlist (offices and households the shared-address rules skip)")


# --- Review: participants and flags -----------------------------------------------------


def review(
    request: HttpRequest, participant_ids: list[int], decision: str, model_admin: Any
) -> None:
    count = services.participants_review(
        participant_ids=participant_ids,
        decision=decision,
        actor=_actor(request),
        note=str(request.POST.get("reason", "")),
    )
    text = (
        ngettext(
            "%(count)d participant cleared: they count again.",
            "%(count)d participants cleared: they count again.",
            count,
        )
        if decision == services.OVERTURN
        else ngettext(
            "%(count)d participant blocked; their unpaid rewards are rejected.",
            "%(count)d participants blocked; their unpaid rewards are rejected.",
            count,
        )
    )
    model_admin.message_user(request, text % {"count": count}, messages.SUCCESS)


@admin.register(FraudFlag)
class FraudFlagAdmin(admin.ModelAdmin):
    list_display = [
        "created_at", "participant_link", "campaign", "code", "score", "action", "reason",
        "resolution", "resolved_by",
    ]  # fmt: skip
    list_filter = ["code", "action", "resolution", "participant__campaign"]
    search_fields = ["participant__email", "=participant__code", "=participant__external_id"]
    list_select_related = ["participant__campaign"]
    date_hierarchy = "created_at"
    action_form = DecisionActionForm
    actions = ["overturn", "uphold"]
    fields = [
        "participant_link", ("code", "score", "action"), "reason", "evidence_text",
        "created_at", ("resolution", "resolved_by", "resolved_at"), "resolution_note",
    ]  # fmt: skip
    readonly_fields = [
        "participant_link", "code", "score", "action", "reason", "evidence_text",
        "created_at", "resolution", "resolved_by", "resolved_at", "resolution_note",
    ]  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # flags come from the rules; an operator blocks with an action

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # decisions keep their reasons: overturn, never delete

    @admin.display(description=_("participant"), ordering="participant__email")
    def participant_link(self, obj: FraudFlag) -> str:
        url = reverse("admin:referrals_participant_change", args=[obj.participant_id])
        return format_html('<a href="{}">{}</a>', url, obj.participant)

    @admin.display(description=_("campaign"), ordering="participant__campaign__name")
    def campaign(self, obj: FraudFlag) -> str:
        return str(obj.participant.campaign)

    @admin.display(description=_("evidence"))
    def evidence_text(self, obj: FraudFlag) -> str:
        return json.dumps(obj.evidence, ensure_ascii=False, sort_keys=True)

    def _participants(self, queryset: QuerySet[FraudFlag]) -> list[int]:
        return sorted(set(queryset.values_list("participant_id", flat=True)))

    @admin.action(description=_("Overturn: the participants of these flags count again"))
    def overturn(self, request: HttpRequest, queryset: QuerySet[FraudFlag]) -> None:
        review(request, self._participants(queryset), services.OVERTURN, self)

    @admin.action(description=_("Uphold: block the participants of these flags"))
    def uphold(self, request: HttpRequest, queryset: QuerySet[FraudFlag]) -> None:
        review(request, self._participants(queryset), services.UPHOLD, self)


class ParticipantTrustActions:
    """Actions of the participant list (apps.referrals.admin mixes them in): review, and
    the person's data-subject rights."""

    action_form = DecisionActionForm

    @admin.action(description=_("Overturn the automated decision: they count again"))
    def overturn(self, request: HttpRequest, queryset: QuerySet[Participant]) -> None:
        review(request, list(queryset.values_list("pk", flat=True)), services.OVERTURN, self)

    @admin.action(description=_("Uphold: block them and reject their unpaid rewards"))
    def uphold(self, request: HttpRequest, queryset: QuerySet[Participant]) -> None:
        review(request, list(queryset.values_list("pk", flat=True)), services.UPHOLD, self)

    @admin.action(description=_("Export their personal data (JSON)"))
    def export_personal_data(
        self, request: HttpRequest, queryset: QuerySet[Participant]
    ) -> HttpResponse:
        people = queryset.select_related("campaign", "referrer").order_by("pk")
        data = person_export(people)
        response = HttpResponse(
            json.dumps(data, ensure_ascii=False, indent=2),
            content_type="application/json; charset=utf-8",
        )
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="personal-data-{stamp}.json"'
        return response

    @admin.action(description=_("Erase their personal data…"))
    def erase_personal_data(
        self, request: HttpRequest, queryset: QuerySet[Participant]
    ) -> HttpResponse | None:
        if request.POST.get("confirm") != "yes":
            # An erasure cannot be undone: say what it does and ask once more.
            context = {
                **self.admin_site.each_context(request),  # type: ignore[attr-defined]
                "title": _("Erase personal data?"),
                "participants": list(queryset.select_related("campaign")),
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
                "opts": self.model._meta,  # type: ignore[attr-defined]
            }
            return TemplateResponse(request, "admin/trust/erase_confirmation.html", context)
        actor = _actor(request)
        erased = [
            participant_erase(participant_id=pk, actor=actor)
            for pk in queryset.values_list("pk", flat=True)
        ]
        self.message_user(  # type: ignore[attr-defined]
            request,
            ngettext(
                "Personal data of %(count)d participant erased.",
                "Personal data of %(count)d participants erased.",
                len(erased),
            )
            % {"count": len(erased)},
            messages.SUCCESS,
        )
        return None


# --- Lists ---------------------------------------------------------------------------------


@admin.register(AllowlistEntry)
class AllowlistEntryAdmin(admin.ModelAdmin):
    list_display = ["value", "kind", "campaign", "note", "created_at"]
    list_filter = ["kind", "campaign"]
    list_select_related = ["campaign"]
    search_fields = ["value", "note"]
    autocomplete_fields = ["campaign"]
    fields = ["campaign", "kind", "value", "note"]


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ConsentText)
class ConsentTextAdmin(ReadOnlyAdmin):
    list_display = ["version", "language", "created_at", "text"]
    list_filter = ["language"]
    search_fields = ["=version"]


@admin.register(ErasureLog)
class ErasureLogAdmin(ReadOnlyAdmin):
    list_display = ["erased_at", "participant_id", "campaign", "actor", "clicks_scrubbed"]
    list_filter = ["campaign"]
    list_select_related = ["campaign"]
    search_fields = ["=participant__id"]


@admin.register(DataExportRequest)
class DataExportRequestAdmin(ReadOnlyAdmin):
    list_display = ["requested_at", "participant_id", "sent_at"]
    search_fields = ["=participant__id"]


@admin.register(ClickRetention)
class ClickRetentionAdmin(ReadOnlyAdmin):
    list_display = ["campaign", "frozen_through", "clicks_deleted", "updated_at"]
    list_select_related = ["campaign"]
