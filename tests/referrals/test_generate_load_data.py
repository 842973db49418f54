from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import F

from apps.campaigns.models import Campaign
from apps.referrals.models import Click, Participant, SubtreeSize
from apps.referrals.selectors import descendant_count

pytestmark = pytest.mark.django_db


def _generate(**sizes):
    call_command("generate_load_data", stdout=io.StringIO(), stderr=io.StringIO(), **sizes)


def test_it_makes_the_shapes_the_benchmarks_need():
    if connection.vendor != "postgresql":
        with pytest.raises(CommandError, match="needs PostgreSQL"):
            _generate()
        return
    sizes = {
        "campaigns": 3,
        "participants": 400,
        "clicks": 1000,
        "big_subtree": 150,
        "chains": 2,
        "chain_depth": 40,
    }
    _generate(**sizes)
    _generate(**sizes)  # a second run replaces the first
    assert Campaign.objects.filter(slug__startswith="load-").count() == 3
    assert Participant.objects.count() == 400 and Click.objects.count() == 1000
    first = Campaign.objects.get(slug="load-000")
    viral = Participant.objects.filter(campaign=first, depth=0).order_by("id").first()
    assert descendant_count(viral) == 150
    assert SubtreeSize.objects.get(participant=viral).descendants == 150  # rolled up
    assert Participant.objects.filter(campaign=first).order_by("-depth").first().depth == 40
    for p in Participant.objects.exclude(referrer=None).select_related("referrer")[:200]:
        assert p.depth == p.referrer.depth + 1
        assert p.path == p.referrer.path_for_children
        assert p.joined_at >= p.referrer.joined_at
    assert not Click.objects.exclude(campaign_id=F("participant__campaign_id")).exists()
