"""The fault tests' figures into README.md (`make reliability` runs it after the tests).

The tests keep what they measured in var/reliability/results.json; this writes the
README's table between its markers and a copy to tests/reliability/results.json.
"""

from __future__ import annotations

import json
import platform
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MEASURED = ROOT / "var" / "reliability" / "results.json"
KEPT = ROOT / "tests" / "reliability" / "results.json"
START, END = "<!-- reliability:start -->", "<!-- reliability:end -->"


def _machine() -> str:
    try:
        cpus = re.findall(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    except OSError:
        cpus = []
    cpu = f"{len(cpus)} × {cpus[0].strip()}" if cpus else "unknown CPU"
    return f"{platform.system()} {platform.machine()}, {cpu}"


def rows(results: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    if crash := results.get("worker_crash"):
        out.append(
            (
                "Celery worker SIGKILLed mid-batch, then restarted",
                f"{crash['jobs']:,} webhook deliveries, killed after "
                f"{crash['delivered_before_kill']}: **lost {crash['lost']}, recorded twice "
                f"{crash['duplicated']}**; {crash['resent_same_webhook_id']} sent again with "
                f"the same webhook-id (the dead worker's, dropped by the host); worker back in "
                f"{crash['worker_restart_seconds']} s, every delivery made "
                f"**{crash['recovery_seconds']} s after the kill** (lease "
                f"{crash['lease_seconds']} s, sweep every {crash['sweep_every_seconds']} s)",
            )
        )
    if queued := results.get("queued_purchases"):
        out.append(
            (
                "Celery worker SIGKILLed while applying queued purchases, then restarted",
                f"{queued['purchases']} purchases taken in with `Prefer: respond-async` "
                f"({queued['posted']} posts, repeats included), killed with "
                f"{queued['left_at_kill']} still queued: **lost {queued['lost']}, applied "
                f"twice {queued['applied_twice']}**; every purchase applied "
                f"**{queued['recovery_seconds']} s after the kill** (sweep every "
                f"{queued['sweep_every_seconds']} s)",
            )
        )
    if restart := results.get("postgres_restart"):
        out.append(
            (
                "PostgreSQL restarted under load",
                f"{restart['requests']} requests from 6 clients, the database down "
                f"{restart['outage_seconds']} s: {restart['answered_503_retry_after']} "
                f"answered 503 with Retry-After, **{restart['other_errors']} other errors, "
                f"lost {restart['lost']}, rewards twice {restart['duplicated_rewards']}**; "
                f"answering again {restart['seconds_to_first_success_after_start']} s after "
                f"it was back; {restart['events_sent_again']} unanswered events sent again "
                "with their Idempotency-Key, one effect each",
            )
        )
    if redis := results.get("redis_down"):
        out.append(
            (
                "Redis (cache and broker) down",
                f"links redirected and {redis['joins_acknowledged_while_down']} joins from "
                f"one address (over its limit) acknowledged while it was down: **lost "
                f"{redis['lost']}**; the {redis['webhooks_sent_after_redis_returned']} "
                f"webhooks that could not be queued sent {redis['catch_up_seconds']} s after "
                f"it was back (a worker's start included), "
                f"**{redis['webhooks_duplicated']} twice**",
            )
        )
    return out


def main() -> int:
    if not MEASURED.exists():
        print(f"no figures: run the fault tests first ({MEASURED} is missing)", file=sys.stderr)
        return 1
    results = json.loads(MEASURED.read_text())
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    results["measured"] = {"at": when, "machine": _machine()}
    KEPT.write_text(json.dumps(results, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    table = "| fault | measured |\n|---|---|\n" + "".join(
        f"| {fault} | {figures} |\n" for fault, figures in rows(results)
    )
    text = f"Measured by `make reliability` {when} on {_machine()}.\n\n{table}"
    readme = ROOT / "README.md"
    body = readme.read_text()
    if START in body and END in body:
        head, rest = body.split(START, 1)
        _, tail = rest.split(END, 1)
        readme.write_text(f"{head}{START}\n{text}{END}{tail}")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
