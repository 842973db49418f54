from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client

from apps.campaigns.models import Campaign
from apps.trust.models import FraudRuleSetting

PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
DESKTOP = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36"
)


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    # Join rate limits and admin lockouts count in the cache: no test sees another's.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def olga(db: Any) -> Client:
    """Olga: an operator (superuser) in the admin."""
    user = get_user_model().objects.create_superuser("olga", "olga@example.com", "pw-olga-123")
    client = Client()
    client.force_login(user)
    return client


def browser(ip: str = "198.51.100.7", user_agent: str = PHONE) -> Client:
    """A person's browser: its own cookies, address and user agent."""
    return Client(REMOTE_ADDR=ip, HTTP_USER_AGENT=user_agent)


def form(email: str, name: str = "", **fields: Any) -> dict[str, Any]:
    return {"email": email, "name": name, "consent": "on", **fields}


def set_rule(campaign: Campaign, rule: str, action: str = "flag", **fields: Any) -> None:
    FraudRuleSetting.objects.update_or_create(
        campaign=campaign, rule=rule, defaults={"action": action, **fields}
    )
