"""The stats call of the host API: `GET /api/v1/campaigns/<slug>/stats/`."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.api.views import ERRORS, SLUG
from apps.campaigns.selectors import campaign_get

from .ranges import report_range
from .selectors import kfactor_report


class GenerationSerializer(serializers.Serializer):
    generation = serializers.IntegerField(help_text="0 for the seeds; n for depth n.")
    size = serializers.IntegerField()
    k = serializers.FloatField(help_text="Size of the next generation over this one's.")


class CohortSerializer(serializers.Serializer):
    date = serializers.DateField(help_text="Day of joining, in the site's time zone.")
    size = serializers.IntegerField()
    referred = serializers.IntegerField(
        help_text="People the cohort referred within the attribution window."
    )
    k = serializers.FloatField()
    mature = serializers.BooleanField(help_text="The window has closed for the whole cohort.")


class StatsSerializer(serializers.Serializer):
    """For the schema: the body is KReport.as_dict(), DESIGN.md's Stats JSON."""

    participants = serializers.IntegerField()
    referred = serializers.IntegerField()
    seeds = serializers.IntegerField()
    visitors = serializers.IntegerField(help_text="Distinct visitors via invite links, no bots.")
    i = serializers.FloatField(help_text="Invite rate: visitors / participants.")
    c = serializers.FloatField(help_text="Conversion: referred / visitors.")
    k = serializers.FloatField(help_text="K = i × c = referred / participants.")
    k_qualified = serializers.FloatField(help_text="K counting only referees who qualified.")
    k_quality = serializers.FloatField(
        help_text="K counting only referees who qualified and are not flagged or blocked by "
        "the fraud rules: the referrals that count toward tiers."
    )
    generations = GenerationSerializer(many=True)
    cohorts = CohortSerializer(many=True)
    cycle_time_hours = serializers.FloatField(allow_null=True)
    amplification = serializers.FloatField(allow_null=True, help_text="Null when K ≥ 1.")


RANGE = [
    OpenApiParameter(
        name,
        OpenApiTypes.DATE,
        description=f"Only participants who joined {when} this day (YYYY-MM-DD, the site's "
        "time zone, included); visitors of the same days.",
        # The years report_range takes (1970 to 2999), which a date format cannot say.
        pattern=r"^(19[7-9][0-9]|2[0-9]{3})-[0-9]{2}-[0-9]{2}$",
        examples=[OpenApiExample(name, value=day)],
    )
    for name, when, day in (
        ("from", "on or after", "2026-03-01"),
        ("to", "on or before", "2026-03-31"),
    )
]


class CampaignStatsView(APIView):
    @extend_schema(
        summary="The K-factor report of a campaign",
        parameters=[SLUG, *RANGE],
        responses={200: StatsSerializer, **ERRORS},
    )
    def get(self, request: Request, slug: str) -> Response:
        campaign = campaign_get(slug)
        date_from, date_to = report_range(
            request.query_params.get("from"), request.query_params.get("to")
        )
        return Response(kfactor_report(campaign, date_from, date_to).as_dict())
