"""Each campaign's rules and allowlist in its admin page; the allowlist's values."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.trust.models import AllowlistEntry
from apps.trust.rules import DEFAULTS, campaign_rules

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
