"""`make bench`: generate scale data on PostgreSQL (once), measure every figure against its
baseline in the same run, print the table, write tests/bench/results.json and the README's
benchmark table.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/fission_bench make bench
    make bench BENCH_ARGS="--only tree --participants 200000"
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

os.environ["DATABASE_URL"] = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/fission_bench"
)
os.environ.setdefault("SECRET_KEY", "benchmark-only-key")
os.environ.setdefault("DEBUG", "false")
for switch in ("SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"):
    os.environ.setdefault(switch, "false")
os.environ.setdefault("SECURE_HSTS_SECONDS", "0")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--participants", type=int, default=1_000_000)
    parser.add_argument("--clicks", type=int, default=5_000_000)
    parser.add_argument("--big-subtree", type=int, default=150_000)
    parser.add_argument("--rewards", type=int, default=1_000_000)
    parser.add_argument(
        "--regenerate", action="store_true", help="generate the data even if present"
    )
    parser.add_argument("--only", action="append", default=[], help="run only these suites")
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite README's table")
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.management import call_command

    from apps.campaigns.models import Campaign
    from apps.referrals.models import Participant
    from apps.rewards.models import Reward

    from . import harness, suites

    call_command("migrate", verbosity=0)
    present = Participant.objects.filter(campaign__slug__startswith="load-").count()
    if args.regenerate or present != args.participants:
        call_command(
            "generate_load_data",
            participants=args.participants,
            clicks=args.clicks,
            big_subtree=args.big_subtree,
            rewards=args.rewards,
        )
    elif Reward.objects.filter(campaign__slug__startswith="load-").count() != args.rewards:
        call_command("generate_load_data", rewards=args.rewards, rewards_only=True)
    context = suites.Context(
        campaigns=list(Campaign.objects.filter(slug__startswith="load-").order_by("slug")),
        big_subtree=args.big_subtree,
    )
    results = []
    with context.stack:
        for name, suite in suites.SUITES.items():
            if args.only and name not in args.only:
                continue
            for figure in suite(context):
                print(f"… {figure.name}", file=sys.stderr, flush=True)
                results.append(harness.measure(figure))
    readme = None if args.no_readme or args.only else ROOT / "README.md"
    print(harness.write(results, Path(__file__).with_name("results.json"), readme))
    return 0 if all(r.met is not False for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
