"""Each campaign's rules and allowlist in its admin page; the allowlist's values."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.common import memory
from apps.trust.models import AllowlistEntry, FraudRuleSetting
from apps.trust.rules import DEFAULTS, RULES_SECONDS, campaign_rules
from tests.factories import join

from .conftest import set_rule

pytestmark = pytest.mark.django_db


def test_the_campaign_page_edits_its_fraud_rules_and_allowlist(olga, campaign):
    set_rule(campaign, "ip_burst", "block", threshold=3)
    html = olga.get(f"/admin/campaigns/campaign/{campaign.pk}/change/").content.decode()
    assert "fraud_rules-TOTAL_FORMS" in html and "allowlist-TOTAL_FORMS" in html
    assert 'value="block" selected' in html


def test_a_campaigns_settings_override_the_defaults_rule_by_rule(campaign):
    set_rule(campaign, "ip_burst", "block", threshold=3)
    rules = campaign_rules(campaign.pk)
    assert (rules["ip_burst"].action, rules["ip_burst"].threshold) == ("block", 3)
    assert rules["ip_burst"].window == DEFAULTS["ip_burst"].window
    assert rules["network_burst"] == DEFAULTS["network_burst"]


def test_rules_changed_here_count_at_once_and_elsewhere_within_seconds(campaign, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(memory.time, "monotonic", lambda: now[0])
    assert campaign_rules(campaign.pk)["ip_burst"].action == "flag"  # now remembered
    # Saved or deleted in this process (the admin): the next join sees it.
    set_rule(campaign, "ip_burst", "block")
    assert campaign_rules(campaign.pk)["ip_burst"].action == "block"
    FraudRuleSetting.objects.filter(campaign=campaign).delete()
    assert campaign_rules(campaign.pk)["ip_burst"].action == "flag"
    # Changed by another process (no signal here): seen once the memory expires.
    FraudRuleSetting.objects.bulk_create(
        [FraudRuleSetting(campaign=campaign, rule="ip_burst", action="off")]
    )
    assert campaign_rules(campaign.pk)["ip_burst"].action == "flag"
    now[0] += RULES_SECONDS + 0.1
    assert campaign_rules(campaign.pk)["ip_burst"].action == "off"


def test_a_join_reads_the_rules_once_every_few_seconds(campaign):
    def rule_reads(name: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            join(campaign, name)
        return sum("trust_fraudrulesetting" in q["sql"] for q in queries.captured_queries)

    assert [rule_reads(name) for name in ("first", "second", "third")] == [1, 0, 0]


@pytest.mark.parametrize(
    ("kind", "typed", "stored"),
    [
        ("network", "203.0.113.7/24", "203.0.113.0/24"),
        ("network", "198.51.100.9", "198.51.100.9/32"),
        ("network", "2001:db8:1::/48", "2001:db8:1::/48"),
        ("domain", "@Example-Corp.COM", "example-corp.com"),
        ("domain", "*.bücher.de", "xn--bcher-kva.de"),
    ],
)
def test_allowlist_values_are_stored_in_their_canonical_form(kind, typed, stored):
    entry = AllowlistEntry(kind=kind, value=typed)
    entry.full_clean()
    assert entry.value == stored


@pytest.mark.parametrize(("kind", "typed"), [("network", "not-an-ip"), ("domain", "localhost")])
def test_allowlist_values_that_mean_nothing_are_refused(kind, typed):
    with pytest.raises(ValidationError):
        AllowlistEntry(kind=kind, value=typed).full_clean()


def test_the_admin_adds_a_global_allowlist_entry(olga):
    response = olga.post(
        "/admin/trust/allowlistentry/add/",
        {"kind": "network", "value": "203.0.113.7/24", "note": "Shanghai office"},
    )
    assert response.status_code == 302
    assert AllowlistEntry.objects.get().value == "203.0.113.0/24"
