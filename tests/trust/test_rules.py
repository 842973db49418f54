"""Each fraud rule flags (the default) and blocks (when the campaign says so), with its
reason code, through the public join page and the API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.referrals.models import FraudFlag, Participant
from apps.trust.models import AllowlistEntry
from tests.factories import CampaignFactory, join

from .conftest import DESKTOP, PHONE, browser, form, set_rule

pytestmark = pytest.mark.django_db
JOIN = "/c/spring/join"
REGISTER = "/api/v1/campaigns/spring/participants/"
BLOCKED_WORDS = "We could not add you to this campaign"


def person(email: str) -> Participant:
    return Participant.objects.get(email=email)


def codes(participant: Participant) -> list[str]:
    return sorted(participant.flags.values_list("code", flat=True))


def web_join(client, email: str, ref: str = ""):
    client.get("/c/spring/")  # the visitor cookie
    if ref:
        client.get(f"/r/{ref}")
    return client.post(JOIN, form(email))


# --- self-referral -----------------------------------------------------------------------


def test_joining_through_ones_own_link_from_ones_own_browser_is_flagged(campaign):
    mallory = browser()
    assert web_join(mallory, "mallory@example.com").status_code == 303
    first = person("mallory@example.com")
    response = web_join(mallory, "mallory.sock@example.com", ref=first.code)

    assert response.status_code == 303  # a flag is silent: the person gets their page
    sock = person("mallory.sock@example.com")
    assert sock.referrer_id == first.pk
    assert sock.status == "flagged"
    flag = sock.flags.get()
    assert (flag.code, flag.action, flag.score) == ("self_referral", "flag", 80)
    assert flag.evidence == {"matched": ["visitor_cookie", "ip_and_device"]}
    assert "browser" in flag.reason


def test_a_friend_on_another_browser_is_not_flagged(campaign):
    alice = browser("198.51.100.7")
    web_join(alice, "alice@example.com")
    bob = browser("203.0.113.9", DESKTOP)
    assert web_join(bob, "bob@example.com", ref=person("alice@example.com").code).status_code == 303
    assert person("bob@example.com").status == "active"
    assert not FraudFlag.objects.exists()


def test_a_blocked_self_referral_gets_no_page_and_no_reason(campaign):
    set_rule(campaign, "self_referral", "block")
    mallory = browser()
    web_join(mallory, "mallory@example.com")
    first = person("mallory@example.com")
    response = web_join(mallory, "mallory.sock@example.com", ref=first.code)

    assert response.status_code == 403
    html = response.content.decode()
    assert BLOCKED_WORDS in html
    assert "self" not in html.lower() and "referral" not in html.lower()
    sock = person("mallory.sock@example.com")
    assert sock.status == "blocked" and codes(sock) == ["self_referral"]
    assert sock.token not in html and sock.code not in html
    # Coming back with the same address gets the same answer, not a page.
    assert mallory.post(JOIN, form("mallory.sock@example.com")).status_code == 403


def test_the_api_flags_the_same_address_and_device_as_the_referrer(api, campaign):
    signals = {"ip": "198.51.100.20", "user_agent": PHONE}
    alice = api.post(
        REGISTER, {"email": "alice@example.com", "consent": True, **signals}, format="json"
    ).json()
    response = api.post(
        REGISTER,
        {"email": "al1ce@example.com", "referral_code": alice["code"], "consent": True, **signals},
        format="json",
    )
    assert response.status_code == 201
    sock = Participant.objects.get(pk=response.json()["id"])
    flag = sock.flags.get()
    assert (flag.code, flag.score, flag.evidence) == (
        "self_referral",
        50,
        {"matched": ["ip_and_device"]},
    )
    detail = api.get(f"/api/v1/participants/{sock.pk}/").json()
    assert detail["status"] == "flagged"
    assert detail["flags"] == [{"code": "self_referral", "score": 50, "reason": flag.reason}]


def test_the_api_answers_403_for_a_blocked_join(api, campaign):
    set_rule(campaign, "self_referral", "block")
    signals = {"ip": "198.51.100.20", "user_agent": PHONE}
    alice = api.post(
        REGISTER, {"email": "alice@example.com", "consent": True, **signals}, format="json"
    ).json()
    body = {"email": "al1ce@example.com", "referral_code": alice["code"], "consent": True}
    response = api.post(REGISTER, {**body, **signals}, format="json")
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "participant_blocked"
    sock = person("al1ce@example.com")
    assert str(sock.pk) in error["message"]
    assert sock.status == "blocked" and codes(sock) == ["self_referral"]
    # A retry is refused the same way, and makes no second participant.
    assert api.post(REGISTER, {**body, **signals}, format="json").status_code == 403
    assert Participant.objects.filter(campaign=campaign).count() == 2


def test_a_rotated_ip_key_still_recognises_the_referrers_address(api, campaign, settings):
    settings.IP_HASH_KEY = "old-key"
    signals = {"ip": "198.51.100.20", "user_agent": PHONE}
    alice = api.post(
        REGISTER, {"email": "alice@example.com", "consent": True, **signals}, format="json"
    ).json()
    settings.IP_HASH_KEY, settings.IP_HASH_KEY_FALLBACKS = "new-key", ["old-key"]
    response = api.post(
        REGISTER,
        {"email": "al1ce@example.com", "referral_code": alice["code"], "consent": True, **signals},
        format="json",
    )
    sock = Participant.objects.get(pk=response.json()["id"])
    assert codes(sock) == ["self_referral"]
    assert sock.join_ip_hash != person("alice@example.com").join_ip_hash  # the new key's


# --- disposable email ----------------------------------------------------------------------


def test_a_throwaway_address_is_flagged_on_the_web(campaign):
    assert web_join(browser(), "grab@mailinator.com").status_code == 303
    flag = person("grab@mailinator.com").flags.get()
    assert (flag.code, flag.evidence) == ("disposable_email", {"domain": "mailinator.com"})


def test_a_subdomain_of_a_throwaway_domain_counts_too(campaign):
    web_join(browser(), "grab@x.mailinator.com")
    assert codes(person("grab@x.mailinator.com")) == ["disposable_email"]


def test_a_throwaway_address_is_blocked_through_the_api(api, campaign):
    set_rule(campaign, "disposable_email", "block")
    response = api.post(REGISTER, {"email": "grab@mailinator.com", "consent": True}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "participant_blocked"
    assert codes(person("grab@mailinator.com")) == ["disposable_email"]


# --- bursts --------------------------------------------------------------------------------


def test_many_joins_from_one_address_are_flagged_from_the_threshold_on(campaign):
    set_rule(campaign, "ip_burst", threshold=3)
    for n in range(4):
        assert web_join(browser("198.51.100.30"), f"m{n}@example.com").status_code == 303
    statuses = [person(f"m{n}@example.com").status for n in range(4)]
    assert statuses == ["active", "active", "flagged", "flagged"]
    flag = person("m2@example.com").flags.get()
    assert flag.code == "ip_burst"
    assert flag.evidence == {"joins_in_window": 3, "window_seconds": 600}


def test_joins_older_than_the_window_do_not_count(campaign):
    set_rule(campaign, "ip_burst", threshold=2, window=timedelta(minutes=5))
    web_join(browser("198.51.100.30"), "m0@example.com")
    Participant.objects.update(joined_at=timezone.now() - timedelta(minutes=6))
    web_join(browser("198.51.100.30"), "m1@example.com")
    assert person("m1@example.com").status == "active"


def test_a_burst_from_one_network_is_flagged_even_across_addresses(campaign):
    set_rule(campaign, "network_burst", threshold=3)
    for n in range(3):
        web_join(browser(f"203.0.113.{n + 1}"), f"n{n}@example.com")
    assert codes(person("n2@example.com")) == ["network_burst"]
    assert person("n1@example.com").status == "active"
    web_join(browser("203.0.114.1"), "other@example.com")  # the next /24
    assert person("other@example.com").status == "active"


def test_a_burst_can_block_and_the_page_does_not_say_why(campaign):
    set_rule(campaign, "ip_burst", "block", threshold=2)
    web_join(browser("198.51.100.30"), "m0@example.com")
    response = web_join(browser("198.51.100.30"), "m1@example.com")
    assert response.status_code == 403
    html = response.content.decode()
    assert BLOCKED_WORDS in html and "address" not in html.split(BLOCKED_WORDS)[1][:200]
    assert person("m1@example.com").status == "blocked"


def test_the_api_burst_rules_use_the_address_the_host_sends(api, campaign):
    set_rule(campaign, "ip_burst", threshold=2)
    for n in range(2):
        api.post(
            REGISTER,
            {"email": f"h{n}@example.com", "consent": True, "ip": "2001:db8::5"},
            format="json",
        )
    assert codes(person("h1@example.com")) == ["ip_burst"]


# --- velocity ------------------------------------------------------------------------------


def test_friends_joining_faster_than_people_can_are_flagged(api, campaign, alice):
    set_rule(campaign, "referral_velocity", threshold=3)
    ids = [
        api.post(
            REGISTER,
            {"email": f"f{n}@example.com", "referral_code": alice.code, "consent": True},
            format="json",
        ).json()["id"]
        for n in range(4)
    ]
    statuses = list(
        Participant.objects.filter(pk__in=ids).order_by("pk").values_list("status", flat=True)
    )
    assert statuses == ["active", "active", "flagged", "flagged"]
    flag = FraudFlag.objects.get(participant_id=ids[2])
    assert flag.code == "referral_velocity"
    assert flag.evidence == {"friends_in_window": 3, "window_seconds": 60}


def test_velocity_can_block_on_the_web(campaign, alice):
    set_rule(campaign, "referral_velocity", "block", threshold=2)
    web_join(browser("203.0.113.1"), "f0@example.com", ref=alice.code)
    response = web_join(browser("203.0.113.99", DESKTOP), "f1@example.com", ref=alice.code)
    assert response.status_code == 403
    assert codes(person("f1@example.com")) == ["referral_velocity"]


# --- off, allowlist, history ---------------------------------------------------------------


def test_a_rule_switched_off_does_not_fire(campaign):
    set_rule(campaign, "disposable_email", "off")
    web_join(browser(), "grab@mailinator.com")
    assert person("grab@mailinator.com").status == "active"
    assert not FraudFlag.objects.exists()


def test_an_allowlisted_office_network_is_left_alone(campaign):
    set_rule(campaign, "ip_burst", threshold=2)
    AllowlistEntry.objects.create(campaign=campaign, kind="network", value="198.51.100.0/24")
    for n in range(3):
        web_join(browser("198.51.100.30"), f"colleague{n}@example.com")
    assert set(Participant.objects.values_list("status", flat=True)) == {"active"}


def test_an_allowlisted_domain_is_left_alone_in_every_campaign(campaign):
    AllowlistEntry.objects.create(kind="domain", value="mailinator.com", note="QA team")
    web_join(browser(), "qa@mailinator.com")
    assert person("qa@mailinator.com").status == "active"


def test_the_allowlist_does_not_excuse_velocity(api, campaign, alice):
    set_rule(campaign, "referral_velocity", threshold=2)
    AllowlistEntry.objects.create(kind="domain", value="example.com")
    for n in range(2):
        api.post(
            REGISTER,
            {"email": f"f{n}@example.com", "referral_code": alice.code, "consent": True},
            format="json",
        )
    assert codes(person("f1@example.com")) == ["referral_velocity"]


def test_rules_are_per_campaign(campaign):
    other = CampaignFactory(slug="autumn")
    set_rule(other, "disposable_email", "block")
    web_join(browser(), "grab@mailinator.com")
    assert person("grab@mailinator.com").status == "flagged"  # spring keeps the default


def test_imported_history_is_not_screened(campaign):
    joined = timezone.now() - timedelta(days=300)
    imported = join(campaign, "grab", email="grab@mailinator.com", joined_at=joined)
    assert imported.status == "active"
