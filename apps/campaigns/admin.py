from __future__ import annotations

from functools import partial
from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from apps.analytics.alerts import alert_text, open_alerts
from apps.analytics.views import campaign_dashboard
from apps.trust.admin import CampaignAllowlistInline, FraudRuleSettingInline

from .models import Campaign, CommissionLevel, LandingCopy, RefereeReward, RewardTier


class RewardTierInline(admin.TabularInline):
    model = RewardTier
    extra = 1
    fields = ["threshold", "kind", "amount", "currency", "description"]


class RefereeRewardInline(admin.StackedInline):
    model = RefereeReward
    extra = 0
    max_num = 1
    verbose_name = _("reward for the invited friend")
    fields = ["kind", "amount", "currency", "description"]


class CommissionLevelInline(admin.TabularInline):
    model = CommissionLevel
    extra = 0
    max_num = 3
    verbose_name = _("commission level")
    fields = ["level", "percent"]


class LandingCopyInline(admin.StackedInline):
    model = LandingCopy
    extra = 1
    max_num = 2
    fields = ["language", "headline", "reward_text", "body"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[LandingCopy]:
        # Each row's title is str(copy), which names the campaign's slug.
        return super().get_queryset(request).select_related("campaign")


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "slug",
        "status",
        "qualifying_event",
        "participant_count",
        "starts_at",
        "ends_at",
        "links",
    ]
    list_filter = ["status", "qualifying_event"]
    search_fields = ["name", "slug"]
    # The changelist's own default (newest first), stated so that the autocomplete of
    # campaigns in other admins pages through a stable order.
    ordering = ["-pk"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_at", "updated_at"]
    inlines = [
        LandingCopyInline,
        RewardTierInline,
        RefereeRewardInline,
        CommissionLevelInline,
        FraudRuleSettingInline,
        CampaignAllowlistInline,
    ]
    fieldsets = [
        (None, {"fields": ["name", "slug", "status", ("starts_at", "ends_at")]}),
        (
            _("What counts as a referral"),
            {
                "fields": [
                    "qualifying_event",
                    ("min_purchase_amount", "currency"),
                    "attribution_window_days",
                ]
            },
        ),
        (_("Rewards and limits"), {"fields": ["holding_days", ("budget_cap", "per_referrer_cap")]}),
        (_("Alerts"), {"fields": ["k_alert_threshold", "k_alert_drop_fraction"]}),
        (_("Public pages"), {"fields": ["leaderboard_public"]}),
        (_("Record"), {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Campaign]:
        return super().get_queryset(request).annotate(participant_total=Count("participants"))

    def get_urls(self) -> list[URLPattern]:
        dashboard = self.admin_site.admin_view(partial(campaign_dashboard, model_admin=self))
        return [
            path("<int:campaign_id>/dashboard/", dashboard, name="campaigns_campaign_dashboard"),
            *super().get_urls(),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # The K-drop banner: one query for every open alert, shown above the list. Only on
        # GET: a POSTed action redirects here, and the banner would show twice.
        if request.method == "GET":
            for alert in open_alerts():
                messages.warning(request, alert_text(alert).headline)
        return super().changelist_view(request, extra_context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = extra_context or {}
        if object_id.isdigit():
            alert = open_alerts([int(object_id)]).first()
            extra_context["k_alert"] = alert_text(alert) if alert else None
            extra_context["dashboard_url"] = reverse(
                "admin:campaigns_campaign_dashboard", args=[int(object_id)]
            )
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description=_("participants"), ordering="participant_total")
    def participant_count(self, obj: Campaign) -> int:
        return obj.participant_total  # type: ignore[attr-defined]

    @admin.display(description=_("links"))
    def links(self, obj: Campaign) -> str:
        participants = reverse("admin:referrals_participant_changelist")
        dashboard = reverse("admin:campaigns_campaign_dashboard", args=[obj.pk])
        return format_html(
            '<a href="/c/{}/">{}</a> · <a href="{}?campaign__id__exact={}">{}</a>'
            ' · <a href="{}">{}</a>',
            obj.slug, _("landing page"), participants, obj.pk, _("participants"),
            dashboard, _("K-factor dashboard"),
        )  # fmt: skip
