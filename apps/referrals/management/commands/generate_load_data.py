"""Scale data for the benchmarks: campaigns, a million-node referral forest, millions
of clicks and (with --rewards) a reward ledger, written with COPY (PostgreSQL only).

The shapes the benchmarks need: one referrer with a large subtree (a viral seed), chains
hundreds deep, and many ordinary campaigns of shallow random trees. The rewards are what
the engine would have written for them: referee rewards and tiers from the qualified
referees' sign-ups, commissions (three levels) on purchases in several currencies, in
every state, the paid ones in paid payout batches, refunds reversing or owing back.
`--rewards-only` replaces the rewards of the data already there.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.utils import timezone
from tqdm import tqdm

from apps.analytics.rollup import report_rollup
from apps.campaigns.models import Campaign, RewardTier
from apps.common.codes import CODE_ALPHABET
from apps.common.money import percent_of
from apps.referrals.rollup import tree_rollup
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
CONVERSION_COLUMNS = (
    "id", "campaign_id", "participant_id", "type", "order_id", "amount", "currency",
    "occurred_at", "received_at", "idempotency_key", "status", "note", "qualifying",
    "purchase_id", "applied_amount", "response_status", "response",
)  # fmt: skip
REWARD_COLUMNS = (
    "id", "campaign_id", "participant_id", "source", "level", "tier_threshold", "percent",
    "conversion_id", "purchase_id", "referee_id", "order_id", "adjusts_id", "kind",
    "description", "amount", "currency", "state", "reason", "due_at", "created_at",
    "updated_at", "approved_at", "paid_at", "payout_reference", "payout_batch_id",
)  # fmt: skip
CHUNK = 20_000
# The reward mix: shares of the total for referee rewards and tiers (as far as there are
# qualified referees and referrers for them); commissions on purchases make up the rest.
REFEREE_SHARE, TIER_SHARE = 0.4, 0.1
REFEREE_AMOUNT = Decimal("10.00")
TIERS = ((3, Decimal(50)), (5, Decimal(100)), (10, Decimal(300)))
COMMISSION_PERCENTS = (Decimal(10), Decimal(5), Decimal(2))
# Purchases: (currency, weight, smallest and largest amount in whole units).
CURRENCIES = (
    ("CNY", 70, 20, 2000), ("USD", 15, 5, 400), ("EUR", 9, 5, 400), ("JPY", 6, 500, 50000),
)  # fmt: skip
REFUND_RATE = 0.03
# Grant states with their weights.
STATES = (
    ("pending", 8), ("held", 12), ("approved", 25), ("paid", 45), ("rejected", 5),
    ("reversed", 5),
)  # fmt: skip
HOLD = timedelta(days=14)
BATCH_CREATOR = "generate_load_data"
NULL = "\\N"


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
        plan = _RewardPlan(
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


def _time(value: datetime | None) -> str:
    return NULL if value is None else value.isoformat()


def _value(value: object) -> str:
    return NULL if value is None else str(value)


class _RewardPlan:
    """The rewards and their events as COPY rows, with ids handed out in order."""

    def __init__(
        self, rng: random.Random, now: datetime, conversion_id: int, reward_id: int, batch_id: int
    ) -> None:
        self.rng, self.now = rng, now
        self.conversion_id, self.reward_id, self.batch_id = conversion_id, reward_id, batch_id
        self.payees: dict[int, set[int]] = {}
        self.conversions: list[str] = []
        self.rewards: list[str] = []
        self.batches: dict[tuple[str, str], PayoutBatch] = {}
        self.states = [state for state, _ in STATES]
        self.weights = [weight for _, weight in STATES]

    def make(self, referred: list[tuple[Any, ...]], count: int) -> None:
        rng = self.rng
        qualified = [row for row in referred if row[5] is not None]
        signups: dict[int, int] = {}
        for pid, campaign, _, _, _, qualified_at, _ in qualified:
            signups[pid] = self._conversion(campaign, pid, "signup", qualified_at)
        # Referee rewards: a sample of the qualified referees, owed to themselves.
        chosen = rng.sample(qualified, min(int(count * REFEREE_SHARE), len(qualified)))
        for pid, campaign, _, _, _, qualified_at, _ in sorted(chosen):
            self._reward(
                campaign, pid, "referee", signups[pid], qualified_at, REFEREE_AMOUNT, "CNY",
                referee=pid,
            )  # fmt: skip
        # Tiers: a referrer's 3rd, 5th and 10th qualified referee each reach one.
        friends: dict[int, list[tuple[datetime, int, int]]] = {}
        for pid, campaign, referrer, _, _, qualified_at, _ in qualified:
            friends.setdefault(referrer, []).append((qualified_at, pid, campaign))
        tiers = min(int(count * TIER_SHARE), count - len(self.rewards))
        for referrer, rows in friends.items():
            rows.sort()
            for threshold, amount in TIERS:
                if tiers <= 0 or len(rows) < threshold:
                    break
                at, referee, campaign = rows[threshold - 1]
                self._reward(
                    campaign, referrer, "tier", signups[referee], at, amount, "CNY",
                    referee=referee, tier_threshold=threshold, description=f"{amount} CNY",
                )  # fmt: skip
                tiers -= 1
        # Commissions on purchases until the count is reached.
        currencies = [c for c, *_ in CURRENCIES]
        weights = [w for _, w, *_ in CURRENCIES]
        ranges = {c: (low, high) for c, _, low, high in CURRENCIES}
        while len(self.rewards) < count:
            pid, campaign, *ancestors, _, joined_at = rng.choice(referred)
            currency = rng.choices(currencies, weights)[0]
            low, high = ranges[currency]
            whole = currency == "JPY"
            amount = (
                Decimal(rng.randint(low, high))
                if whole
                else Decimal(rng.randint(low * 100, high * 100)) / 100
            )
            at = joined_at + (self.now - joined_at) * rng.random()
            order = f"L{self.conversion_id + 1}"
            purchase = self._conversion(campaign, pid, "purchase", at, order, amount, currency)
            refund = None
            if rng.random() < REFUND_RATE:
                refunded_at = min(at + timedelta(days=rng.uniform(1, 20)), self.now)
                refund = self._conversion(
                    campaign, pid, "refund", refunded_at, order, amount, currency, purchase
                )
            for level, (receiver, percent) in enumerate(
                zip(ancestors, COMMISSION_PERCENTS, strict=True), 1
            ):
                if receiver is None or len(self.rewards) >= count:
                    break
                share = percent_of(amount, percent, currency)
                fields = {
                    "referee": pid, "level": level, "percent": percent, "purchase": purchase,
                    "order_id": order, "kind": "cash",
                    "description": f"{percent}% of order {order}",
                }  # fmt: skip
                state = None
                if refund is not None:
                    state = self._pick_state()
                    if state in ("pending", "held", "approved"):
                        state = "reversed"  # taken back in full before it was paid
                grant = self._reward(
                    campaign, receiver, "commission", purchase, at, share, currency,
                    state=state, **fields,
                )  # fmt: skip
                if refund is not None and state == "paid" and len(self.rewards) < count:
                    # Paid already: the correction is owed back, netted in a later payout.
                    self._reward(
                        campaign, receiver, "commission", refund, refunded_at, -share, currency,
                        state="approved", adjusts=grant, **fields,
                    )  # fmt: skip

    def _conversion(
        self,
        campaign: int,
        participant: int,
        kind: str,
        at: datetime,
        order: str = "",
        amount: Decimal | None = None,
        currency: str = "",
        purchase: int | None = None,
    ) -> int:
        self.conversion_id += 1
        applied = amount if kind == "refund" else None
        self.conversions.append(
            "\t".join((
                str(self.conversion_id), str(campaign), str(participant), kind, order,
                _value(amount), currency, at.isoformat(), at.isoformat(), "", "applied", "",
                "t" if kind == "purchase" else "f", _value(purchase), _value(applied), "201",
                "{}",
            )) + "\n"
        )  # fmt: skip
        return self.conversion_id

    def _pick_state(self) -> str:
        return self.rng.choices(self.states, self.weights)[0]

    def _reward(
        self,
        campaign: int,
        participant: int,
        source: str,
        conversion: int,
        at: datetime,
        amount: Decimal,
        currency: str,
        *,
        state: str | None = None,
        referee: int | None = None,
        level: int | None = None,
        percent: Decimal | None = None,
        purchase: int | None = None,
        tier_threshold: int | None = None,
        order_id: str = "",
        adjusts: int | None = None,
        kind: str = "",
        description: str = "",
    ) -> int:
        rng = self.rng
        state = state or self._pick_state()
        reason, due, approved, paid, batch, reference = "", None, None, None, None, ""
        if state in ("pending", "held"):
            due = at + HOLD
            reason = "review" if state == "pending" else ""
        elif state == "rejected":
            reason = "operator"
        elif state in ("approved", "paid"):
            approved = min(at + HOLD if adjusts is None else at, self.now)
            if state == "paid":
                paid = min(approved + timedelta(days=rng.uniform(1, 10)), self.now)
                payout = self._batch(currency, paid, participant, amount)
                batch, reference = payout.pk, payout.reference
            elif adjusts is None and rng.random() < 0.2:
                # In an open batch, not paid yet.
                batch = self._batch(currency, None, participant, amount).pk
        self.reward_id += 1
        updated = paid or approved or at
        self.rewards.append(
            "\t".join((
                str(self.reward_id), str(campaign), str(participant), source, _value(level),
                _value(tier_threshold), _value(percent), str(conversion), _value(purchase),
                _value(referee), order_id, _value(adjusts), kind, description, str(amount),
                currency, state, reason, _time(due), at.isoformat(), updated.isoformat(),
                _time(approved), _time(paid), reference, _value(batch),
            )) + "\n"
        )  # fmt: skip
        return self.reward_id

    def _batch(
        self, currency: str, paid: datetime | None, participant: int, amount: Decimal
    ) -> PayoutBatch:
        """The paid batch of `currency` for the week of `paid`, or its open batch, with
        this line added to its figures. Inserted after the lines (the foreign keys are
        checked at commit): a paid batch never changes once written."""
        week = paid.strftime("%G-W%V") if paid else "open"
        batch = self.batches.get((currency, week))
        if batch is None:
            self.batch_id += 1
            batch = PayoutBatch(
                id=self.batch_id,
                currency=currency,
                status=PayoutBatch.Status.PAID if paid else PayoutBatch.Status.OPEN,
                created_by=BATCH_CREATOR,
                created_at=paid - timedelta(days=1) if paid else self.now,
                reference=f"LOAD-{currency}-{week}" if paid else "",
                paid_by=BATCH_CREATOR if paid else "",
                paid_at=paid,
                total=Decimal(0),
            )
            self.batches[(currency, week)] = batch
            self.payees[batch.pk] = set()
        batch.total += amount
        batch.line_count += 1
        payees = self.payees[batch.pk]
        payees.add(participant)
        batch.payee_count = len(payees)
        if paid and batch.paid_at and paid > batch.paid_at:
            batch.paid_at = paid
        return batch
