"""The Reward and event JSON of DESIGN.md. Shapes only."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.common.money import format_amount

from .models import Conversion, Reward, RewardSource, RewardState

REWARD_FIELDS = (
    "id", "campaign", "participant_id", "source", "level", "tier_threshold", "order_id",
    "amount", "currency", "state", "created_at", "updated_at",
)  # fmt: skip


# One field for every timestamp: making a DRF field costs more than formatting a date.
# It keeps no state between calls (the time zone is read at each one).
_DATETIME = serializers.DateTimeField()


def _iso(value: Any) -> str:
    return _DATETIME.to_representation(value)


def reward_json(reward: Reward, campaign_slug: str | None = None) -> dict[str, Any]:
    """Reward JSON: `{id, campaign, participant_id, source, level, tier_threshold,
    order_id, amount, currency, state, created_at, updated_at}`. A reversal of something
    already paid is an entry with a negative amount."""
    return {
        "id": reward.pk,
        "campaign": campaign_slug or reward.campaign.slug,
        "participant_id": reward.participant_id,
        "source": reward.source,
        "level": reward.level,
        "tier_threshold": reward.tier_threshold,
        "order_id": reward.order_id or None,
        "amount": format_amount(reward.amount, reward.currency),
        "currency": reward.currency,
        "state": reward.state,
        "created_at": _iso(reward.created_at),
        "updated_at": _iso(reward.updated_at),
    }


class RewardSerializer(serializers.Serializer):
    """For the OpenAPI schema and lists; the JSON itself comes from `reward_json`."""

    id = serializers.IntegerField()
    campaign = serializers.SlugField()
    participant_id = serializers.IntegerField()
    source = serializers.ChoiceField(choices=RewardSource.choices)  # type: ignore[assignment]
    level = serializers.IntegerField(allow_null=True, help_text="Commission level, or null.")
    tier_threshold = serializers.IntegerField(allow_null=True)
    order_id = serializers.CharField(allow_null=True)
    amount = serializers.CharField(help_text="Decimal string; negative for a reversal entry.")
    currency = serializers.CharField()
    state = serializers.ChoiceField(choices=RewardState.choices)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def to_representation(self, instance: Reward) -> dict[str, Any]:
        return reward_json(instance)


class EventResponseSerializer(serializers.Serializer):
    """What POST /events/ answers (and answers again to a duplicate)."""

    id = serializers.IntegerField()
    type = serializers.CharField()
    campaign = serializers.SlugField()
    participant_id = serializers.IntegerField()
    order_id = serializers.CharField(allow_null=True)
    amount = serializers.CharField(allow_null=True)
    currency = serializers.CharField(allow_null=True)
    occurred_at = serializers.DateTimeField()
    status = serializers.ChoiceField(
        choices=Conversion.Status.choices,
        help_text="applied; waiting (a refund kept until its purchase arrives); ignored; "
        "queued (a purchase taken in with Prefer: respond-async, not applied yet).",
    )
    note = serializers.CharField(help_text="Why an event had no effect, when it had none.")
    qualified = serializers.BooleanField(help_text="Whether the participant now qualifies.")
    rewards = RewardSerializer(many=True, help_text="Reward entries this event made or changed.")


def event_json(
    conversion: Conversion, rewards: list[dict[str, Any]], *, qualified: bool
) -> dict[str, Any]:
    return {
        "id": conversion.pk,
        "type": conversion.type,
        "campaign": conversion.campaign.slug,
        "participant_id": conversion.participant_id,
        "order_id": conversion.order_id or None,
        "amount": None
        if conversion.amount is None
        else format_amount(conversion.amount, conversion.currency),
        "currency": conversion.currency or None,
        "occurred_at": _iso(conversion.occurred_at),
        "status": conversion.status,
        "note": conversion.note,
        "qualified": qualified,
        "rewards": rewards,
    }
