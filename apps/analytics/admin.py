from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from .alerts import alert_text
from .models import KAlert


@admin.register(KAlert)
class KAlertAdmin(admin.ModelAdmin):
    """K-drop episodes: written by the periodic check, read here; never edited by hand."""

    list_display = [
        "campaign", "started_on", "reason", "factor", "k", "previous_k", "last_k",
        "resolved_at", "emailed_at", "dashboard",
    ]  # fmt: skip
    list_filter = ["reason", "factor", ("resolved_at", admin.EmptyFieldListFilter), "campaign"]
    list_select_related = ["campaign"]
    date_hierarchy = "started_on"
    readonly_fields = ["message"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description=_("message"))
    def message(self, obj: KAlert) -> str:
        text = alert_text(obj)
        return format_html(
            "<p>{}</p><p>{}</p><p>{}</p>", text.headline, text.detail, text.suggestion
        )

    @admin.display(description=_("dashboard"))
    def dashboard(self, obj: KAlert) -> str:
        url = reverse("admin:campaigns_campaign_dashboard", args=[obj.campaign_id])
        return format_html('<a href="{}">{}</a>', url, _("open"))
