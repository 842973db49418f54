"""Serving Fission with gunicorn and loading it with wrk, both on loopback.

The HTTP figures compare a Fission URL with a baseline view (tests/bench/urls.py) served by
the same gunicorn, behind the same middleware, loaded by the same wrk from a second process.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Production-like settings on loopback: DEBUG off, no TLS, no per-address join limit (every
# request comes from 127.0.0.1), quiet logs.
SERVER_ENV = {
    "DEBUG": "false",
    "SECURE_SSL_REDIRECT": "false",
    "SESSION_COOKIE_SECURE": "false",
    "CSRF_COOKIE_SECURE": "false",
    "SECURE_HSTS_SECONDS": "0",
    "STATIC_MANIFEST": "false",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "RATELIMIT_ENABLE": "false",
    "LOG_LEVEL": "WARNING",
    "PYTHONWARNINGS": "ignore:No directory at",
}

# A memory file system, where gunicorn makes its workers' heartbeat files (mkstemp).
MEMORY_DIR = "/dev/shm"  # noqa: S108

# wrk reports its figures as one JSON line: requests, their duration, non-2xx/3xx answers,
# socket errors and latency percentiles (microseconds).
LUA_DONE = """
done = function(summary, latency, requests)
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d,'
    .. ' "p50_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def lua_list(values: list[str]) -> str:
    """A Lua table literal of strings."""
    return "{" + ",".join(json.dumps(v) for v in values) + "}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Load:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


class Server:
    """gunicorn serving the benchmark settings (Fission plus the baselines) on a free port;
    a context manager that stops it on exit."""

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        workers: int | None = None,
        threads: int = 4,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            **SERVER_ENV,
            "DJANGO_SETTINGS_MODULE": "tests.bench.settings",
            **(env or {}),
        }
        self.workers = workers or (os.cpu_count() or 1) * 2
        self.threads = threads
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        self.process = subprocess.Popen(  # noqa: S603 (our own command line)
            [
                sys.executable, "-m", "gunicorn", "config.wsgi",
                "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers),
                "--threads", str(self.threads), "--worker-class", "gthread",
                "--log-level", "warning", "--keep-alive", "30",
                # The workers' heartbeat files, touched on every loop: on a memory file
                # system, as gunicorn advises, so that a disk busy with PostgreSQL's
                # writes never holds a worker up.
                *(["--worker-tmp-dir", MEMORY_DIR] if os.path.isdir(MEMORY_DIR) else []),
            ],
            cwd=ROOT, env=self.env,
        )  # fmt: skip
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/bench/bare", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError("gunicorn did not answer within 60 s")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(30)
            self.process = None


def wrk(
    url: str,
    script: str = "",
    *,
    seconds: float = 5,
    connections: int = 16,
    threads: int = 2,
) -> Load:
    """Load `url` with wrk for `seconds` from a second process. `script` is Lua (a
    `request` function, say); the report is added to it."""
    binary = shutil.which("wrk")
    if binary is None:
        raise RuntimeError("wrk is not installed (Debian: apt-get install wrk)")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
        file.write(script + LUA_DONE)
    try:
        run = subprocess.run(  # noqa: S603
            [binary, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
             "--timeout", "10s", "-s", file.name, url],
            capture_output=True, text=True, timeout=seconds + 120, check=True,
        )  # fmt: skip
    finally:
        os.unlink(file.name)
    found = json.loads(run.stdout.split("RESULT ", 1)[1].splitlines()[0])
    return Load(
        requests=found["requests"],
        seconds=found["duration_us"] / 1e6,
        errors=found["status_errors"] + found["socket_errors"],
        p50_ms=found["p50_us"] / 1000,
        p99_ms=found["p99_us"] / 1000,
    )
