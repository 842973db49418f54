"""The host API: thin views over the services and selectors."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers as s
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from apps.campaigns import selectors as campaign_selectors
from apps.campaigns.services import KEEP, campaign_save
from apps.notifications.services import notify_joined
from apps.referrals import selectors as referral_selectors
from apps.referrals.services import participant_join, refuse_if_blocked, resolve_referrer

from .serializers import (
    CampaignSerializer,
    ParticipantDetailSerializer,
    ParticipantRegisterSerializer,
    ParticipantSerializer,
)


@extend_schema_field(
    {
        "anyOf": [
            {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "object"}]}},
            {"type": "object"},
        ],
        "description": "What is wrong with the field: sentences, or, for a nested object "
        "or list, the same shape for its own fields.",
    }
)
class FieldProblems(s.JSONField):
    pass


ERROR = inline_serializer(
    "Error",
    {
        "error": inline_serializer(
            "ErrorBody",
            {
                "code": s.CharField(),
                "message": s.CharField(),
                "fields": s.DictField(child=FieldProblems()),
            },
        )
    },
)
ERRORS = {
    400: OpenApiResponse(ERROR, "The request is not valid; `fields` says what is wrong."),
    401: OpenApiResponse(ERROR, "No key, or a wrong one."),
    404: OpenApiResponse(ERROR, "Not found."),
}
# The path parameter of every campaign's address, with the example the README uses.
SLUG = OpenApiParameter(
    "slug",
    str,
    OpenApiParameter.PATH,
    description="The campaign's slug.",
    examples=[OpenApiExample("spring", value="spring")],
)
CAMPAIGN_EXAMPLE = {
    "slug": "spring",
    "name": "Spring invite",
    "status": "active",
    "qualifying_event": "purchase",
    "min_purchase_amount": "10.00",
    "attribution_window_days": 30,
    "holding_days": 14,
    "commission_percents": ["10.0", "5.0"],
    "tiers": [
        {
            "threshold": 3,
            "kind": "coupon",
            "amount": "50.00",
            "currency": "CNY",
            "description": "50 CNY coupon",
        }
    ],
    "referee_reward": {
        "kind": "coupon",
        "amount": "20.00",
        "currency": "CNY",
        "description": "20 CNY off",
    },
    "landing": {"headline": "邀请好友，一起赢奖励", "body": "…", "language": "zh-hans"},
}


def _nested(validated: dict[str, Any]) -> dict[str, Any]:
    """Split a validated campaign body into the service's arguments."""
    nested: dict[str, Any] = {
        "tiers": validated.pop("tiers", None),
        "commission_percents": validated.pop("commission_percents", None),
        "landing": validated.pop("landing", None),
        "referee_reward": validated.pop("referee_reward", KEEP),
    }
    return nested


class CampaignListView(GenericAPIView):
    serializer_class = CampaignSerializer

    def get_queryset(self) -> Any:
        return campaign_selectors.campaign_list()

    @extend_schema(
        summary="List campaigns", responses={200: CampaignSerializer(many=True), **ERRORS}
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        summary="Create a campaign",
        responses={201: CampaignSerializer, 409: ERRORS[400], **ERRORS},
        examples=[OpenApiExample("A purchase campaign", CAMPAIGN_EXAMPLE, request_only=True)],
    )
    def post(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fields = dict(serializer.validated_data)
        nested = _nested(fields)
        campaign = campaign_save(fields=fields, **nested)
        campaign = campaign_selectors.campaign_get(campaign.slug)
        return Response(self.get_serializer(campaign).data, status=status.HTTP_201_CREATED)


class CampaignDetailView(GenericAPIView):
    serializer_class = CampaignSerializer

    @extend_schema(
        summary="A campaign", parameters=[SLUG], responses={200: CampaignSerializer, **ERRORS}
    )
    def get(self, request: Request, slug: str) -> Response:
        return Response(self.get_serializer(campaign_selectors.campaign_get(slug)).data)

    @extend_schema(
        summary="Change a campaign",
        parameters=[SLUG],
        responses={200: CampaignSerializer, 409: ERRORS[400], **ERRORS},
        examples=[OpenApiExample("Pause it", {"status": "paused"}, request_only=True)],
    )
    def patch(self, request: Request, slug: str) -> Response:
        campaign = campaign_selectors.campaign_get(slug)
        serializer = self.get_serializer(campaign, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        fields = dict(serializer.validated_data)
        nested = _nested(fields)
        campaign = campaign_save(campaign=campaign, fields=fields, **nested)
        return Response(self.get_serializer(campaign_selectors.campaign_get(campaign.slug)).data)


class ParticipantRegisterView(GenericAPIView):
    serializer_class = ParticipantRegisterSerializer

    @extend_schema(
        summary="Register a participant",
        description="Idempotent by email (normalised) and by external_id: the same person "
        "again gets 200 with the same body. The campaign's fraud rules look at the join "
        "(give `ip` and `user_agent` for the rules that need them): a flagged person is "
        "registered as usual (201) and held for review; a blocked one gets 403 "
        "`participant_blocked` and no link.",
        parameters=[SLUG],
        request=ParticipantRegisterSerializer,
        examples=[
            OpenApiExample(
                "A user of the shop",
                {"email": "bob@example.com", "name": "Bob", "external_id": "u-42", "consent": True},
                request_only=True,
            )
        ],
        responses={
            201: ParticipantSerializer,
            200: OpenApiResponse(ParticipantSerializer, "Already registered: the same body."),
            403: OpenApiResponse(ERROR, "participant_blocked: refused by the fraud rules."),
            409: ERRORS[400],
            **ERRORS,
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        campaign = campaign_selectors.campaign_get(slug)
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        code = data.get("referral_code")
        participant, created = participant_join(
            campaign=campaign,
            email=data["email"],
            name=data["name"],
            external_id=data.get("external_id"),
            referrer=resolve_referrer(campaign, code) if code else None,
            consent=data["consent"],
            consent_version="api",
            channel="api",
            client_ip=data["ip"],
            user_agent=data["user_agent"],
        )
        refuse_if_blocked(participant)
        if created:
            # The host vouches for its users' addresses: a welcome, no verification email.
            notify_joined(participant=participant, verify_email=False)
        participant = referral_selectors.participant_get(participant.pk)
        return Response(
            ParticipantSerializer(participant).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class ParticipantDetailView(GenericAPIView):
    serializer_class = ParticipantDetailSerializer

    @extend_schema(
        summary="A participant, with status, flags and progress",
        responses={200: ParticipantDetailSerializer, **ERRORS},
    )
    def get(self, request: Request, pk: int) -> Response:
        participant = referral_selectors.participant_get(pk, detail=True)
        return Response(self.get_serializer(participant).data)
