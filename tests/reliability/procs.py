"""Real processes for the fault tests, each private to the test that starts it.

A Redis server, a PostgreSQL cluster, a web server (gunicorn) and a Celery worker, started,
killed and restarted by the test on loopback ports of their own. The machine's shared
PostgreSQL and Redis are never stopped or restarted: other tests use them. Every wait is
bounded, and every process is ended by the fixture that started it.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], object], *, timeout: float, what: str) -> float:
    """Poll until `predicate()` is true; the seconds it took. Fails after `timeout`."""
    started = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")


def postgres_bin_dir() -> Path | None:
    """Debian keeps initdb and pg_ctl out of PATH, under /usr/lib/postgresql/<v>/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


def django_env(**overrides: object) -> dict[str, str]:
    """The environment of a Fission process started by a test: production-like settings
    (DEBUG off) on loopback, with `overrides` (None removes a variable)."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="false",
        SECRET_KEY=env.get("SECRET_KEY") or "insecure-test-only-key-never-used-in-production",
        SECURE_SSL_REDIRECT="false",
        SESSION_COOKIE_SECURE="false",
        CSRF_COOKIE_SECURE="false",
        SECURE_HSTS_SECONDS="0",
        STATIC_MANIFEST="false",
        ALLOWED_HOSTS="127.0.0.1,localhost,testserver",
        EMAIL_URL="memorymail://",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
        # Loopback only: no proxy between a test and its own servers.
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    env.pop("CACHE_URL", None)
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = str(value)
    return env


class Process:
    """A child process in a session of its own, so that a kill reaches its children
    too (gunicorn's and Celery's pool), its output kept in a log file."""

    def __init__(self, args: list[str], *, env: Mapping[str, str], log: Path, name: str) -> None:
        self.args, self.env, self.log, self.name = args, dict(env), log, name
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(  # noqa: S603 (our own command line)
                self.args,
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL to the whole process group: a crash, with no chance to clean up."""
        self._signal(signal.SIGKILL)
        self._reap(10)

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM, then SIGKILL if it has not gone within `timeout`."""
        self._signal(signal.SIGTERM)
        if not self._reap(timeout):
            self.kill()

    def _signal(self, sig: int) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def _reap(self, timeout: float) -> bool:
        if self.popen is None:
            return True
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        # Children of the group may outlive the leader for a moment.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(self.popen.pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.02)
        return False

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return f"--- {self.name} log ---\n" + "\n".join(text.splitlines()[-lines:])


# --- Redis ------------------------------------------------------------------------------


class PrivateRedis:
    """A throwaway redis-server without persistence: a restart starts it empty, as a
    Redis without AOF comes back after a crash."""

    def __init__(self, workdir: Path) -> None:
        self.workdir, self.port = workdir, free_port()
        self.process: Process | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> PrivateRedis:
        binary = redis_server_binary()
        assert binary, "redis-server is not installed"
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(self.workdir)]
        log = self.workdir / "redis.log"
        self.process = Process(args, env=os.environ, log=log, name="redis").start()
        wait_for(self.ping, timeout=10, what="the private Redis")
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()

    def client(self, db: int = 0) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, db=db, socket_timeout=2)


# --- PostgreSQL -------------------------------------------------------------------------


class PrivatePostgres:
    """A throwaway PostgreSQL cluster (initdb into a temporary directory) that a test may
    stop and start. initdb refuses to run as root; as root it runs as `postgres`."""

    def __init__(self) -> None:
        bin_dir = postgres_bin_dir()
        assert bin_dir, "PostgreSQL server binaries are not installed"
        self.bin = bin_dir
        self.port = free_port()
        # Under /tmp, not pytest's tmp_path: the server's user must reach the directory.
        self.dir = Path(tempfile.mkdtemp(prefix="fission-pg-"))
        self.data = self.dir / "data"
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(self.dir, user="postgres")

    def _run(self, *args: str, timeout: float = 30) -> None:
        command = list(args)
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(  # noqa: S603 (our own command line)
            command, check=True, capture_output=True, timeout=timeout, cwd=self.dir
        )

    def init(self) -> PrivatePostgres:
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "--no-sync", "-E", "UTF8", "--locale=C",
        )  # fmt: skip
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.dir / "server.log"), "-w", "-t", "30", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """`fast`: the server ends every session and shuts down cleanly (a restart);
        `immediate`: it stops at once, as in a crash (recovery on the next start)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, dbname: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{dbname}"

    def psql(self, dbname: str, sql: str) -> None:
        subprocess.run(  # noqa: S603
            [str(self.bin / "psql"), "-q", "-v", "ON_ERROR_STOP=1", self.url(dbname)],
            input=sql.encode(),
            check=True,
            capture_output=True,
            timeout=60,
        )

    def create_database_like(self, dbname: str, source_url: str) -> None:
        """A database with the schema of `source_url` (the test database, migrated by
        pytest-django): a dump of the schema is much faster than running the migrations."""
        schema = subprocess.run(  # noqa: S603
            [
                str(self.bin / "pg_dump"),
                "--schema-only",
                "--no-owner",
                "--no-privileges",
                source_url,
            ],
            check=True,
            capture_output=True,
            timeout=60,
        ).stdout.decode()
        self.psql("postgres", f'CREATE DATABASE "{dbname}"')
        self.psql(dbname, schema)

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


# --- Fission's own processes ------------------------------------------------------------


