"""Rewards in the admin: the review queue, bulk approve and reject with a reason, each
reward's history, each participant's rewards, and the events as received. Payout batches
and the finance log are administered in apps/exports/admin.py, beside the reports."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from apps.common.errors import FissionError
from apps.common.money import format_amount

from . import lifecycle, payouts
from .models import (
    UNPAID_STATES,
    Conversion,
    Reward,
    RewardReview,
    RewardState,
    RewardTransition,
)


class ReasonActionForm(ActionForm):
    reason = forms.CharField(
        label=_("Reason"),
        required=False,
        max_length=300,
        help_text=_("Required to reject; recorded in each reward's history."),
    )


class TransitionInline(admin.TabularInline):
    model = RewardTransition
    extra = 0
    can_delete = False
    readonly_fields = fields = (
        "created_at", "from_state", "to_state", "actor", "reason", "conversion",
    )  # fmt: skip
    verbose_name_plural = _("history (append-only)")

    def get_queryset(self, request: HttpRequest) -> QuerySet[RewardTransition]:
        return super().get_queryset(request).select_related("conversion")  # shown per row

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RewardAdmin(admin.ModelAdmin):
    list_display = [
        "id", "participant_link", "campaign", "source", "what", "money", "state",
        "reason", "due_at", "created_at",
    ]  # fmt: skip
    list_filter = ["state", "source", "reason", "campaign", "currency"]
    search_fields = ["=id", "=order_id", "participant__email", "=participant__external_id"]
    list_select_related = ["participant", "campaign"]
    date_hierarchy = "created_at"
    action_form = ReasonActionForm
    actions = ["approve", "reject", "new_payout_batch"]
    inlines = [TransitionInline]
    fields = [
        ("participant", "campaign"), ("source", "level", "tier_threshold", "percent"),
        ("amount", "currency", "kind"), "description", ("state", "reason"),
        ("due_at", "approved_at", "paid_at", "payout_reference", "payout_batch"),
        ("conversion", "purchase", "order_id"), ("referee", "adjusts"),
        ("created_at", "updated_at"),
    ]  # fmt: skip
    readonly_fields = [f.name for f in Reward._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # rewards come from events, never by hand

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # financial records: reverse or reject, never delete

    @admin.display(description=_("participant"), ordering="participant__name")
    def participant_link(self, obj: Reward) -> str:
        url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist")
        return format_html(
            '<a href="{}?participant__id__exact={}" title="{}">{}</a>',
            url,
            obj.participant_id,
            _("All rewards of this participant"),
            obj.participant,
        )

    @admin.display(description=_("for"))
    def what(self, obj: Reward) -> str:
        if obj.level:
            text = f"L{obj.level} · {obj.order_id}"
        elif obj.tier_threshold:
            text = f"tier {obj.tier_threshold}"
        else:
            text = str(_("referee"))
        return f"{text} (correction)" if obj.adjusts_id else text

    @admin.display(description=_("amount"), ordering="amount")
    def money(self, obj: Reward) -> str:
        return f"{format_amount(obj.amount, obj.currency)} {obj.currency}"

    def _actor(self, request: HttpRequest) -> str:
        return f"admin:{request.user.get_username()}"

    @admin.action(description=_("Approve the selected rewards"), permissions=["change"])
    def approve(self, request: HttpRequest, queryset: QuerySet[Reward]) -> None:
        count = lifecycle.rewards_approve(
            reward_ids=list(queryset.values_list("pk", flat=True)),
            actor=self._actor(request),
            reason=request.POST.get("reason", ""),
        )
        self.message_user(
            request, _("%(count)d rewards approved or held.") % {"count": count}, messages.SUCCESS
        )

    @admin.action(
        description=_("Reject the selected rewards (give a reason)"), permissions=["change"]
    )
    def reject(self, request: HttpRequest, queryset: QuerySet[Reward]) -> None:
        try:
            count = lifecycle.rewards_reject(
                reward_ids=list(queryset.values_list("pk", flat=True)),
                actor=self._actor(request),
                reason=request.POST.get("reason", ""),
            )
        except FissionError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        self.message_user(
            request, _("%(count)d rewards rejected.") % {"count": count}, messages.SUCCESS
        )

    def has_batch_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("rewards.add_payoutbatch")

    @admin.action(
        description=_("Pay the selected rewards in a new payout batch"), permissions=["batch"]
    )
    def new_payout_batch(
        self, request: HttpRequest, queryset: QuerySet[Reward]
    ) -> HttpResponse | None:
        """Finance ticks approved rewards; owed-back entries of the same participants are
        netted in (apps/rewards/payouts.py). Anything not payable refuses the batch."""
        try:
            result = payouts.payout_batch_create(
                actor=self._actor(request), reward_ids=list(queryset.values_list("pk", flat=True))
            )
        except FissionError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return None
        batch = result.batch
        self.message_user(
            request,
            _("Payout batch #%(id)s: %(payees)s payees, %(lines)s entries, %(total)s %(currency)s.")
            % {
                "id": batch.pk,
                "payees": batch.payee_count,
                "lines": batch.line_count,
                "total": format_amount(batch.total, batch.currency),
                "currency": batch.currency,
            },
            messages.SUCCESS,
        )
        if result.carried_forward:
            self.message_user(
                request,
                _(
                    "%(count)s participants owe back more than they are due and were left "
                    "out; their entries are carried forward to a later batch."
                )
                % {"count": len(result.carried_forward)},
                messages.WARNING,
            )
        return HttpResponseRedirect(reverse("admin:rewards_payoutbatch_change", args=[batch.pk]))


admin.site.register(Reward, RewardAdmin)


@admin.register(RewardReview)
class RewardReviewAdmin(RewardAdmin):
    list_filter = ["source", "reason", "campaign"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Reward]:
        return (
            super()
            .get_queryset(request)
            .filter(
                Q(state=RewardState.PENDING)
                | Q(participant__status__in=("flagged", "blocked"), state__in=UNPAID_STATES)
            )
        )


@admin.register(Conversion)
class ConversionAdmin(admin.ModelAdmin):
    list_display = [
        "id", "type", "campaign", "participant", "order_id", "money", "status",
        "qualifying", "occurred_at", "received_at",
    ]  # fmt: skip
    list_filter = ["type", "status", "qualifying", "campaign"]
    search_fields = ["=order_id", "participant__email", "=participant__external_id"]
    list_select_related = ["participant", "campaign"]
    date_hierarchy = "received_at"
    exclude = ["response"]
    readonly_fields = [f.name for f in Conversion._meta.fields if f.name != "response"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("amount"))
    def money(self, obj: Conversion) -> str:
        if obj.amount is None:
            return "—"
        return f"{format_amount(obj.amount, obj.currency)} {obj.currency}"
