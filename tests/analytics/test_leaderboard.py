"""The public leaderboard: opt-in, first names and initials, counting friends who count."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from apps.common.names import leaderboard_name
from apps.referrals.models import Participant
from tests.factories import CampaignFactory, join

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()


@pytest.fixture
def board():
    """A sign-up campaign (joins qualify): alice brings 3, bob 2 (one flagged), zoe 2."""
    campaign = CampaignFactory(slug="spring", leaderboard_public=True)
    alice = join(campaign, "alice")
    Participant.objects.filter(pk=alice.pk).update(name="Alice Wang")
    bob = join(campaign, "bob", referrer=alice)
    Participant.objects.filter(pk=bob.pk).update(name="王小明")
    zoe = join(campaign, "zoe")
    for n in range(2):
        join(campaign, f"a{n}", referrer=alice)
        join(campaign, f"z{n}", referrer=zoe)
    join(campaign, "b0", referrer=bob)
    flagged = join(campaign, "b1", referrer=bob)
    Participant.objects.filter(pk=flagged.pk).update(status="flagged")
    return campaign


def test_names_are_first_names_and_initials():
    assert leaderboard_name("Alice Wang") == "Alice W."
    assert leaderboard_name("alice") == "alice"
    assert leaderboard_name("王小明") == "王**"
    assert leaderboard_name("  ") == ""


def test_the_board_ranks_friends_who_count(client, board):
    response = client.get("/c/spring/leaderboard/")
    assert response.status_code == 200
    rows = [(r.rank, r.name, r.friends) for r in response.context["rows"]]
    assert rows == [(1, "Alice W.", 3), (2, "Zoe", 2), (3, "王**", 1)]
    html = response.content.decode()
    assert "Alice W." in html and "Wang" not in html and "王小明" not in html
    assert "Content-Security-Policy" in response.headers
    chinese = client.get("/c/spring/leaderboard/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert "邀请排行" in chinese.content.decode()


def test_equal_counts_share_a_rank(client):
    campaign = CampaignFactory(slug="ties", leaderboard_public=True)
    for name in ("amy", "ben"):
        person = join(campaign, name)
        join(campaign, f"{name}-friend", referrer=person)
    rows = client.get("/c/ties/leaderboard/").context["rows"]
    assert [r.rank for r in rows] == [1, 1]


def test_the_board_is_opt_in(client, board):
    CampaignFactory(slug="private")
    assert client.get("/c/private/leaderboard/").status_code == 404
    assert client.get("/c/nope/leaderboard/").status_code == 404
    html = client.get("/c/spring/").content.decode()
    assert 'href="/c/spring/leaderboard/"' in html
    assert 'href="/c/private/leaderboard/"' not in client.get("/c/private/").content.decode()


def test_an_empty_board_invites_people_to_share(client):
    CampaignFactory(slug="new", leaderboard_public=True)
    html = client.get("/c/new/leaderboard/").content.decode()
    assert "Nobody is on the board yet" in html