class WebServer:
    """gunicorn serving Fission (or a WSGI module of the tests wrapping it)."""

    def __init__(self, env: Mapping[str, str], log: Path, *, app: str = "config.wsgi") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [
            PYTHON, "-m", "gunicorn", app, "--bind", f"127.0.0.1:{self.port}",
            "--workers", "2", "--threads", "4", "--worker-class", "gthread",
            "--timeout", "30", "--graceful-timeout", "2", "--keep-alive", "30",
            "--log-level", "warning",
        ]  # fmt: skip
        self.process = Process(args, env=env, log=log, name="gunicorn")

    def start(self) -> WebServer:
        import httpx

        self.process.start()

        def answers() -> bool:
            assert self.process.running, self.process.log_tail()
            try:
                return httpx.get(f"{self.url}/healthz", timeout=2).status_code in (200, 503)
            except httpx.HTTPError:
                return False

        wait_for(answers, timeout=30, what="gunicorn to answer")
        return self


class CeleryWorker:
    """`celery -A config worker` (prefork, 4 processes), with beat inside it when asked
    (the periodic sweep of webhooks; production runs beat on its own)."""

    def __init__(self, env: Mapping[str, str], log: Path, *, beat: bool = False) -> None:
        self.log = log
        args = [
            PYTHON, "-m", "celery", "-A", "config", "worker", "--pool", "prefork",
            "--concurrency", "4", "--loglevel", "INFO", "--without-gossip",
            "--without-mingle", "--without-heartbeat", "-n", f"fault-{free_port()}@%h",
        ]  # fmt: skip
        if beat:
            args += ["--beat", "--schedule", str(log.parent / f"beat-{free_port()}")]
        self.process = Process(args, env=env, log=log, name="celery worker")

    def start(self) -> CeleryWorker:
        offset = self.log.stat().st_size if self.log.exists() else 0
        self.process.start()

        def ready() -> bool:
            assert self.process.running, self.process.log_tail()
            with self.log.open("rb") as log:
                log.seek(offset)
                return b" ready." in log.read()

        wait_for(ready, timeout=60, what="the Celery worker to be ready")
        return self

    def kill(self) -> None:
        self.process.kill()

    def stop(self) -> None:
        self.process.stop()


def run_django(env: Mapping[str, str], script: str, *args: object, timeout: float = 60) -> str:
    """Run `script` in a fresh Python process with Django set up (a web process's
    settings); its stdout."""
    prelude = "import django, sys\ndjango.setup()\n"
    result = subprocess.run(  # noqa: S603
        [PYTHON, "-c", prelude + script, *map(str, args)],
        env=dict(env),
        cwd=ROOT,
        capture_output=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"script failed ({result.returncode}):\n{result.stdout.decode()}\n"
            f"{result.stderr.decode()[-3000:]}"
        )
    return result.stdout.decode()


# The web side of background work: a process with the web's settings writes reward events
# in one transaction; the product queues one message per delivery when it commits.
PUBLISH = """
from datetime import datetime, timezone
from django.db import transaction
from apps.api.webhooks import Event, webhook_events_record

campaign_id, count, prefix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
now = datetime.now(timezone.utc)
events = [
    Event(campaign_id=campaign_id, type="reward.granted", id=f"evt_{prefix}_{n}",
          data={"n": n}, timestamp=now)
    for n in range(count)
]
with transaction.atomic():
    ids = webhook_events_record(events)
print(len(ids))
"""


def publish_events(
    env: Mapping[str, str], *, campaign_id: int, count: int, prefix: str = "fault"
) -> int:
    """`count` reward.granted events, recorded and queued as a web process does; how many
    deliveries were made."""
    return int(run_django(env, PUBLISH, campaign_id, count, prefix).strip())


# --- A host application that receives webhooks --------------------------------------------


class Receiver:
    """An HTTP server in a thread of the test that records every webhook it gets:
    (webhook-id, time). It answers `status` (200 unless told otherwise)."""

    def __init__(self) -> None:
        self.status = 200
        self.delay = 0.0
        self.received: list[tuple[str, float]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if receiver.delay:
                    time.sleep(receiver.delay)
                with receiver.lock:
                    receiver.received.append((self.headers.get("webhook-id", ""), time.monotonic()))
                json.loads(body)  # a webhook is JSON
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(webhook_id for webhook_id, _ in self.received)

    def distinct(self) -> int:
        return len(self.counts())


# --- Clients -----------------------------------------------------------------------------


class Visitor:
    """A person's browser on a real server: keeps its cookies, and joins through the
    landing page's form (with its CSRF token), as a phone would."""

    def __init__(self, base_url: str) -> None:
        import httpx

        self.client = httpx.Client(base_url=base_url, timeout=10, follow_redirects=False)

    def landing(self, slug: str, ref: str = "") -> Any:
        return self.client.get(f"/c/{slug}/", params={"ref": ref} if ref else None)

    def join(self, slug: str, email: str, *, name: str = "", ref: str = "") -> Any:
        """The answer to the form, or the landing page's when that was not a page."""
        page = self.landing(slug, ref)
        if page.status_code != 200:
            return page
        token = CSRF_INPUT.search(page.text)
        assert token, "no CSRF token on the landing page"
        form = {"csrfmiddlewaretoken": token[1], "email": email, "name": name, "consent": "on"}
        return self.client.post(f"/c/{slug}/join", data={**form, "ref": ref})


CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
