from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from .procs import (
    ROOT,
    CeleryWorker,
    PrivatePostgres,
    PrivateRedis,
    Process,
    Receiver,
    WebServer,
    postgres_bin_dir,
    redis_server_binary,
)

ON_POSTGRES = connection.vendor == "postgresql"
# Fault tests run the product's real processes against the test database, so they need
# the database that production uses.
needs_postgres = pytest.mark.skipif(
    not ON_POSTGRES,
    reason="runs Fission's own processes on the test database: needs PostgreSQL (DATABASE_URL)",
)
needs_redis_server = pytest.mark.skipif(
    redis_server_binary() is None, reason="redis-server is not installed"
)
needs_postgres_server = pytest.mark.skipif(
    postgres_bin_dir() is None, reason="PostgreSQL server binaries (initdb) are not installed"
)
needs_gunicorn = pytest.mark.skipif(
    importlib.util.find_spec("gunicorn") is None, reason="gunicorn is not installed"
)

# The figures of the last run, for `make reliability` to put in README.md.
RESULTS = ROOT / "var" / "reliability" / "results.json"


def record(name: str, figures: dict[str, Any]) -> None:
    """Keep a fault's measured figures (printed too: `pytest -s` shows them)."""
    print(f"\n{name}: {json.dumps(figures)}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[name] = figures
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


class Processes:
    """Every process a test starts; all ended at its end, their logs shown if it failed."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[Process] = []

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def web(self, env: dict[str, str], *, app: str = "config.wsgi") -> WebServer:
        server = WebServer(env, self.log("gunicorn"), app=app)
        self.started.append(server.process)
        return server.start()

    def worker(self, env: dict[str, str], *, beat: bool = False) -> CeleryWorker:
        worker = CeleryWorker(env, self.log("worker"), beat=beat)
        self.started.append(worker.process)
        return worker.start()

    def end(self, show_logs: bool) -> None:
        for process in reversed(self.started):
            if process.running:
                process.kill()  # nothing to keep: a warm shutdown would only take time
            if show_logs:
                print(process.log_tail())


@pytest.fixture
def processes(
    request: pytest.FixtureRequest, tmp_path: Path, transactional_db: Any
) -> Iterator[Processes]:
    # After `transactional_db` in setup, so ended before it flushes the tables: no
    # process of ours holds a lock on them then.
    running = Processes(tmp_path)
    yield running
    running.end(show_logs=request.node.stash.get(FAILED, False))


@pytest.fixture
def private_redis(tmp_path: Path, processes: Processes) -> Iterator[PrivateRedis]:
    redis = PrivateRedis(tmp_path)
    redis.start()
    yield redis
    redis.kill()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres().init()
    cluster.start()
    yield cluster
    cluster.destroy()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def test_database_url(transactional_db: Any) -> str:
    """The URL of pytest-django's test database, for the processes a test starts."""
    from django.db import connection

    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    # The processes' commits do not wait for the disk (this machine's fsync would be
    # most of what is measured). Only a crash of the PostgreSQL server could lose such a
    # commit, and no test here crashes the shared server.
    options = "?options=-c%20synchronous_commit%3Doff"
    return f"postgres://{db['USER']}{password}@{host}:{port}/{db['NAME']}{options}"
