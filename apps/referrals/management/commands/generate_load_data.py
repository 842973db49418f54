"""Scale data for the benchmarks: campaigns, a million-node referral forest, millions
of clicks and (with --rewards) a reward ledger, written with COPY (PostgreSQL only).

The shapes the benchmarks need: one referrer with a large subtree (a viral seed), chains
hundreds deep, and many ordinary campaigns of shallow random trees. The rewards are what
the engine would have written for them (apps/rewards/loaddata.py). `--rewards-only`
replaces the rewards of the data already there.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.utils import timezone
from tqdm import tqdm

from apps.analytics.rollup import report_rollup
from apps.campaigns.models import Campaign, RewardTier
from apps.common.codes import CODE_ALPHABET
from apps.referrals.rollup import tree_rollup
from apps.rewards.loaddata import (
    BATCH_CREATOR,
    CONVERSION_COLUMNS,
    REWARD_COLUMNS,
    RewardPlan,
)
from apps.rewards.models import PayoutBatch

PREFIX = "load-"
CHANNELS = ["wechat", "whatsapp", "link", "weibo", "telegram", "email"]
UA_CLASSES = ["mobile"] * 7 + ["desktop"] * 2 + ["tablet"]
PARTICIPANT_COLUMNS = (
    "id", "campaign_id", "email", "email_normalized", "name", "referrer_id", "depth", "path",
    "code", "token", "channel", "language", "consent_at", "consent_version", "qualified_at",
    "status", "joined_at", "join_ip_hash", "join_visitor_id",
)  # fmt: skip
CLICK_COLUMNS = (
    "campaign_id", "participant_id", "created_at", "channel", "visitor_id", "ip_hash",
    "ua_class", "is_bot",
)  # fmt: skip
CHUNK = 20_000


class Node:
    __slots__ = ("campaign", "depth", "id", "joined", "path")

    def __init__(self, id: int, campaign: int, depth: int, path: str, joined: datetime) -> None:
        self.id, self.campaign, self.depth, self.path, self.joined = (
            id,
            campaign,
            depth,
            path,
            joined,
        )


GENERATED = ("referrals_participant", "referrals_click", "rewards_conversion", "rewards_reward")
ROLLED_UP = (
    "referrals_subtreesize", "analytics_jointally", "analytics_cohorttally",
    "analytics_referralgap", "analytics_visitorseen", "analytics_visitortally",
)  # fmt: skip


class Command(BaseCommand):
    help = (
        "Generate benchmark data (PostgreSQL): campaigns, participants in referral trees, "
        "clicks, and with --rewards a reward ledger."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--campaigns", type=int, default=50)
        parser.add_argument("--participants", type=int, default=1_000_000)
        parser.add_argument("--clicks", type=int, default=5_000_000)
        parser.add_argument(
            "--big-subtree", type=int, default=150_000, help="descendants of one referrer"
        )
        parser.add_argument("--chains", type=int, default=5, help="chains, each --chain-depth deep")
        parser.add_argument("--chain-depth", type=int, default=200)
        parser.add_argument("--days", type=int, default=90, help="how far back joins and clicks go")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--rewards", type=int, default=0, help="reward ledger entries (with their events)"
        )
        parser.add_argument(
            "--rewards-only",
            action="store_true",
            help="keep the campaigns, participants and clicks; replace only the rewards",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError(
                "generate_load_data writes with COPY and needs PostgreSQL (set DATABASE_URL)."
            )
        if opts["rewards"] < 0:
            raise CommandError("--rewards must not be negative.")
        # Repeatable shapes from a seed; these are not secrets (tokens come from `secrets`).
        self.rng = random.Random(opts["seed"])  # noqa: S311
        self.now = timezone.now()
        self.start = self.now - timedelta(days=opts["days"])
        if opts["rewards_only"]:
            self._rewards_only(opts["rewards"])
            return
        if opts["campaigns"] < 1 or opts["participants"] < 1:
            raise CommandError("--campaigns and --participants must be at least 1.")
        big = opts["big_subtree"] + 1 + opts["chains"] * (opts["chain_depth"] + 1)
        if big > opts["participants"]:
            raise CommandError("--participants must exceed the big subtree plus the chains.")
        with transaction.atomic():
            self._reset()
            campaigns = self._campaigns(opts["campaigns"])
            nodes = self._participants(campaigns, opts)
            self._clicks(nodes, opts["clicks"])
            if opts["rewards"]:
                self._rewards([c.pk for c in campaigns], opts["rewards"])
        self._analyze()
        self.stderr.write("Rolling up subtree sizes and the report tallies…")
        tree_rollup()
        report_rollup()
        self._analyze(ROLLED_UP)
        self.stdout.write(
            self.style.SUCCESS(
                f"Generated {len(campaigns)} campaigns, {len(nodes)} participants, "
                f"{opts['clicks']} clicks, {opts['rewards']} rewards (campaigns '{PREFIX}*')."
            )
        )

    def _analyze(self, tables: tuple[str, ...] = GENERATED) -> None:
        """Statistics for the planner, and (outside a transaction) the visibility map that
        index-only scans need: what autovacuum would do to a live table after a while."""
        command = "ANALYZE" if connection.in_atomic_block else "VACUUM (ANALYZE)"
        self.stderr.write(f"{command}…")
        with connection.cursor() as cursor:
            for table in tables:
                cursor.execute(f"{command} {table}")

    def _rewards_only(self, count: int) -> None:
        ids = list(Campaign.objects.filter(slug__startswith=PREFIX).values_list("id", flat=True))
        if not ids:
            raise CommandError("No load data to add rewards to: generate it first.")
        with transaction.atomic():
            self._reset_rewards(ids)
            if count:
                self._rewards(ids, count)
        self._analyze()
        self.stdout.write(self.style.SUCCESS(f"Generated {count} rewards (campaigns '{PREFIX}*')."))

    def _reset_rewards(self, ids: list[int]) -> None:
        """Remove the rewards of the load campaigns, with their events and batches."""
        # Paid rewards and batches never change (triggers say so), but the load data's go
        # with it: the deletes run as a replica would apply them, without triggers (nothing
        # else refers to these rows: the engine never ran on them).
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('session_replication_role', 'replica', true)")
            cursor.execute("DELETE FROM rewards_reward WHERE campaign_id = ANY(%s)", [ids])
            cursor.execute("DELETE FROM rewards_conversion WHERE campaign_id = ANY(%s)", [ids])
            cursor.execute("DELETE FROM rewards_payoutbatch WHERE created_by = %s", [BATCH_CREATOR])
            cursor.execute("SELECT set_config('session_replication_role', 'origin', true)")

    def _reset(self) -> None:
        ids = list(Campaign.objects.filter(slug__startswith=PREFIX).values_list("id", flat=True))
        if not ids:
            return
        self.stderr.write(f"Removing the previous load data ({len(ids)} campaigns)…")
        self._reset_rewards(ids)
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM referrals_click WHERE campaign_id = ANY(%s)", [ids])
            cursor.execute(
                "DELETE FROM referrals_fraudflag WHERE participant_id IN "
                "(SELECT id FROM referrals_participant WHERE campaign_id = ANY(%s))",
                [ids],
            )
            cursor.execute(
                "DELETE FROM referrals_subtreesize WHERE participant_id IN "
                "(SELECT id FROM referrals_participant WHERE campaign_id = ANY(%s))",
                [ids],
            )
            # Django's foreign keys are DEFERRABLE INITIALLY DEFERRED on PostgreSQL, so
            # one statement removes a whole forest, children and parents together.
            cursor.execute("DELETE FROM referrals_participant WHERE campaign_id = ANY(%s)", [ids])
        Campaign.objects.filter(id__in=ids).delete()

    def _campaigns(self, count: int) -> list[Campaign]:
        campaigns = Campaign.objects.bulk_create(
            Campaign(
                slug=f"{PREFIX}{n:03d}",
                name=f"Load campaign {n}",
                status=Campaign.Status.ACTIVE,
                qualifying_event=Campaign.QualifyingEvent.SIGNUP,
                attribution_window_days=30,
            )
            for n in range(count)
        )
        RewardTier.objects.bulk_create(
            RewardTier(campaign=c, threshold=t, amount=a, currency="CNY", description=f"{a} CNY")
            for c in campaigns
            for t, a in ((3, 50), (5, 100), (10, 300))
        )
        return campaigns

    def _participants(self, campaigns: list[Campaign], opts: dict[str, Any]) -> list[Node]:
        with connection.cursor() as cursor:
            # Continue the id sequence, never reuse ids: the tree roll-up's watermark
            # assumes that new participants get higher ids.
            cursor.execute(
                "SELECT GREATEST(COALESCE(MAX(id), 0), "
                "(SELECT last_value FROM referrals_participant_id_seq)) FROM referrals_participant"
            )
            (last_id,) = cursor.fetchone()
        total = opts["participants"]
        span = (self.now - self.start).total_seconds()
        nodes: list[Node] = []
        codes: set[str] = set()

        def add(campaign: int, parent: Node | None, at: float) -> Node:
            joined = self.start + timedelta(seconds=at * span)
            if parent is not None and joined <= parent.joined:
                joined = parent.joined + timedelta(seconds=self.rng.randint(60, 3 * 86400))
                joined = min(joined, self.now)
            node = Node(
                last_id + len(nodes) + 1,
                campaign,
                parent.depth + 1 if parent else 0,
                (f"{parent.path}/{parent.id}" if parent.path else str(parent.id)) if parent else "",
                joined,
            )
            nodes.append(node)
            return node

        # Campaign 0: one viral seed with a large random subtree, and deep chains.
        first = campaigns[0].pk
        viral = add(first, None, 0.0)
        subtree = [viral]
        for n in range(opts["big_subtree"]):
            subtree.append(add(first, self.rng.choice(subtree), n / opts["big_subtree"]))
        for _ in range(opts["chains"]):
            node = add(first, None, 0.0)
            for step in range(opts["chain_depth"]):
                node = add(first, node, step / opts["chain_depth"])
        # The rest: shallow random forests, about one seed in five.
        rest = total - len(nodes)
        per_campaign: dict[int, list[Node]] = {c.pk: [] for c in campaigns}
        for n in range(rest):
            campaign = campaigns[n % len(campaigns)].pk
            members = per_campaign[campaign]
            parent = self.rng.choice(members) if members and self.rng.random() > 0.2 else None
            members.append(add(campaign, parent, n / max(rest, 1)))

        def rows() -> Iterator[str]:
            for node in nodes:
                code = "".join(self.rng.choice(CODE_ALPHABET) for _ in range(10))
                while code in codes:
                    code = "".join(self.rng.choice(CODE_ALPHABET) for _ in range(10))
                codes.add(code)
                referrer = node.path.rsplit("/", 1)[-1] if node.path else "\\N"
                qualified = (
                    node.joined.isoformat() if node.depth and self.rng.random() < 0.6 else "\\N"
                )
                yield "\t".join(
                    (
                        str(node.id), str(node.campaign), f"p{node.id}@load.example",
                        f"p{node.id}@load.example", f"P{node.id}", referrer, str(node.depth),
                        node.path, code, secrets.token_urlsafe(24), "load", "en",
                        node.joined.isoformat(), "load", qualified, "active",
                        node.joined.isoformat(), "", "",
                    )
                ) + "\n"  # fmt: skip

        self._copy("referrals_participant", PARTICIPANT_COLUMNS, rows(), len(nodes), "participants")
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence('referrals_participant', 'id'), "
                "(SELECT MAX(id) FROM referrals_participant))"
            )
        return nodes

    def _clicks(self, nodes: list[Node], count: int) -> None:
        span = (self.now - self.start).total_seconds()
        rng = self.rng

        def rows() -> Iterator[str]:
            for _ in range(count):
                node = nodes[rng.randrange(len(nodes))]
                bot = rng.random() < 0.05
                at = self.start + timedelta(seconds=rng.random() * span)
                yield "\t".join(
                    (
                        str(node.campaign), str(node.id), at.isoformat(), rng.choice(CHANNELS),
                        f"v{rng.randrange(count // 2 + 1)}", f"{rng.getrandbits(64):016x}",
                        "bot" if bot else rng.choice(UA_CLASSES), "t" if bot else "f",
                    )
                ) + "\n"  # fmt: skip

        self._copy("referrals_click", CLICK_COLUMNS, rows(), count, "clicks")

    def _next_id(self, table: str) -> int:
        """The last id handed out in `table`: new rows continue after it."""
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT GREATEST(COALESCE(MAX(id), 0), "  # noqa: S608 (a table name of ours)
                f"(SELECT last_value FROM {table}_id_seq)) FROM {table}"
            )
            (last_id,) = cursor.fetchone()
        return int(last_id)

    def _rewards(self, campaign_ids: list[int], count: int) -> None:
        """`count` reward entries on the referred participants of the load campaigns, with
        the sign-ups, purchases and refunds that caused them (see the module docstring)."""
        with connection.cursor() as cursor:
            # Each referee with its first three ancestors (nearest first).
            cursor.execute(
                "SELECT p.id, p.campaign_id, p.referrer_id, r.referrer_id, r2.referrer_id, "
                "p.qualified_at, p.joined_at FROM referrals_participant p "
                "JOIN referrals_participant r ON r.id = p.referrer_id "
                "LEFT JOIN referrals_participant r2 ON r2.id = r.referrer_id "
                "WHERE p.campaign_id = ANY(%s) ORDER BY p.id",
                [campaign_ids],
            )
            referred = cursor.fetchall()
        if not referred:
            raise CommandError("The load data has no referred participants to reward.")
        plan = RewardPlan(
            self.rng,
            self.now,
            self._next_id("rewards_conversion"),
            self._next_id("rewards_reward"),
            self._next_id("rewards_payoutbatch"),
        )
        plan.make(referred, count)
        self._copy(
            "rewards_conversion",
            CONVERSION_COLUMNS,
            iter(plan.conversions),
            len(plan.conversions),
            "conversions",
        )
        self._copy("rewards_reward", REWARD_COLUMNS, iter(plan.rewards), count, "rewards")
        PayoutBatch.objects.bulk_create(plan.batches.values())
        with connection.cursor() as cursor:
            for table in ("rewards_conversion", "rewards_reward", "rewards_payoutbatch"):
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                    f"(SELECT MAX(id) FROM {table}))"
                )

    def _copy(
        self, table: str, columns: tuple[str, ...], rows: Iterator[str], total: int, label: str
    ) -> None:
        sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        with connection.cursor() as cursor, cursor.copy(sql) as copy:
            bar = tqdm(total=total, unit=" rows", desc=label, file=self.stderr._out, disable=None)
            buffer: list[str] = []
            for row in rows:
                buffer.append(row)
                if len(buffer) >= CHUNK:
                    copy.write("".join(buffer))
                    bar.update(len(buffer))
                    buffer.clear()
            if buffer:
                copy.write("".join(buffer))
                bar.update(len(buffer))
            bar.close()
