"""Where invite codes lead, as each process remembers it: popular codes cost no query, a
campaign that ends is honoured within seconds, unknown codes are never remembered."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from apps.campaigns.models import Campaign
from apps.common import memory
from apps.referrals import directory, selectors
from apps.referrals.selectors import InviteTarget, invite_target

pytestmark = pytest.mark.django_db


class Clock:
    """time.monotonic as the process memory sees it, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(memory.time, "monotonic", clock)
    return clock


def test_a_code_leads_to_its_participant_and_campaign(alice):
    assert invite_target(alice.code) == InviteTarget(
        participant_id=alice.pk,
        campaign_id=alice.campaign_id,
        campaign_slug="spring",
        attribution_window_days=alice.campaign.attribution_window_days,
    )
    assert invite_target("nosuchco") is None


def test_a_remembered_code_costs_no_query(alice, django_assert_num_queries):
    with django_assert_num_queries(1):
        invite_target(alice.code)
    with django_assert_num_queries(0):
        assert invite_target(alice.code) is not None


def test_unknown_codes_are_looked_up_every_time(db, django_assert_num_queries):
    for _ in range(2):
        with django_assert_num_queries(1):
            assert invite_target("nosuchco") is None


def test_with_no_cache_every_click_looks_the_code_up(alice, settings, django_assert_num_queries):
    settings.FISSION = {**settings.FISSION, "INVITE_CACHE_SECONDS": 0}
    for _ in range(2):
        with django_assert_num_queries(1):
            assert invite_target(alice.code) is not None


def test_a_campaign_that_ends_is_honoured_within_seconds(alice, clock):
    assert invite_target(alice.code) is not None
    Campaign.objects.filter(pk=alice.campaign_id).update(status=Campaign.Status.ENDED)
    clock.now += selectors.CAMPAIGN_STATE_SECONDS - 1
    assert invite_target(alice.code) is not None  # still remembered as active
    clock.now += 2
    assert invite_target(alice.code) is None


def test_a_paused_campaign_keeps_its_links_and_a_changed_slug_is_followed(alice, clock):
    invite_target(alice.code)
    Campaign.objects.filter(pk=alice.campaign_id).update(
        status=Campaign.Status.PAUSED, slug="spring-2"
    )
    clock.now += selectors.CAMPAIGN_STATE_SECONDS + 1
    target = invite_target(alice.code)
    assert target is not None and target.campaign_slug == "spring-2"


def test_codes_are_remembered_for_invite_cache_seconds(alice, bob, clock, settings):
    settings.FISSION = {**settings.FISSION, "INVITE_CACHE_SECONDS": 60}
    invite_target(alice.code)
    old = alice.code
    # Erasure replaces codes (and takes the old one out of the shared directory); another
    # process would still know the old one a while.
    type(alice).objects.filter(pk=alice.pk).update(code="newcode2")
    directory.forget(old)
    clock.now += 59
    assert invite_target(old) is not None
    clock.now += 2
    assert invite_target(old) is None
    assert invite_target("newcode2") is not None


def test_the_remembered_codes_are_bounded(alice, bob, carol, monkeypatch):
    monkeypatch.setattr(selectors._codes, "limit", 2)
    for person in (alice, bob, carol):
        invite_target(person.code)
    assert [selectors._codes.get(p.code) is not None for p in (alice, bob, carol)] == [
        False,
        True,
        True,
    ]


def test_timestamps_read_by_raw_sql_are_aware():
    aware = datetime(2026, 5, 1, 12, tzinfo=UTC)
    assert selectors._aware(None) is None
    assert selectors._aware(aware) is aware
    assert selectors._aware("2026-05-01 12:00:00") == aware  # SQLite: text in UTC
    assert selectors._aware(datetime(2026, 5, 1, 12)) == aware
