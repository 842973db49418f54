from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import services, webhooks
from .models import ApiKey, WebhookAttempt, WebhookDelivery, WebhookEndpoint


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "signed_events", "created_at", "revoked_at"]
    readonly_fields = ["prefix", "created_at", "revoked_at", "signed_events"]
    fields = ["name", "prefix", "signed_events", "created_at", "revoked_at"]
    actions = ["revoke", "rotate_signing_secret", "finish_rotation"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Keys are made by `manage.py create_api_key`, which shows the key once.
        return False

    @admin.display(description=_("events must be signed"), boolean=True)
    def signed_events(self, obj: ApiKey) -> bool:
        return bool(obj.signing_secret)

    @admin.action(description=_("Revoke the selected keys"))
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(
            request, _("%(count)d keys revoked.") % {"count": count}, messages.SUCCESS
        )

    @admin.action(description=_("New signing secret (the old one stays valid until finished)"))
    def rotate_signing_secret(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for api_key in queryset:
            secret = services.api_key_rotate_signing_secret(api_key=api_key)
            self.message_user(
                request,
                _("%(name)s: events must now be signed. New secret, shown only now: %(secret)s")
                % {"name": api_key.name, "secret": secret},
                messages.WARNING,
            )

    @admin.action(description=_("Finish a signing-secret rotation (drop the old secret)"))
    def finish_rotation(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for api_key in queryset:
            services.api_key_finish_rotation(api_key=api_key)
        self.message_user(request, _("Old signing secrets dropped."), messages.SUCCESS)


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ["url", "campaign", "events", "is_active", "created_at"]
    list_filter = ["is_active", "campaign"]
    list_select_related = ["campaign"]
    search_fields = ["url", "description"]
    autocomplete_fields = ["campaign"]
    fields = ["url", "description", "campaign", "events", "is_active", "secret_hint"]
    readonly_fields = ["secret_hint"]
    actions = ["rotate_secret", "finish_rotation"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    @admin.display(description=_("signing secret"))
    def secret_hint(self, obj: WebhookEndpoint) -> str:
        if not obj.secret:
            return str(_("Made when the endpoint is saved, and shown once."))
        rotating = _(" (rotating: the old secret signs too)") if obj.previous_secret else ""
        return f"{obj.secret[:10]}…{rotating}"

    def save_model(
        self, request: HttpRequest, obj: WebhookEndpoint, form: Any, change: bool
    ) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        endpoint = webhooks.webhook_endpoint_create(
            url=obj.url,
            campaign_id=obj.campaign_id,
            events=obj.events or [],
            description=obj.description,
        )
        obj.pk, obj.secret = endpoint.pk, endpoint.secret
        self.message_user(
            request,
            _("Signing secret, shown only now: %(secret)s") % {"secret": endpoint.secret},
            messages.WARNING,
        )

    @admin.action(description=_("New signing secret (both sign until finished)"))
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            secret = webhooks.webhook_endpoint_rotate_secret(endpoint=endpoint)
            self.message_user(
                request,
                _("%(url)s: new secret, shown only now: %(secret)s")
                % {"url": endpoint.url, "secret": secret},
                messages.WARNING,
            )

    @admin.action(description=_("Finish a secret rotation (stop signing with the old one)"))
    def finish_rotation(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            webhooks.webhook_endpoint_finish_rotation(endpoint=endpoint)
        self.message_user(request, _("Old secrets dropped."), messages.SUCCESS)


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    readonly_fields = fields = (
        "number", "created_at", "status_code", "error", "duration_ms", "response_body",
    )  # fmt: skip

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "id", "event_type", "event_id", "endpoint", "status", "attempts",
        "next_attempt_at", "last_error", "created_at",
    ]  # fmt: skip
    list_filter = ["status", "event_type", "endpoint"]
    list_select_related = ["endpoint"]
    search_fields = ["=event_id"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]
    inlines = [WebhookAttemptInline]
    actions = ["retry_now"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description=_("Send again now"))
    def retry_now(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        count = webhooks.webhook_delivery_retry(
            delivery_ids=list(queryset.values_list("pk", flat=True))
        )
        self.message_user(
            request, _("%(count)d deliveries queued.") % {"count": count}, messages.SUCCESS
        )
