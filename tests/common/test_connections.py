"""Persistent database connections: production settings on PostgreSQL keep a connection
for CONN_MAX_AGE and check it before reuse, in web processes and in Celery workers; the
check costs a round trip only when the server has something to say.

The settings module reads the environment once, at import, so each case loads it in a
fresh interpreter with the environment a deployment would give it.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "a-production-like-secret-for-this-test-only",
    "ALLOWED_HOSTS": "invite.example.com",
    "SITE_URL": "https://invite.example.com",
}
READ = (
    "import json, config.settings as s; d = s.DATABASES['default']; "
    "print(json.dumps({'engine': d['ENGINE'], 'max_age': d.get('CONN_MAX_AGE', 0), "
    "'health_checks': d.get('CONN_HEALTH_CHECKS', False), "
    "'celery_db_reuse_max': s.CELERY_DB_REUSE_MAX}))"
)


def database_settings(**env: str) -> dict[str, Any]:
    """config.settings' default database, loaded with `env` on top of PRODUCTION (and
    without any CONN_MAX_AGE or DATABASE_URL this test process has)."""
    base = {k: v for k, v in os.environ.items() if k not in ("CONN_MAX_AGE", "DATABASE_URL")}
    result = subprocess.run(  # noqa: S603 (this interpreter, a constant program)
        [sys.executable, "-c", READ],
        cwd=ROOT,
        env={**base, **PRODUCTION, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "url", ["postgres://fission:secret@db:5432/fission", "postgresql://fission@db/fission"]
)
def test_production_settings_keep_postgresql_connections_and_check_them(url: str) -> None:
    db = database_settings(DATABASE_URL=url)
    assert db["engine"] == "apps.common.postgresql"  # Django's, with a cheaper health check
    assert db["max_age"] == 60
    assert db["health_checks"] is True
    # Workers too: Celery's fix-up would otherwise open a connection per task.
    assert db["celery_db_reuse_max"] > 1_000_000


def test_conn_max_age_from_the_environment_is_kept_with_its_health_check() -> None:
    db = database_settings(DATABASE_URL="postgres://fission@db:5432/fission", CONN_MAX_AGE="300")
    assert (db["max_age"], db["health_checks"]) == (300, True)


def _new_request() -> None:
    """What Django does to a kept connection when a request starts."""
    connection.health_check_done = False


needs_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL's connections"
)


@needs_postgresql
@pytest.mark.django_db(transaction=True)
def test_an_idle_silent_connection_is_reused_without_a_round_trip(monkeypatch):
    connection.ensure_connection()
    kept = connection.connection
    asked: list[bool] = []
    monkeypatch.setattr(connection, "is_usable", lambda: asked.append(True) or True)
    _new_request()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert asked == []
    assert connection.connection is kept


@needs_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_ended_is_replaced_before_the_first_query():
    connection.ensure_connection()
    kept = connection.connection
    other = connection.get_new_connection(connection.get_connection_params())
    try:
        other.execute("SELECT pg_terminate_backend(%s)", [kept.info.backend_pid])
    finally:
        other.close()
    # The server's goodbye reaches the socket.
    poller = select.poll()
    poller.register(kept.fileno(), select.POLLIN)
    assert poller.poll(5000)
    _new_request()
    with connection.cursor() as cursor:  # no error: the check saw the message and reconnected
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    assert connection.connection is not kept


PREPARED = "SELECT count(*) FROM django_migrations WHERE app = %s::varchar"


def _prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


@needs_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_prepared_cursor_prepares_its_statement_once_per_connection():
    connection.close()
    for app in ("rewards", "referrals"):
        with connection.prepared_cursor() as cursor:
            cursor.execute(PREPARED, [app])
            assert cursor.fetchone()[0] > 0
    assert [s for s in _prepared_statements() if "django_migrations" in s] == [
        PREPARED.replace("%s", "$1")
    ]
    with connection.cursor() as cursor:  # Django's own cursors prepare nothing
        for _ in range(10):
            cursor.execute("SELECT count(*) FROM django_migrations WHERE app = %s", ["api"])
    assert len(_prepared_statements()) == 1


@needs_postgresql
@pytest.mark.django_db(transaction=True)
def test_the_query_log_shows_a_prepared_statement_with_its_values():
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries, connection.prepared_cursor() as cursor:
        cursor.execute(PREPARED, ["rewards"])
    assert queries.captured_queries[-1]["sql"] == PREPARED.replace("%s", "'rewards'")


@needs_postgresql
@pytest.mark.django_db(transaction=True)
def test_prepare_threshold_none_in_the_options_prepares_nothing(monkeypatch):
    options = {**connection.settings_dict["OPTIONS"], "prepare_threshold": None}
    monkeypatch.setitem(connection.settings_dict, "OPTIONS", options)
    connection.close()
    try:
        with connection.prepared_cursor() as cursor:
            cursor.execute(PREPARED, ["rewards"])
        assert _prepared_statements() == []
    finally:
        connection.close()
