"""`make loadtest`: a bounded load test of a real server, on loopback (a benchmark: not part
of `make test`).

gunicorn serves Fission on PostgreSQL; wrk sends, for LOADTEST_SECONDS (60), a mix of
invite clicks (GET /r/<code>, half), joins through the landing page's form (POST
/c/<slug>/join, a quarter) and purchase events (POST /api/v1/events/, a quarter). It
reports requests/s, p50/p95/p99 latency and errors, then checks that every acknowledged
write is in the database (a 302 is a click, a 303 a join, a 201 an event) and that no
reward was granted twice. It writes tests/bench/loadtest.json and the README's table.

    LOADTEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/fission_loadtest make loadtest
    make loadtest LOADTEST_ARGS="--seconds 20 --connections 32"
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench import checks, harness, http  # noqa: E402

DATABASE_URL = os.environ.get(
    "LOADTEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/fission_loadtest"
)
SERVER_ENV = {
    **http.SERVER_ENV,
    "DATABASE_URL": DATABASE_URL,
    "SECRET_KEY": os.environ.get("SECRET_KEY", "load-test-only-key"),
    "CELERY_BROKER_URL": "",
    "DJANGO_SETTINGS_MODULE": "tests.bench.settings",
}
os.environ.update(SERVER_ENV)

LUA = Path(__file__).with_name("loadtest.lua")


def create_database(url: str) -> None:
    """The load test's database, made if missing."""
    import psycopg

    server, name = url.rsplit("/", 1)
    with psycopg.connect(f"{server}/postgres", autocommit=True) as db:
        if not db.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            db.execute(f'CREATE DATABASE "{name}"')


