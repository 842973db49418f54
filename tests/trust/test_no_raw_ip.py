"""No raw IP address is stored anywhere: not in the click log, the participants, the
flags, the admin's login lockouts, nor any other table."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from .conftest import browser, form, set_rule

pytestmark = pytest.mark.django_db(transaction=True)
ADDRESSES = ["203.0.113.77", "2001:db8:77::1"]


def test_no_table_holds_a_client_address(campaign, api):
    set_rule(campaign, "ip_burst", threshold=1)  # flags with evidence, too
    for n, ip in enumerate(ADDRESSES):
        person = browser(ip)
        person.get("/c/spring/")
        person.post("/c/spring/join", form(f"person{n}@example.com"))
    api.post(
        "/api/v1/campaigns/spring/participants/",
        {"email": "host@example.com", "consent": True, "ip": "203.0.113.78"},
        format="json",
    )
    from apps.referrals.models import Participant

    inviter = Participant.objects.first()
    browser("203.0.113.79").get(f"/r/{inviter.code}")
    Client(REMOTE_ADDR="203.0.113.80").post(
        "/admin/login/", {"username": "olga", "password": "wrong"}
    )

    dump = StringIO()
    call_command("dumpdata", stdout=dump)
    text = dump.getvalue()
    assert "join_ip_hash" in text and "ip_hash" in text  # the data is there, hashed
    for ip in [*ADDRESSES, "203.0.113.78", "203.0.113.79", "203.0.113.80"]:
        assert ip not in text
