from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from apps.notifications.admin import MessageLogInline
from apps.trust.admin import ParticipantTrustActions

from .models import Click, FraudFlag, Participant
from .selectors import descendant_count, with_referral_counts

REFERRALS_SHOWN = 50


class FraudFlagInline(admin.TabularInline):
    """Why the fraud rules held this participant. Read-only: decisions are the list's
    actions (overturn, uphold), which keep their reason and adjust the rewards."""

    model = FraudFlag
    extra = 0
    can_delete = False
    fields = (
        "code", "score", "action", "reason", "evidence", "created_at", "resolution",
        "resolved_by", "resolved_at", "resolution_note",
    )  # fmt: skip
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Participant)
class ParticipantAdmin(ParticipantTrustActions, admin.ModelAdmin):
    list_display = [
        "__str__",
        "email",
        "campaign",
        "referrer_link",
        "depth",
        "direct_referrals",
        "status",
        "joined_at",
    ]
    list_filter = ["campaign", "status", "depth", "channel"]
    search_fields = ["email", "email_normalized", "name", "=code", "=external_id"]
    list_select_related = ["campaign", "referrer"]
    autocomplete_fields = ["campaign"]
    raw_id_fields = ["referrer"]
    date_hierarchy = "joined_at"
    inlines = [FraudFlagInline, MessageLogInline]
    actions = ["overturn", "uphold", "export_personal_data", "erase_personal_data"]
    readonly_fields = [
        "campaign", "referrer_link", "depth", "code", "email_normalized", "joined_at",
        "consent_at", "consent_version", "consent_withdrawn_at", "channel", "descendants",
        "referral_list", "status", "join_ua_class",
    ]  # fmt: skip
    fields = [
        "campaign", ("name", "email"), "email_normalized", "external_id", "status",
        ("code", "channel"), ("referrer_link", "depth"), "descendants", "referral_list",
        ("joined_at", "verified_at", "qualified_at"),
        ("consent_at", "consent_version", "consent_withdrawn_at"), "join_ua_class",
    ]  # fmt: skip

    def get_queryset(self, request: HttpRequest) -> QuerySet[Participant]:
        return with_referral_counts(super().get_queryset(request))

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # The tree is append-only: erasure of personal data keeps the node.
        return False

    @admin.display(description=_("direct referrals"), ordering="direct_referrals")
    def direct_referrals(self, obj: Participant) -> int:
        return obj.direct_referrals  # type: ignore[attr-defined]

    @admin.display(description=_("referrer"), ordering="referrer__name")
    def referrer_link(self, obj: Participant) -> str:
        if obj.referrer is None:
            return "—"
        url = reverse("admin:referrals_participant_change", args=[obj.referrer_id])
        return format_html('<a href="{}">{}</a>', url, obj.referrer)

    @admin.display(description=_("whole tree below (descendants)"))
    def descendants(self, obj: Participant) -> int:
        return descendant_count(obj)

    @admin.display(description=_("direct referrals"))
    def referral_list(self, obj: Participant) -> str:
        referrals = list(obj.referrals.order_by("joined_at")[: REFERRALS_SHOWN + 1])
        if not referrals:
            return "—"
        more = format_html(" …") if len(referrals) > REFERRALS_SHOWN else ""
        items = format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            (
                (reverse("admin:referrals_participant_change", args=[r.pk]), r)
                for r in referrals[:REFERRALS_SHOWN]
            ),
        )
        return format_html("{}{}", items, more)


@admin.register(Click)
class ClickAdmin(admin.ModelAdmin):
    list_display = ["created_at", "participant", "campaign", "channel", "ua_class", "is_bot"]
    list_filter = ["campaign", "channel", "ua_class", "is_bot"]
    list_select_related = ["participant", "campaign"]
    raw_id_fields = ["participant"]
    date_hierarchy = "created_at"
    show_full_result_count = False  # the click log is large; counting it is slow

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
