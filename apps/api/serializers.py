"""The API's JSON shapes (see DESIGN.md, "REST API"). Shapes only: the rules live in the
services that the views call."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty

from apps.campaigns.models import Campaign, RewardKind
from apps.common.money import (
    AMOUNT_DECIMAL_PLACES,
    AMOUNT_MAX_DIGITS,
    format_amount,
    is_currency,
    quantize,
)
from apps.referrals.models import Participant
from apps.rewards.serializers import RewardSerializer


def _json_type(field: serializers.Field) -> tuple[type, ...] | None:
    """The JSON types a request field takes, as the schema names them; None: any."""
    if isinstance(field, serializers.BooleanField):
        return (bool,)
    if isinstance(field, serializers.IntegerField):
        return (int,)
    if isinstance(field, serializers.FloatField):
        return (int, float)
    if isinstance(
        field,
        serializers.CharField
        | serializers.ChoiceField
        | serializers.DecimalField
        | serializers.DateTimeField
        | serializers.DateField,
    ):
        return (str,)  # amounts and percents are decimal strings by contract
    if isinstance(field, serializers.ListField | serializers.ListSerializer):
        return (list,)
    if isinstance(field, serializers.Serializer | serializers.DictField):
        return (dict,)
    return None


class StrictJSONSerializer(serializers.Serializer):
    """A request body whose fields take exactly the JSON types the schema says.

    DRF would turn `42` into "42", `"1"` into 1 and `"yes"` into true; the API answers
    400 instead, naming the field, so a client learns of a mistake (an amount sent as a
    binary float, say) at once and the OpenAPI schema says what is really accepted.
    """

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            problems: dict[str, list[str]] = {}
            for name, field in self.fields.items():
                value = data.get(name)
                if field.read_only or value is None:
                    continue  # absent, or null (which the field itself accepts or not)
                expected = _json_type(field)
                wrong_bool = isinstance(value, bool) and bool not in (expected or (bool,))
                if expected is not None and (not isinstance(value, expected) or wrong_bool):
                    problems[name] = [f"must be a JSON {_JSON_NAMES[expected[0]]}"]
            if problems:
                raise serializers.ValidationError(problems)
        attrs = super().to_internal_value(data)
        if self.parent is not None and getattr(self.root, "partial", False):
            attrs = self._whole(attrs)
        return attrs

    def _whole(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """A nested object (a tier, the landing copy) replaces what was there, so even in
        a PATCH it is given whole: its required fields are required and its defaults apply
        (DRF would skip both for every level of a partial update)."""
        missing = {
            name: ["This field is required."]
            for name, field in self.fields.items()
            if field.required and field.source not in attrs
        }
        if missing:
            raise serializers.ValidationError(missing)
        for field in self.fields.values():
            source = str(field.source)
            if not field.read_only and source not in attrs and field.default is not empty:
                # Not get_default(): under a partial root it skips the field.
                default = field.default
                attrs[source] = default() if callable(default) else default
        return attrs


_JSON_NAMES = {
    bool: "boolean",
    int: "integer",
    str: "string",
    list: "array",
    dict: "object",
}


class AmountField(serializers.DecimalField):
    """A decimal string in, a decimal string out."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_digits", AMOUNT_MAX_DIGITS)
        kwargs.setdefault("decimal_places", AMOUNT_DECIMAL_PLACES)
        kwargs.setdefault("min_value", Decimal(0))
        super().__init__(**kwargs)

    def to_representation(self, value: Any) -> str:
        return format_amount(Decimal(value))


# Times a campaign or an event may name: any real campaign's, and no earlier than 1970,
# where every time zone's offset is whole minutes (before 1901 Shanghai's was +08:05:43,
# which no ISO 8601 reader takes back).
EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2999, 12, 31, tzinfo=UTC)


class TimeField(serializers.DateTimeField):
    """An ISO 8601 time from 1970 to 2999."""

    def to_internal_value(self, value: Any) -> datetime:
        parsed = super().to_internal_value(value)
        if not EARLIEST_TIME <= parsed <= LATEST_TIME:
            raise serializers.ValidationError("must be between 1970 and 2999")
        return parsed


