"""The stats API and `manage.py kfactor`: the same report, and bad input refused."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from tests.factories import CampaignFactory

from .builders import at, click, join_at

pytestmark = pytest.mark.django_db

URL = "/api/v1/campaigns/spring/stats/"


@pytest.fixture
def spring():
    """alice (1 March) refers bob (2 March) and carol (5 March); bob refers dave (6 March)."""
    campaign = CampaignFactory(slug="spring", name="Spring invite", attribution_window_days=7)
    alice = join_at(campaign, "alice", at())
    bob = join_at(campaign, "bob", at(days=1), alice)
    join_at(campaign, "carol", at(days=4), alice)
    join_at(campaign, "dave", at(days=5), bob)
    for n, day in enumerate((0, 0, 1, 4, 4, 5)):
        click(alice if n < 4 else bob, f"v{n}", at(days=day))
    return campaign


def kfactor(*args: str) -> str:
    out = io.StringIO()
    call_command("kfactor", *args, stdout=out)
    return out.getvalue()


def test_the_api_returns_the_stats_json(api, spring):
    response = api.get(URL)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["participants"] == 4 and body["referred"] == 3 and body["seeds"] == 1
    assert body["visitors"] == 6 and body["i"] == 1.5 and body["c"] == 0.5 and body["k"] == 0.75
    assert body["amplification"] == 4.0
    assert body["generations"] == [
        {"generation": 0, "size": 1, "k": 2.0},
        {"generation": 1, "size": 2, "k": 0.5},
        {"generation": 2, "size": 1, "k": 0.0},
    ]
    assert body["cohorts"][0] == {
        "date": "2025-03-01", "size": 1, "referred": 2, "k": 2.0, "mature": True,
    }  # fmt: skip
    assert body["cycle_time_hours"] == 96.0  # gaps 24, 96, 96 hours


@pytest.mark.parametrize(
    "query",
    ["", "?from=2025-03-02", "?to=2025-03-04", "?from=2025-03-02&to=2025-03-05"],
)
def test_the_cli_and_the_api_agree(api, spring, query):
    response = api.get(URL + query)
    args = ["spring", "--json"]
    for part in query.lstrip("?").split("&"):
        if part:
            name, value = part.split("=")
            args += [f"--{name}", value]
    assert json.loads(kfactor(*args)) == response.json()


def test_a_range_narrows_the_report(api, spring):
    body = api.get(URL + "?from=2025-03-02&to=2025-03-05").json()
    assert (body["participants"], body["referred"], body["seeds"]) == (2, 2, 0)
    assert body["k"] == 1.0 and body["amplification"] is None
    assert body["visitors"] == 3  # visits of 2 and 5 March


def test_the_cli_table_is_readable(spring):
    out = kfactor("spring")
    assert "K-factor report: Spring invite (spring)" in out
    assert "K = R / N" in out and "0.750" in out
    assert "amplification" in out and "4.00" in out
    assert "2025-03-01" in out and "cycle time (median)" in out and "96.0 h" in out


def test_the_cli_says_infinite_amplification_for_k_of_one(spring):
    assert "infinite (K >= 1)" in kfactor("spring", "--from", "2025-03-02")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?from=yesterday", "from"),
        ("?to=2025-02-30", "to"),
        ("?from=20250301", "from"),
        ("?from=2025-03-05&to=2025-03-01", "to"),
        ("?from=0001-01-01", "from"),
        ("?to=9999-12-31", "to"),
    ],
)
def test_bad_ranges_get_the_contract_error(api, spring, query, field):
    response = api.get(URL + query)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_range" and field in error["fields"]
    assert set(response.json()) == {"error"}


def test_an_unknown_campaign_is_404(api, spring):
    response = api.get("/api/v1/campaigns/nope/stats/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "campaign_not_found"


def test_stats_need_a_key(anon_api, spring):
    response = anon_api.get(URL)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_stats_are_read_only(api, spring):
    assert api.post(URL, {}, format="json").status_code == 405


def test_the_cli_refuses_bad_input(spring):
    with pytest.raises(CommandError, match="No campaign"):
        kfactor("nope")
    with pytest.raises(CommandError, match="must not be before from"):
        kfactor("spring", "--from", "2025-03-05", "--to", "2025-03-01")


def test_the_schema_documents_the_stats_call(api):
    schema = api.get("/api/schema/?format=json")
    assert schema.status_code == 200
    assert "/api/v1/campaigns/{slug}/stats/" in schema.json()["paths"]
