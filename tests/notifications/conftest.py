"""Participant messages: campaigns, the outbox, and following the links in emails."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core import mail
from django.core.cache import cache
from django.db import connections
from django.test import Client

from apps.campaigns.models import Campaign
from apps.notifications.models import Message
from apps.referrals.models import Participant
from tests.factories import CampaignFactory, LandingCopyFactory, RewardTierFactory

SITE = "http://testserver"
LINK = re.compile(r"https?://testserver(/[^\s\"<>]*)")


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    # The admin_client fixture hashes a password per test: the fast hasher saves seconds.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_cache_and_outbox() -> Iterator[None]:
    # Rate-limit counts live in the cache; no test sees another's.
    cache.clear()
    mail.outbox = []
    yield
    cache.clear()


@pytest.fixture
def copy(campaign: Campaign) -> Campaign:
    """English and Chinese landing copy for the `spring` sign-up campaign."""
    LandingCopyFactory(campaign=campaign, language="en", headline="Invite friends, earn rewards")
    LandingCopyFactory(campaign=campaign, language="zh-hans", headline="邀请好友，一起赢奖励")
    return campaign


@pytest.fixture
def verified(db: Any) -> Campaign:
    """A campaign that qualifies on a verified sign-up, with a tier at 1 and at 2 friends."""
    campaign = CampaignFactory(
        slug="verify", name="Verify invite", qualifying_event="verified_signup", holding_days=0
    )
    RewardTierFactory(campaign=campaign, threshold=1, amount="10.00", description="10 CNY coupon")
    RewardTierFactory(campaign=campaign, threshold=2, amount="30.00", description="30 CNY coupon")
    LandingCopyFactory(campaign=campaign, language="en", headline="Confirm and win")
    LandingCopyFactory(campaign=campaign, language="zh-hans", headline="确认邮箱赢奖励")
    return campaign


def web_join(
    client: Client, campaign: Campaign, name: str, *, ref: str = "", **headers: Any
) -> Participant:
    """`name` joins through the public form (email <name>@example.com)."""
    response = client.post(
        f"/c/{campaign.slug}/join",
        {"email": f"{name}@example.com", "name": name.title(), "consent": "on", "ref": ref},
        **headers,
    )
    assert response.status_code == 303, response.content
    return Participant.objects.get(campaign=campaign, email_normalized=f"{name}@example.com")


def sent_to(participant: Participant) -> list[mail.EmailMultiAlternatives]:
    return [m for m in mail.outbox if m.to == [participant.email]]


def html_of(message: Any) -> str:
    (html, mimetype) = message.alternatives[0]
    assert mimetype == "text/html"
    return str(html)


def links(message: Any) -> list[str]:
    """The site's paths linked from an email, in the order of its plain text; each must
    be linked from the HTML part too."""
    paths = LINK.findall(message.body)
    html = html_of(message)
    for path in paths:
        assert f'href="{SITE}{path.replace("&", "&amp;")}"' in html, path
    return paths


def link_to(message: Any, prefix: str) -> str:
    found = [path for path in links(message) if path.startswith(prefix)]
    assert found, f"no {prefix} link in {message.body}"
    return found[0]


def log(participant: Participant) -> list[tuple[str, str, str]]:
    """(kind, cause, status) of every message to `participant`, oldest first."""
    return list(
        Message.objects.filter(participant=participant)
        .order_by("id")
        .values_list("kind", "cause", "status")
    )


def race(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run work(0..n-1) in n threads released at the same moment; their results."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except Exception as exc:  # reported by the caller's assertions
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
