"""The host API for events and rewards: thin views over the services and selectors."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from apps.api import signatures
from apps.api.models import ApiKey
from apps.api.pagination import Pagination
from apps.api.serializers import AmountField, CurrencyField, StrictJSONSerializer, TimeField
from apps.api.views import ERRORS
from apps.common.money import quantize

from . import selectors, services
from .models import ConversionStatus, ConversionType, RewardState
from .serializers import EventResponseSerializer, RewardSerializer

IDEMPOTENCY_KEY_MAX = 255
# Clocks differ a little; an event from further ahead than this is a mistake.
FUTURE_TOLERANCE = timedelta(minutes=5)


EVENT_TYPES = [
    (ConversionType.SIGNUP_VERIFIED.value, ConversionType.SIGNUP_VERIFIED.label),
    (ConversionType.PURCHASE.value, ConversionType.PURCHASE.label),
    (ConversionType.REFUND.value, ConversionType.REFUND.label),
]


class EventSerializer(StrictJSONSerializer):
    """Event JSON: `{type, campaign, participant_id | external_id, order_id, amount,
    currency, occurred_at}`."""

    type = serializers.ChoiceField(choices=EVENT_TYPES)
    campaign = serializers.SlugField(max_length=50)
    participant_id = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=2**63 - 1
    )
    external_id = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, max_length=128
    )
    order_id = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=128, trim_whitespace=True
    )
    amount = AmountField(required=False, allow_null=True)
    currency = CurrencyField(required=False, allow_null=True, allow_blank=True)
    occurred_at = TimeField(required=False, allow_null=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        problems: dict[str, str] = {}
        if attrs.get("participant_id") is None and not attrs.get("external_id"):
            problems["participant_id"] = "give participant_id or external_id"
        if attrs["type"] in (ConversionType.PURCHASE, ConversionType.REFUND):
            if not attrs.get("order_id"):
                problems["order_id"] = "required for purchases and refunds"
            amount = attrs.get("amount")
            if amount is None:
                problems["amount"] = "required for purchases and refunds"
            elif amount <= 0:
                problems["amount"] = "must be more than 0"
            if not attrs.get("currency"):
                problems["currency"] = "required for purchases and refunds"
            elif amount is not None and amount != quantize(amount, attrs["currency"]):
                problems["amount"] = (
                    f"{attrs['currency']} amounts are not finer than its minor unit"
                )
        occurred_at = attrs.get("occurred_at")
        if occurred_at is not None and occurred_at > timezone.now() + FUTURE_TOLERANCE:
            problems["occurred_at"] = "is in the future"
        if problems:
            raise serializers.ValidationError(problems)
        return attrs


def _prefers_async(request: Request) -> bool:
    """Whether the request says `Prefer: respond-async` (RFC 7240; parameters ignored)."""
    prefer = request.headers.get("Prefer", "")
    return any(p.split(";")[0].strip().lower() == "respond-async" for p in prefer.split(","))


def _request_hash(data: Any) -> str:
    """The body's fingerprint, insensitive to key order and whitespace."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class EventView(GenericAPIView):
    serializer_class = EventSerializer

    @extend_schema(
        summary="Post a conversion event",
        description=(
            "A verified sign-up, a purchase or a refund. One event has one effect however "
            "often it is delivered: with an `Idempotency-Key` header the same key and body "
            "answer the first response again (another body: 422; still in flight: 409); "
            "without one, `(campaign, type, order_id)` is the key. When the API key has a "
            "signing secret, the request must carry a Standard Webhooks signature "
            "(`webhook-id`, `webhook-timestamp`, `webhook-signature`).\n\n"
            "With `Prefer: respond-async` a purchase is stored and answered at once: 202, "
            "`status` `queued`, no rewards yet, and `Preference-Applied: respond-async`. A "
            "worker applies it within seconds, exactly as it would have been applied here; "
            "its rewards come by webhook and in GET /rewards/, and a repeat of the purchase "
            "answers it as it is then. Other events are applied at once whatever is asked."
        ),
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                required=False,
                examples=[OpenApiExample("An order's key", value="6f1c0a52-order-1001")],
            ),
            OpenApiParameter(
                "Prefer",
                str,
                OpenApiParameter.HEADER,
                required=False,
                description="`respond-async`: store a purchase now, apply it in a worker.",
                examples=[OpenApiExample("Apply it later", value="respond-async")],
            ),
        ],
        request=EventSerializer,
        examples=[
            OpenApiExample(
                "A purchase",
                {
                    "type": "purchase",
                    "campaign": "spring",
                    "external_id": "u-42",
                    "order_id": "1001",
                    "amount": "50.00",
                    "currency": "CNY",
                    "occurred_at": "2026-04-01T10:00:00+08:00",
                },
                request_only=True,
            ),
            OpenApiExample(
                "A verified sign-up",
                {"type": "signup_verified", "campaign": "spring", "external_id": "u-42"},
                request_only=True,
            ),
        ],
        responses={
            201: EventResponseSerializer,
            202: OpenApiResponse(
                EventResponseSerializer,
                "A purchase queued (Prefer: respond-async), or a refund kept until its "
                "purchase arrives.",
            ),
            200: OpenApiResponse(EventResponseSerializer, "A repeat: the first response."),
            409: ERRORS[400],
            422: ERRORS[400],
            **ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        api_key = request.auth
        assert isinstance(api_key, ApiKey)  # noqa: S101 (ApiKeyAuthentication's)
        if api_key.signing_secret:
            # Before anything is parsed or written.
            signatures.verify(
                [api_key.signing_secret, api_key.previous_signing_secret],
                body=request.body,
                headers=request.headers,
            )
        key = request.headers.get("Idempotency-Key", "").strip()
        if len(key) > IDEMPOTENCY_KEY_MAX:
            raise serializers.ValidationError(
                {"Idempotency-Key": [f"at most {IDEMPOTENCY_KEY_MAX} characters"]}
            )
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = services.conversion_ingest(
            type=data["type"],
            campaign_slug=data["campaign"],
            participant_id=data.get("participant_id"),
            external_id=data.get("external_id") or None,
            order_id=data.get("order_id") or "",
            amount=data.get("amount"),
            currency=data.get("currency") or "",
            occurred_at=data.get("occurred_at"),
            api_key=api_key,
            idempotency_key=key,
            request_hash=_request_hash(request.data) if key else "",
            respond_async=_prefers_async(request),
        )
        response = Response(result.body, status=result.status)
        if result.replayed:
            response["Idempotent-Replayed"] = "true"
        if result.body.get("status") == ConversionStatus.QUEUED:
            response["Preference-Applied"] = "respond-async"
        return response


class RewardFilter(serializers.Serializer):
    campaign = serializers.SlugField(required=False)
    state = serializers.ChoiceField(choices=RewardState.choices, required=False)
    updated_since = serializers.DateTimeField(required=False)


class RewardPagination(Pagination):
    # Many rewards share a creation time (one event grants several); ids never tie.
    ordering = "-id"


class RewardListView(GenericAPIView):
    serializer_class = RewardSerializer
    pagination_class = RewardPagination

    @extend_schema(
        summary="List rewards",
        parameters=[RewardFilter],
        responses={200: RewardSerializer(many=True), **ERRORS},
    )
    def get(self, request: Request) -> Response:
        filters = RewardFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        rewards = selectors.reward_list(
            campaign_slug=filters.validated_data.get("campaign"),
            state=filters.validated_data.get("state"),
            updated_since=filters.validated_data.get("updated_since"),
        )
        page = self.paginate_queryset(rewards)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)
