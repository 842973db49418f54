"""The cache backend production uses with a Redis CACHE_URL: Django's, keeping its redis-py
clients instead of making one per call (apps/common/cache.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from django.core.cache.backends.redis import RedisCacheClient as DjangoClient

from apps.common.cache import RedisCache

ROOT = Path(__file__).resolve().parents[2]
URL = "redis://127.0.0.1:6379/9"


@pytest.fixture
def backend() -> RedisCache:
    try:
        redis.Redis.from_url(URL).ping()
    except redis.ConnectionError:
        pytest.skip("needs Redis at 127.0.0.1:6379")
    return RedisCache(URL, {})


def test_one_client_serves_every_call(backend, monkeypatch):
    made: list[object] = []
    real = redis.Redis.__init__

    def counted(self: redis.Redis, *args: object, **kwargs: object) -> None:
        made.append(self)
        real(self, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "__init__", counted)
    backend.set("fission:test", {"a": 1}, 30)
    assert backend.get("fission:test") == {"a": 1}
    backend.delete("fission:test")
    assert backend.get("fission:test") is None
    assert len(made) == 1
    # Django's own client makes one per call: what this backend saves.
    django_client = DjangoClient([URL])
    django_client.get("fission:test", None)
    django_client.get("fission:test", None)
    assert len(made) == 3


def test_a_redis_cache_url_selects_it() -> None:
    read = "import json, config.settings as s; print(json.dumps(s.CACHES['default']))"
    env = {
        **os.environ, "DEBUG": "false", "SECRET_KEY": "a-production-like-secret-for-this-test",
        "ALLOWED_HOSTS": "invite.example.com", "SITE_URL": "https://invite.example.com",
        "CACHE_URL": URL,
    }  # fmt: skip
    out = subprocess.run(  # noqa: S603 (this interpreter, a constant program)
        [sys.executable, "-c", read], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60, check=True,
    ).stdout  # fmt: skip
    cache = json.loads(out.strip().splitlines()[-1])
    assert cache["BACKEND"] == "apps.common.cache.RedisCache"
    assert cache["OPTIONS"]["socket_timeout"] == 1
