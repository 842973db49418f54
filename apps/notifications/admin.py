from __future__ import annotations

import base64
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import URLPattern, path, reverse
from django.utils import translation
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from apps.campaigns.models import Campaign
from apps.common.qr import qr_png

from .compose import compose, sample_values
from .models import CampaignMessage, Message, MessageKind, MessageText
from .services import messages_retry
from .texts import DEFAULTS, placeholders, validate


class MessageTextFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        """Check new texts against the kind being added. (MessageText.clean checks them
        once the message exists; while it is being added, only its form knows the kind.)"""
        super().clean()
        kind = self.instance.kind
        for form in self.forms:
            data = getattr(form, "cleaned_data", None)
            if not data or data.get("DELETE") or self.instance.pk is not None or not kind:
                continue
            try:
                validate(kind=kind, subject=data.get("subject", ""), body=data.get("body", ""))
            except ValidationError as error:
                for field, problems in error.message_dict.items():
                    form.add_error(field, problems)


class MessageTextInline(admin.StackedInline):
    model = MessageText
    formset = MessageTextFormSet
    extra = 0
    fields = ["language", "subject", "body"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[MessageText]:
        # Each row's title is str(text), which names the message and its campaign.
        return super().get_queryset(request).select_related("message__campaign")


@admin.register(CampaignMessage)
class CampaignMessageAdmin(admin.ModelAdmin):
    list_display = ["kind", "campaign", "enabled", "languages", "preview_link"]
    list_display_links = ["kind"]
    list_editable = ["enabled"]
    list_filter = ["campaign", "kind", "enabled"]
    list_select_related = ["campaign"]
    autocomplete_fields = ["campaign"]
    inlines = [MessageTextInline]
    readonly_fields = ["available_placeholders", "default_texts", "preview_link"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        if obj is None:
            return ["campaign", "kind", "enabled"]
        return [
            ("campaign", "kind"),
            "enabled",
            "preview_link",
            "available_placeholders",
            "default_texts",
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # The texts were checked against this kind's placeholders: it cannot change.
        if obj is not None:
            return [*self.readonly_fields, "campaign", "kind"]
        return self.readonly_fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[CampaignMessage]:
        return super().get_queryset(request).prefetch_related("texts")

    @admin.display(description=_("own texts"))
    def languages(self, obj: CampaignMessage) -> str:
        own = sorted(text.language for text in obj.texts.all())
        return ", ".join(own) if own else str(_("default texts"))

    @admin.display(description=_("preview"))
    def preview_link(self, obj: CampaignMessage) -> str:
        if obj.pk is None:
            return "—"
        url = reverse("admin:notifications_preview", args=[obj.campaign_id, obj.kind])
        return format_html('<a href="{}">{}</a>', url, _("Preview with sample data"))

    @admin.display(description=_("placeholders"))
    def available_placeholders(self, obj: CampaignMessage) -> str:
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li><code>{}</code>: {}</li>",
                (("{" + n + "}", d) for n, d in placeholders(obj.kind).items()),
            ),
        )

    @admin.display(description=_("default texts (used for a language without its own)"))
    def default_texts(self, obj: CampaignMessage) -> str:
        default = DEFAULTS[obj.kind]
        rows = []
        for code, name in settings.LANGUAGES:
            with translation.override(code):
                rows.append((name, str(default.subject), str(default.body)))
        return format_html_join(
            "", '<p><strong>{}</strong><br>{}</p><pre style="white-space:pre-wrap">{}</pre>', rows
        )

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "preview/<int:campaign_id>/<str:kind>/",
                self.admin_site.admin_view(self.preview_view),
                name="notifications_preview",
            ),
            *super().get_urls(),
        ]

    def preview_view(self, request: HttpRequest, campaign_id: int, kind: str) -> HttpResponse:
        """Every language of one message, as sent, with made-up data."""
        if not self.has_view_permission(request):
            raise Http404
        campaign = (
            Campaign.objects.prefetch_related("tiers", "landing_copies")
            .filter(pk=campaign_id)
            .first()
        )
        if campaign is None or kind not in MessageKind.values:
            raise Http404("unknown campaign or message")
        previews = []
        for code, name in settings.LANGUAGES:
            with translation.override(code):
                values = sample_values(campaign, kind, code)
                qr = (
                    "data:image/png;base64,"
                    + base64.b64encode(qr_png(values["invite_link"])).decode()
                )
                composed = compose(
                    campaign=campaign, kind=kind, language=code, values=values, qr_image=qr
                )
            previews.append({"language": name, "composed": composed})
        context = {
            **self.admin_site.each_context(request),
            "title": _("Preview: %(kind)s") % {"kind": MessageKind(kind).label},
            "campaign": campaign,
            "kind_label": MessageKind(kind).label,
            "previews": previews,
            "opts": self.model._meta,
        }
        return render(request, "admin/notifications/preview.html", context)


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """The message log: what was sent to whom, when, and what went wrong. Read only."""

    list_display = [
        "created_at",
        "participant_link",
        "kind",
        "status",
        "subject",
        "sent_at",
        "attempts",
        "short_error",
    ]
    list_filter = ["status", "kind", "campaign"]
    list_select_related = ["participant", "campaign"]
    search_fields = ["participant__email_normalized", "=participant__code", "subject"]
    date_hierarchy = "created_at"
    raw_id_fields = ["participant", "friend", "reward"]
    actions = ["send_again"]
    show_full_result_count = False  # the log grows with every campaign; counting is slow
    fields = [
        ("participant", "campaign"),
        ("kind", "cause"),
        ("friend", "reward", "tier_threshold"),
        ("status", "attempts"),
        ("language", "subject"),
        "error",
        ("created_at", "sent_at", "next_attempt_at"),
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description=_("participant"), ordering="participant__name")
    def participant_link(self, obj: Message) -> str:
        url = reverse("admin:referrals_participant_change", args=[obj.participant_id])
        return format_html('<a href="{}">{}</a>', url, obj.participant)

    @admin.display(description=_("error"))
    def short_error(self, obj: Message) -> str:
        return obj.error[:80] + ("…" if len(obj.error) > 80 else "")

    @admin.action(description=_("Send the selected failed messages again"))
    def send_again(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        count = messages_retry(message_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(
            request,
            _("%(count)d failed messages queued again.") % {"count": count},
            messages.SUCCESS,
        )


class MessageLogInline(admin.TabularInline):
    """The participant's messages, on the participant's page in the admin."""

    model = Message
    fk_name = "participant"
    verbose_name = _("message")
    verbose_name_plural = _("messages sent")
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    ordering = ["-id"]
    fields = ["created_at", "kind", "cause", "status", "subject", "sent_at", "attempts", "error"]
    readonly_fields = [
        "created_at",
        "kind",
        "cause",
        "status",
        "subject",
        "sent_at",
        "attempts",
        "error",
    ]

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
