"""The invite directory: where codes lead, shared by every web process through Django's
cache, so that a code costs one query in the whole deployment (apps.referrals.directory)."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
import redis
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.campaigns.models import Campaign
from apps.common import breaker
from apps.common.breaker import Breaker
from apps.referrals import directory
from apps.referrals.models import Click
from apps.referrals.selectors import invite_target, invite_targets_forget
from tests.factories import CampaignFactory, join

pytestmark = pytest.mark.django_db
REDIS_CACHE = "redis://127.0.0.1:6379/9"


def another_process() -> None:
    """What a second web process knows: nothing of its own, the same shared cache."""
    invite_targets_forget()


def test_a_code_looked_up_once_costs_other_processes_no_query(alice, django_assert_num_queries):
    with django_assert_num_queries(1):
        first = invite_target(alice.code)
    another_process()
    with django_assert_num_queries(1):  # the campaign's state only: each process reads it
        assert invite_target(alice.code) == first
    another_process()
    other = join(alice.campaign, "zed")
    invite_target(other.code)  # this process knows the campaign's state now
    with django_assert_num_queries(0):
        assert invite_target(alice.code) == first
    assert directory.lookup(alice.code) == (alice.pk, alice.campaign_id)


def test_an_invite_link_known_to_the_directory_redirects_without_reading_participants(
    client, alice
):
    invite_target(alice.code)  # another web process looked it up
    another_process()
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/r/{alice.code}")
    assert response.status_code == 302 and response["Location"] == "/c/spring/"
    tables = " ".join(q["sql"] for q in queries)
    assert "referrals_participant" not in tables  # the campaign's state and the click only
    assert Click.objects.filter(participant=alice).count() == 1


def test_a_join_writes_its_code_once_committed(campaign, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        bob = join(campaign, "bob")
    assert directory.lookup(bob.code) == (bob.pk, campaign.pk)


def test_the_directory_does_not_keep_an_ended_campaigns_links_alive(
    alice, django_assert_num_queries
):
    invite_target(alice.code)
    Campaign.objects.filter(pk=alice.campaign_id).update(status=Campaign.Status.ENDED)
    another_process()
    # Known to the directory, and still one query (the campaign's state), like an unknown code.
    with django_assert_num_queries(1):
        assert invite_target(alice.code) is None
    with django_assert_num_queries(1):
        assert invite_target("nosuchco") is None


def test_without_remembering_the_directory_is_not_used(alice, settings, monkeypatch):
    settings.FISSION = {**settings.FISSION, "INVITE_CACHE_SECONDS": 0}
    asked: list[str] = []

    def lookup(code: str) -> None:
        asked.append(code)

    monkeypatch.setattr(directory, "lookup", lookup)
    monkeypatch.setattr(directory, "remember", lookup)
    assert invite_target(alice.code) is not None
    assert asked == []


class Broken:
    """A cache that cannot be reached."""

    def __init__(self) -> None:
        self.calls = 0

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        raise ConnectionError("Connection refused")

    get = set_many = delete = _fail


def test_a_cache_that_is_down_costs_one_try_then_is_left_alone(alice, monkeypatch):
    broken = Broken()
    monkeypatch.setattr(directory, "cache", broken)
    monkeypatch.setattr(directory, "breaker", Breaker("invite directory", 5.0))
    now = [500.0]
    monkeypatch.setattr(breaker.time, "monotonic", lambda: now[0])

    assert invite_target(alice.code) is not None  # from PostgreSQL
    assert broken.calls == 1
    for _ in range(3):
        another_process()
        assert invite_target(alice.code) is not None
    assert broken.calls == 1
    now[0] += directory.RETRY_AFTER_SECONDS
    another_process()
    assert invite_target(alice.code) is not None
    assert broken.calls == 2


@pytest.fixture
def shared_cache(settings: Any) -> Any:
    client = redis.Redis.from_url(REDIS_CACHE)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("needs Redis at 127.0.0.1:6379")
    client.flushdb()
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_CACHE,
        }
    }
    yield client
    client.flushdb()


def test_warm_invite_codes_writes_every_live_code(shared_cache):
    live = CampaignFactory(slug="live")
    paused = CampaignFactory(slug="paused", status=Campaign.Status.PAUSED)
    ended = CampaignFactory(slug="ended", status=Campaign.Status.ENDED)
    draft = CampaignFactory(slug="draft", status=Campaign.Status.DRAFT)
    over = CampaignFactory(slug="over", ends_at=timezone.now() - timedelta(days=1))
    people = {c.slug: join(c, "alice") for c in (live, paused, ended, draft, over)}
    shared_cache.flushdb()  # what the joins wrote, if anything
    out = StringIO()

    call_command("warm_invite_codes", stdout=out)

    assert out.getvalue().strip() == "2 invite codes written to the directory."
    known = {slug for slug, person in people.items() if directory.lookup(person.code)}
    assert known == {"live", "paused"}
    assert cache.get(f"fission:invite:{people['live'].code}") == (
        people["live"].pk,
        live.pk,
    )


def test_warm_invite_codes_refuses_a_cache_of_its_own_process(db):
    with pytest.raises(CommandError, match="no shared cache"):
        call_command("warm_invite_codes", stdout=StringIO())
