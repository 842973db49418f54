"""The admin: staff only, locked after repeated failed logins (django-axes), and
`check --deploy` clean with production settings."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db
LOGIN = "/admin/login/"


@pytest.fixture
def olga(db, settings):
    # A fast hasher: each sign-in attempt checks a password, and the default hasher is
    # slow on purpose.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return get_user_model().objects.create_superuser("olga", "olga@example.com", "pw-olga-123")


def attempt(client: Client, password: str):
    return client.post(LOGIN, {"username": "olga", "password": password, "next": "/admin/"})


def test_repeated_failed_logins_lock_the_address_out(olga, settings):
    mallory = Client(REMOTE_ADDR="203.0.113.66")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = attempt(mallory, "guess")
        assert response.status_code == 200  # the login form again, with its error
    locked = attempt(mallory, "guess")
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.content.decode()
    # Even the right password is refused from that address now...
    assert attempt(mallory, "pw-olga-123").status_code == 429
    # ...while olga, elsewhere, signs in.
    office = Client(REMOTE_ADDR="198.51.100.10")
    response = attempt(office, "pw-olga-123")
    assert response.status_code == 302 and response["Location"] == "/admin/"


def test_a_good_login_clears_the_count(olga, settings):
    client = Client(REMOTE_ADDR="198.51.100.11")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        attempt(client, "typo")
    assert attempt(client, "pw-olga-123").status_code == 302
    client.logout()
    assert attempt(client, "typo").status_code == 200  # counting from zero again


def test_force_login_is_not_counted(olga, settings):
    client = Client(REMOTE_ADDR="203.0.113.66")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, "guess")
    other = Client()
    other.force_login(olga)
    assert other.get("/admin/").status_code == 200


def test_the_admin_is_for_staff_only(db):
    user = get_user_model().objects.create_user("pat", "pat@example.com", "pw-pat-12345")
    client = Client()
    client.force_login(user)
    for url in ("/admin/", "/admin/referrals/participant/", "/admin/referrals/fraudflag/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(LOGIN)


def test_check_deploy_is_clean_with_production_settings(settings, monkeypatch):
    # Set by the browser tests' conftest for Playwright's event loop: a test-run artefact.
    monkeypatch.delenv("DJANGO_ALLOW_ASYNC_UNSAFE", raising=False)
    settings.DEBUG = False
    settings.SECRET_KEY = "pR0d-" + "k3y-w1th-m4ny-d1ff3r3nt-ch4r5-and-enough-length-XYZ"
    settings.ALLOWED_HOSTS = ["fission.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/7",
        }
    }
    call_command("check", deploy=True, fail_level="WARNING")


def test_check_deploy_warns_when_lockouts_are_not_shared(settings):
    """An in-process cache counts failed logins per process: production must share."""
    from django.core.management.base import SystemCheckError

    settings.DEBUG = False
    settings.SILENCED_SYSTEM_CHECKS = []
    with pytest.raises(SystemCheckError, match=r"axes\.W001"):
        call_command("check", fail_level="WARNING")
