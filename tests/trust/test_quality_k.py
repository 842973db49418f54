"""Quality K: K counting only referees who qualified and were not flagged, beside raw K in
the report, the API, the kfactor command and the dashboard; tiers count the same."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from apps.analytics.selectors import kfactor_report
from apps.referrals.selectors import participant_progress
from tests.factories import join

pytestmark = pytest.mark.django_db


@pytest.fixture
def spring(campaign, alice):
    """A sign-up campaign (joining qualifies): alice brought bob, carol and a friend on a
    throwaway address, whom the rules flagged."""
    join(campaign, "bob", referrer=alice)
    join(campaign, "carol", referrer=alice)
    join(campaign, "grab", referrer=alice, email="grab@mailinator.com")
    return campaign


def test_the_report_counts_quality_beside_raw_and_qualified_k(spring):
    report = kfactor_report(spring)
    assert (report.participants, report.referred) == (4, 3)
    assert report.k == report.k_qualified == 0.75
    assert report.k_quality == 0.5


def test_tiers_count_what_quality_k_counts(spring, alice):
    assert participant_progress(alice)["qualified_referrals"] == 2


def test_the_api_adds_quality_k_and_keeps_every_contract_field(api, spring):
    body = api.get("/api/v1/campaigns/spring/stats/").json()
    assert body["k_quality"] == 0.5
    assert (body["k"], body["k_qualified"]) == (0.75, 0.75)
    contract = {
        "participants", "referred", "seeds", "visitors", "i", "c", "k", "k_qualified",
        "generations", "cohorts", "cycle_time_hours", "amplification",
    }  # fmt: skip
    assert contract <= set(body) and set(body) - contract == {"k_quality"}
    schema = api.get("/api/schema/?format=json").json()
    assert "k_quality" in schema["components"]["schemas"]["Stats"]["properties"]


def test_the_kfactor_command_shows_quality_k(spring):
    out = StringIO()
    call_command("kfactor", "spring", stdout=out)
    line = next(line for line in out.getvalue().splitlines() if "quality K" in line)
    assert line.split()[-1] == "0.500"
    out = StringIO()
    call_command("kfactor", "spring", "--json", stdout=out)
    assert json.loads(out.getvalue())["k_quality"] == 0.5


def test_the_dashboard_shows_quality_k_beside_raw_k(olga, spring):
    html = olga.get(f"/admin/campaigns/campaign/{spring.pk}/dashboard/").content.decode()
    tile = html[html.index("Quality K") :][:200]
    assert "0.500" in tile
    assert "K-factor" in html and "Qualified K" in html