def prepare(campaign_slug: str, seeds: int) -> dict[str, Any]:
    """Migrate the database, and make the campaign, its first participants and a key."""
    import django

    django.setup()
    from django.core.management import call_command

    from apps.api.services import api_key_create
    from apps.campaigns.models import Campaign, CommissionLevel, RefereeReward, RewardTier
    from apps.referrals.services import participant_join

    call_command("migrate", verbosity=0)
    campaign = Campaign.objects.create(
        slug=campaign_slug,
        name="Load test",
        status=Campaign.Status.ACTIVE,
        qualifying_event=Campaign.QualifyingEvent.PURCHASE,
        min_purchase_amount=Decimal("10.00"),
    )
    CommissionLevel.objects.create(campaign=campaign, level=1, percent=Decimal("10.00"))
    CommissionLevel.objects.create(campaign=campaign, level=2, percent=Decimal("5.00"))
    RefereeReward.objects.create(campaign=campaign, kind="coupon", amount=Decimal("20.00"))
    RewardTier.objects.create(campaign=campaign, threshold=3, kind="coupon", amount=Decimal(50))
    people = []
    for n in range(seeds):
        referrer = people[(n - 1) // 3] if n and n % 4 else None  # a few trees, 3 levels
        person, _ = participant_join(
            campaign=campaign,
            email=f"seed{n}@load.example",
            name=f"Seed {n}",
            external_id=f"seed-{n}",
            referrer=referrer,
            consent=True,
            require_open=False,
        )
        people.append(person)
    return {
        "campaign_id": campaign.pk,
        "codes": [p.code for p in people],
        "buyers": [p.external_id for p in people if p.depth > 0],
        "key": api_key_create(name=f"load test {campaign_slug}")[1],
    }


def counts(campaign_id: int) -> dict[str, int]:
    from apps.referrals.models import Click, Participant
    from apps.rewards.models import Conversion

    return {
        "clicks": Click.objects.filter(campaign_id=campaign_id).count(),
        "joins": Participant.objects.filter(campaign_id=campaign_id).count(),
        "events": Conversion.objects.filter(campaign_id=campaign_id, type="purchase").count(),
    }


def csrf_pair(base_url: str, slug: str) -> tuple[str, str]:
    """A CSRF cookie and a form token that goes with it, from the landing page."""
    import httpx

    page = httpx.get(f"{base_url}/c/{slug}/", timeout=10)
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert match, f"no form on the landing page: {page.status_code}"
    return page.cookies["csrftoken"], match[1]


def write(result: dict[str, Any], readme: Path | None) -> str:
    rows = [
        ("requests/s", f"{result['requests_per_second']:,.0f}"),
        ("latency p50 / p95 / p99", "{p50_ms} / {p95_ms} / {p99_ms} ms".format(**result)),
        (
            "acknowledged",
            "{clicks:,} clicks (302), {joins:,} joins (303), {events:,} events (201)".format(
                **result
            ),
        ),
        ("errors", f"{result['errors']} (other statuses and socket errors)"),
        ("lost writes", f"{result['lost']} (acknowledged but not in the database)"),
        ("rewards granted twice", str(result["duplicate_rewards"])),
    ]
    table = "| figure | value |\n|---|---|\n" + "".join(f"| {a} | {b} |\n" for a, b in rows)
    text = (
        f"Measured {result['measured_at']} on {result['machine']}: {result['seconds']} s, "
        f"{result['connections']} connections, gunicorn {result['workers']} workers × "
        f"{result['threads']} threads, PostgreSQL on the same machine.\n\n{table}"
    )
    (ROOT / "tests" / "bench" / "loadtest.json").write_text(
        json.dumps(result, indent=2, ensure_ascii=False) + "\n"
    )
    if readme is not None:
        harness.replace_marked(readme, "loadtest", text)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("LOADTEST_SECONDS", 60)))
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=(os.cpu_count() or 1) * 2)
    parser.add_argument("--server-threads", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=200, help="participants made first")
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite README")
    args = parser.parse_args()

    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    create_database(DATABASE_URL)
    slug = f"load-{int(time.time())}"
    seed = prepare(slug, args.seeds)
    before = counts(seed["campaign_id"])

    with http.Server(env=SERVER_ENV, workers=args.workers, threads=args.server_threads) as server:
        base = server.url
        cookie, token = csrf_pair(base, slug)
        lua = (
            LUA.read_text()
            .replace("{CODES}", http.lua_list(seed["codes"]))
            .replace("{BUYERS}", http.lua_list(seed["buyers"]))
            .replace("{TOKEN}", token)
            .replace("{COOKIE}", cookie)
            .replace("{KEY}", seed["key"])
            .replace("{SLUG}", slug)
        )
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write(lua)
        print(f"wrk: {args.seconds} s, {args.connections} connections against {base} …")
        run = subprocess.run(  # noqa: S603
            [wrk, "-t", str(args.threads), "-c", str(args.connections),
             "-d", f"{args.seconds}s", "--timeout", "10s", "-s", script.name, base],
            capture_output=True, text=True, timeout=args.seconds + 120, check=True,
        )  # fmt: skip
    print(run.stdout)
    measured = json.loads(run.stdout.split("RESULT ", 1)[1].splitlines()[0])
    after = counts(seed["campaign_id"])
    stored = {name: after[name] - before[name] for name in after}
    lost = sum(max(0, measured[name] - stored[name]) for name in stored)
    result = {
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": harness.machine(),
        "seconds": args.seconds,
        "connections": args.connections,
        "workers": args.workers,
        "threads": args.server_threads,
        "requests": measured["requests"],
        "requests_per_second": measured["requests"] / (measured["duration_us"] / 1e6),
        "p50_ms": round(measured["p50_us"] / 1000, 1),
        "p95_ms": round(measured["p95_us"] / 1000, 1),
        "p99_ms": round(measured["p99_us"] / 1000, 1),
        "max_ms": round(measured["max_us"] / 1000, 1),
        "clicks": measured["clicks"],
        "joins": measured["joins"],
        "events": measured["events"],
        "stored": stored,
        "errors": measured["unexpected_status"] + measured["socket_errors"],
        "lost": lost,
        "duplicate_rewards": checks.duplicate_rewards(seed["campaign_id"]),
    }
    print(write(result, None if args.no_readme else ROOT / "README.md"))
    ok = result["errors"] == 0 and lost == 0 and result["duplicate_rewards"] == 0
    if not ok:
        print("FAILED: errors, lost writes or duplicate rewards (see above)", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