CURRENCY_PATTERN = r"^[A-Za-z]{3}$"


class CurrencyField(serializers.CharField):
    """Three letters (ISO 4217), in either case; stored upper case."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 3)
        kwargs.setdefault("min_length", 3)
        super().__init__(**kwargs)
        # For the schema (the check itself is below, with a clearer message).
        self.validators.append(RegexValidator(CURRENCY_PATTERN))

    def to_internal_value(self, data: Any) -> str:
        value = str(super().to_internal_value(data)).upper()
        if not is_currency(value):
            raise serializers.ValidationError("Use a three-letter ISO 4217 code such as CNY.")
        return value


class RewardSpecSerializer(StrictJSONSerializer):
    kind = serializers.ChoiceField(choices=RewardKind.choices, default=RewardKind.COUPON)
    amount = AmountField(default=Decimal(0))
    currency = CurrencyField(default="CNY")
    description = serializers.CharField(max_length=500, allow_blank=True, default="")

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["amount"] = format_amount(instance.amount, instance.currency)
        return data

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        amount, currency = attrs.get("amount", Decimal(0)), attrs.get("currency", "CNY")
        if amount != quantize(amount, currency):
            raise serializers.ValidationError(
                {"amount": [f"{currency} amounts cannot be finer than its minor unit."]}
            )
        return attrs


class TierSerializer(RewardSpecSerializer):
    threshold = serializers.IntegerField(min_value=1, max_value=1_000_000)


class LandingSerializer(StrictJSONSerializer):
    language = serializers.ChoiceField(choices=settings.LANGUAGES, default=settings.LANGUAGE_CODE)
    headline = serializers.CharField(max_length=200)
    body = serializers.CharField(allow_blank=True, default="", max_length=20_000)
    reward_text = serializers.CharField(max_length=300, allow_blank=True, default="")


class CampaignSerializer(StrictJSONSerializer, serializers.ModelSerializer):
    commission_percents = serializers.ListField(
        child=serializers.DecimalField(max_digits=5, decimal_places=2),
        max_length=3,
        required=False,
        help_text="Percent of each purchase to level 1 (the referrer), 2 and 3; at most 3.",
    )
    tiers = TierSerializer(many=True, required=False)
    referee_reward = RewardSpecSerializer(required=False, allow_null=True)
    landing = LandingSerializer(
        required=False,
        allow_null=True,
        help_text="Landing copy for one language; null in answers for a campaign without copy.",
    )
    landings = LandingSerializer(
        many=True, read_only=True, source="landing_copies", help_text="Copy in every language."
    )
    min_purchase_amount = AmountField(required=False, allow_null=True)
    budget_cap = AmountField(required=False, allow_null=True)
    per_referrer_cap = AmountField(required=False, allow_null=True)
    currency = CurrencyField(required=False)
    starts_at = TimeField(
        required=False, allow_null=True, help_text="Empty: open as soon as it is active."
    )
    ends_at = TimeField(
        required=False, allow_null=True, help_text="Empty: open until ended by hand."
    )

    class Meta:
        model = Campaign
        fields = [
            "slug", "name", "status", "qualifying_event", "min_purchase_amount", "currency",
            "starts_at", "ends_at", "attribution_window_days", "holding_days",
            "budget_cap", "per_referrer_cap", "k_alert_threshold", "k_alert_drop_fraction",
            "leaderboard_public",
            "commission_percents", "tiers", "referee_reward", "landing", "landings",
            "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["created_at", "updated_at"]
        # A slug taken already is a conflict (409) that the service reports, not a 400.
        extra_kwargs: dict[str, dict[str, Any]] = {"slug": {"validators": []}}

    def to_representation(self, instance: Campaign) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["commission_percents"] = [str(c.percent) for c in instance.commission_levels.all()]
        data["tiers"] = TierSerializer(instance.tiers.all(), many=True).data
        reward = getattr(instance, "referee_reward", None)
        data["referee_reward"] = RewardSpecSerializer(reward).data if reward else None
        for name in ("min_purchase_amount", "budget_cap", "per_referrer_cap"):
            value = getattr(instance, name)
            data[name] = None if value is None else format_amount(value, instance.currency)
        copy = instance.landing_copy()
        data["landing"] = LandingSerializer(copy).data if copy else None
        return data

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        qualifying = attrs.get(
            "qualifying_event", getattr(self.instance, "qualifying_event", "signup")
        )
        minimum = attrs.get("min_purchase_amount")
        if minimum is not None and qualifying != Campaign.QualifyingEvent.PURCHASE:
            raise serializers.ValidationError(
                {"min_purchase_amount": ["Only purchase campaigns have a minimum purchase."]}
            )
        return attrs


class ParticipantRegisterSerializer(StrictJSONSerializer):
    email = serializers.EmailField(max_length=254)
    name = serializers.CharField(
        max_length=Participant._meta.get_field("name").max_length or 100,
        allow_blank=True,
        default="",
    )
    external_id = serializers.CharField(
        max_length=Participant._meta.get_field("external_id").max_length or 128,
        required=False,
        allow_null=True,
    )
    referral_code = serializers.CharField(
        max_length=64, required=False, allow_blank=True, allow_null=True
    )
    consent = serializers.BooleanField(
        help_text="The person agreed to the campaign's terms and to being contacted."
    )
    ip = serializers.IPAddressField(
        required=False,
        allow_blank=True,
        default="",
        help_text="The person's IP address as your application saw it, for the fraud rules. "
        "Only a keyed hash is kept.",
    )
    user_agent = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=2000,
        help_text="The person's browser User-Agent, for the fraud rules. Only its device "
        "class (phone, tablet, desktop…) is kept.",
    )


class ParticipantSerializer(serializers.ModelSerializer):
    invite_url = serializers.SerializerMethodField()
    qr_url = serializers.SerializerMethodField()
    personal_url = serializers.SerializerMethodField()
    referrer_code = serializers.SerializerMethodField()

    class Meta:
        model = Participant
        fields = ["id", "code", "invite_url", "qr_url", "personal_url", "referrer_code", "depth"]

    def get_invite_url(self, obj: Participant) -> str:
        return f"{settings.SITE_URL}/r/{obj.code}"

    def get_qr_url(self, obj: Participant) -> str:
        return f"{settings.SITE_URL}/p/{obj.token}/qr.png"

    def get_personal_url(self, obj: Participant) -> str:
        return f"{settings.SITE_URL}/p/{obj.token}/"

    def get_referrer_code(self, obj: Participant) -> str | None:
        return obj.referrer.code if obj.referrer_id and obj.referrer else None


class FlagSerializer(serializers.Serializer):
    code = serializers.CharField()
    score = serializers.IntegerField()
    reason = serializers.CharField()


class NextTierSerializer(serializers.Serializer):
    threshold = serializers.IntegerField()
    remaining = serializers.IntegerField()
    description = serializers.CharField()


class ProgressSerializer(serializers.Serializer):
    qualified_referrals = serializers.IntegerField()
    next_tier = NextTierSerializer(allow_null=True)


class ParticipantDetailSerializer(ParticipantSerializer):
    flags = serializers.SerializerMethodField()
    verified = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()
    rewards = serializers.SerializerMethodField()

    class Meta(ParticipantSerializer.Meta):
        fields = [
            *ParticipantSerializer.Meta.fields,
            "status", "flags", "verified", "progress", "rewards",
        ]  # fmt: skip

    def get_flags(self, obj: Participant) -> list[dict[str, Any]]:
        active = [f for f in obj.flags.all() if f.resolution != "overturned"]
        return FlagSerializer(active, many=True).data  # type: ignore[return-value]

    def get_verified(self, obj: Participant) -> bool:
        return obj.verified_at is not None

    def get_progress(self, obj: Participant) -> dict[str, Any]:
        from apps.referrals.selectors import participant_progress

        return ProgressSerializer(participant_progress(obj)).data

    @extend_schema_field(RewardSerializer(many=True))
    def get_rewards(self, obj: Participant) -> list[dict[str, Any]]:
        """Every reward entry of the participant, oldest first (Reward JSON)."""
        from apps.rewards.selectors import participant_rewards
        from apps.rewards.serializers import reward_json

        return [reward_json(r) for r in participant_rewards(obj)]
