# ruff: noqa: S608 (the queries are constants of this file, run on benchmark data)
"""Every index of the models with the query it serves and the plan line that shows it used,
from EXPLAIN ANALYZE on the benchmark data; writes the table of docs/indexes.md.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/fission_bench \\
        python -m tests.bench.indexes

Each query runs inside one transaction that is rolled back (some are the DELETEs a cascade
or the retention job runs). Where the benchmark data leaves a table empty, the planner
rightly prefers a sequential scan, so the query is explained again with sequential scans
off: that shows the index serves it, not that it is needed at this size (the table says
which). An index of the models that no query here names makes the run fail.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ["DATABASE_URL"] = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/fission_bench"
)
os.environ.setdefault("SECRET_KEY", "benchmark-only-key")
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

DOC = ROOT / "docs" / "indexes.md"
APPS = (
    "analytics", "api", "campaigns", "exports", "notifications", "referrals", "rewards", "trust",
)  # fmt: skip

# Sample values from the benchmark data, as SQL.
CAMPAIGN = "(SELECT id FROM campaigns_campaign WHERE slug = 'load-000')"
PARTICIPANT = "(SELECT id FROM referrals_participant WHERE campaign_id = 1 AND depth = 1 LIMIT 1)"
REFERRER = (
    "(SELECT referrer_id FROM referrals_participant WHERE campaign_id = 1 AND depth = 2 LIMIT 1)"
)
PURCHASE = "(SELECT id FROM rewards_conversion WHERE type = 'purchase' ORDER BY id LIMIT 1)"
REWARD = "(SELECT id FROM rewards_reward WHERE source = 'commission' ORDER BY id LIMIT 1)"
BATCH = "(SELECT id FROM rewards_payoutbatch ORDER BY id LIMIT 1)"

# (index, what it serves, the query). Unique indexes are there for their constraint first;
# the query is the lookup the code makes through them.
QUERIES: list[tuple[str, str, str]] = [
    # analytics
    ("snapshot_unique_day", "unique (campaign, day); the dashboard's newest snapshot and "
     "its last 90 days", f"SELECT id FROM analytics_dailysnapshot WHERE campaign_id = {CAMPAIGN} "
     "AND report IS NOT NULL ORDER BY date DESC LIMIT 1"),
    ("kalert_one_open_per_campaign", "one open K alert per campaign; the open alert of a "
     "campaign", "SELECT id FROM analytics_kalert WHERE campaign_id = 1 AND resolved_at IS NULL"),
    ("kalert_unique_episode", "unique episode per day; a campaign's alerts",
     "SELECT id FROM analytics_kalert WHERE campaign_id = 1 ORDER BY started_on DESC LIMIT 5"),
    ("join_tally_unique", "unique (campaign, day, depth): the roll-up's upsert; a report's "
     "joins by depth and day", "SELECT depth, day, joined, referred FROM analytics_jointally "
     "WHERE campaign_id = 1"),
    ("cohort_tally_unique", "unique (campaign, day, gap in days): the roll-up's upsert; a "
     "report's referees within the window by referrer day", "SELECT day, sum(referees) FROM "
     "analytics_cohorttally WHERE campaign_id = 1 AND gap_days <= 7 GROUP BY day"),
    ("referral_gap_order", "a campaign's referral gaps in order: the median by OFFSET",
     "SELECT gap FROM analytics_referralgap WHERE campaign_id = 1 ORDER BY gap "
     "OFFSET 80000 LIMIT 2"),
    ("click_buffer_id_unique", "each buffered click written once: the flush's INSERT … ON "
     "CONFLICT (buffer_id) DO NOTHING", "SELECT id FROM referrals_click WHERE buffer_id = "
     "'00000000-0000-0000-0000-000000000000'"),
    ("visitor_seen_unique", "unique (campaign, visitor): the roll-up's insert; the visitors "
     "new since the roll-up", "SELECT count(DISTINCT c.visitor_id) FROM referrals_click c "
     "WHERE c.id > 4999000 AND c.campaign_id = 1 "
     "AND NOT c.is_bot AND c.visitor_id <> '' AND NOT EXISTS (SELECT 1 FROM "
     "analytics_visitorseen s WHERE s.campaign_id = 1 AND s.visitor_id = c.visitor_id)"),
    # api
    ("api_apikey_key_hash_key", "unique key hash; authenticating an API call",
     "SELECT id FROM api_apikey WHERE key_hash = 'x'"),
    ("api_apikey_key_hash_7076908a_like", "LIKE on the key hash (Django's for unique text)",
     "SELECT id FROM api_apikey WHERE key_hash LIKE 'x%'"),
    ("webhook_attempt_unique_number", "unique attempt number; a delivery's attempts",
     "SELECT id FROM api_webhookattempt WHERE delivery_id = 1 ORDER BY number"),
    ("api_webhookdelivery_campaign_id_743ec68c", "deleting a campaign (cascade)",
     "DELETE FROM api_webhookdelivery WHERE campaign_id = 1"),
    ("webhook_delivery_unique_event", "unique event per endpoint; an endpoint's deliveries",
     "SELECT id FROM api_webhookdelivery WHERE endpoint_id = 1 AND event_id = 'e'"),
    ("webhook_delivery_due", "the sender: pending deliveries due",
     "SELECT id FROM api_webhookdelivery WHERE status = 'pending' AND next_attempt_at <= now() "
     "ORDER BY next_attempt_at LIMIT 100"),
    ("api_webhookendpoint_campaign_id_cef8d9e8", "a campaign's endpoints",
     "SELECT id FROM api_webhookendpoint WHERE campaign_id = 1"),
    # campaigns
    ("campaigns_campaign_slug_key", "unique slug; every public URL and API call",
     "SELECT id FROM campaigns_campaign WHERE slug = 'load-000'"),
    ("campaigns_campaign_slug_08eb9673_like", "slug prefix (the benchmark's load-*)",
     "SELECT id FROM campaigns_campaign WHERE slug LIKE 'load-%'"),
    ("commission_unique_level", "unique level; a campaign's commission levels",
     "SELECT id FROM campaigns_commissionlevel WHERE campaign_id = 1 ORDER BY level"),
    ("landing_copy_unique_language", "unique language; the landing page's copy",
     "SELECT id FROM campaigns_landingcopy WHERE campaign_id = 1 AND language = 'zh-hans'"),
    ("campaigns_refereereward_campaign_id_key", "one referee reward per campaign",
     "SELECT id FROM campaigns_refereereward WHERE campaign_id = 1"),
    ("tier_unique_threshold", "unique threshold; a campaign's tiers in order",
     "SELECT id FROM campaigns_rewardtier WHERE campaign_id = 1 ORDER BY threshold"),
    # exports
    ("exports_exportjob_requested_by_id_e2c40e27", "a user's export jobs; deleting a user",
     "SELECT id FROM exports_exportjob WHERE requested_by_id = 1"),
    # notifications
    ("campaign_message_unique", "unique kind per campaign; the message settings",
     "SELECT id FROM notifications_campaignmessage WHERE campaign_id = 1 AND kind = 'welcome'"),
    ("message_due", "the sender: queued messages due",
     "SELECT id FROM notifications_message WHERE status = 'queued' AND next_attempt_at <= now() "
     "ORDER BY next_attempt_at LIMIT 100"),
    ("notifications_message_friend_id_e9602cac", "erasing a participant (messages about them)",
     "SELECT id FROM notifications_message WHERE friend_id = 1"),
    ("notifications_message_reward_id_a76a7110", "a reward's messages",
     "SELECT id FROM notifications_message WHERE reward_id = 1"),
    ("message_campaign_created", "a campaign's message log, newest first",
     "SELECT id FROM notifications_message WHERE campaign_id = 1 ORDER BY created_at DESC "
     "LIMIT 50"),
    ("message_unique_cause", "once per (participant, kind, cause); a participant's messages",
     "SELECT id FROM notifications_message WHERE participant_id = 1"),
    ("message_text_unique_language", "unique language; a message setting's texts",
     "SELECT id FROM notifications_messagetext WHERE message_id = 1"),
    # referrals
    ("referrals_click_participant_id_a12e8f11", "a participant's clicks (fraud rules, erasure)",
     f"SELECT count(*) FROM referrals_click WHERE participant_id = {PARTICIPANT} "
     "AND NOT is_bot"),
    ("click_campaign_created", "retention: deleting a campaign's clicks before a day",
     "DELETE FROM referrals_click WHERE campaign_id = 2 AND created_at < now() - interval "
     "'85 days'"),
    ("click_campaign_visitor", "the K-factor report's distinct visitors (index only)",
     "SELECT count(*) FROM (SELECT DISTINCT visitor_id FROM referrals_click WHERE campaign_id "
     "= 1 AND NOT is_bot AND NOT visitor_id = '') v"),
    ("flag_unique_code", "one flag per rule; a participant's flags",
     f"SELECT id FROM referrals_fraudflag WHERE participant_id = {PARTICIPANT}"),
    ("referrals_participant_token_key", "unique token; the personal page",
     "SELECT id FROM referrals_participant WHERE token = 'x'"),
    ("referrals_participant_code_key", "unique code; the invite redirect /r/<code>",
     "SELECT id FROM referrals_participant WHERE code = 'x'"),
    ("referrals_participant_code_a8916aae_like", "LIKE on the code (Django's for unique text)",
     "SELECT id FROM referrals_participant WHERE code LIKE 'x%'"),
    ("referrals_participant_token_20c60747_like", "LIKE on the token (Django's for unique "
     "text)", "SELECT id FROM referrals_participant WHERE token LIKE 'x%'"),
    ("participant_unique_email", "one person per campaign; the join's duplicate check",
     "SELECT id FROM referrals_participant WHERE campaign_id = 1 AND email_normalized = "
     "'p1@load.example'"),
    ("participant_unique_external_id", "one host user per campaign; events by external id",
     "SELECT id FROM referrals_participant WHERE campaign_id = 1 AND external_id = 'u-1'"),
    ("participant_path_gin", "subtree size and descendants of a node",
     f"SELECT count(*) FROM referrals_participant WHERE string_to_array(path, '/') @> "
     f"ARRAY[{REFERRER}::text]"),
    ("participant_join_network", "join-burst rule: a network's recent joins",
     "SELECT count(*) FROM referrals_participant WHERE campaign_id = 1 AND join_network_hash "
     "= 'h' AND joined_at > now() - interval '10 minutes' AND NOT join_network_hash = ''"),
    ("participant_referrer_joined", "a referrer's referees (velocity rule, personal page)",
     f"SELECT id FROM referrals_participant WHERE referrer_id = {REFERRER} ORDER BY joined_at"),
    ("participant_campaign_joined", "the K-factor report: counts, cohorts, cycle time (index "
     "only, both sides of the join)", "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY "
     "p.joined_at - r.joined_at) FROM referrals_participant p JOIN referrals_participant r ON "
     "r.id = p.referrer_id WHERE p.campaign_id = 1 AND r.campaign_id = 1"),
    ("participant_qualified_referee", "the K-factor report's qualified and quality K, counted "
     "live (qualification changes after joining)", "SELECT count(*), count(status) FILTER "
     "(WHERE status = 'active') FROM referrals_participant WHERE campaign_id = 1 AND "
     "referrer_id IS NOT NULL AND qualified_at IS NOT NULL"),
    # rewards
    ("rewards_conversion_campaign_id_5a3b8e5c", "a campaign's events (admin, API list)",
     "SELECT id FROM rewards_conversion WHERE campaign_id = 2 ORDER BY received_at DESC "
     "LIMIT 50"),
    ("conversion_refund_order", "a purchase's refunds; refunds waiting for their purchase",
     "SELECT id FROM rewards_conversion WHERE campaign_id = 1 AND type = 'refund' AND order_id "
     "= 'L1'"),
    ("conversion_participant_type", "a participant's purchases (requalifying after a refund)",
     f"SELECT id FROM rewards_conversion WHERE participant_id = {PARTICIPANT} AND type = "
     "'purchase'"),
    ("conversion_unique_purchase", "one purchase per order; find_purchase; the take-in's "
     "ON CONFLICT and its read of a repeat",
     "SELECT id FROM rewards_conversion WHERE campaign_id = 1 AND type = 'purchase' AND "
     "order_id = 'L1'"),
    ("conversion_unique_verification", "one verification per participant",
     "SELECT id FROM rewards_conversion WHERE campaign_id = 1 AND participant_id = 1 AND type "
     "= 'signup_verified'"),
    ("conversion_unique_verification_order", "one verification per order id",
     "SELECT id FROM rewards_conversion WHERE campaign_id = 1 AND order_id = 'o' AND type = "
     "'signup_verified' AND NOT order_id = ''"),
    ("conversion_unique_signup", "one sign-up per participant",
     f"SELECT id FROM rewards_conversion WHERE participant_id = {PARTICIPANT} AND type = "
     "'signup'"),
    ("conversion_unique_refund", "one refund per order without an Idempotency-Key",
     "SELECT id FROM rewards_conversion WHERE campaign_id = 1 AND order_id = 'L1' AND type = "
     "'refund' AND idempotency_key = ''"),
    ("conversion_unique_refund_key", "one refund per order and Idempotency-Key",
     "SELECT id FROM rewards_conversion WHERE campaign_id = 1 AND order_id = 'L1' AND "
     "idempotency_key = 'k' AND type = 'refund' AND NOT idempotency_key = ''"),
    ("conversion_queued", "the worker's queue: the oldest purchase taken in with Prefer: "
     "respond-async (apps/rewards/queue.py)", "SELECT id FROM rewards_conversion WHERE "
     "status = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"),
    ("rewards_conversion_api_key_id_9da32c55", "deleting an API key (SET NULL)",
     "SELECT id FROM rewards_conversion WHERE api_key_id = 1"),
    ("rewards_conversion_purchase_id_06e4697a", "a purchase's refunds (applied amounts)",
     f"SELECT sum(applied_amount) FROM rewards_conversion WHERE purchase_id = {PURCHASE}"),
    ("rewards_financelog_batch_id_dd955899", "a payout batch's log",
     f"SELECT id FROM rewards_financelog WHERE batch_id = {BATCH}"),
    ("idempotency_unique_key", "one Idempotency-Key per API key; replaying a request",
     "SELECT id FROM rewards_idempotencykey WHERE api_key_id = 1 AND key = 'k'"),
    ("rewards_idempotencykey_conversion_id_d52c9fff", "deleting an event (cascade)",
     "SELECT id FROM rewards_idempotencykey WHERE conversion_id = 1"),
    ("rewards_payoutbatch_campaign_id_dff4ef6e", "a campaign's payout batches",
     "SELECT id FROM rewards_payoutbatch WHERE campaign_id = 1"),
    ("reward_campaign_state", "GET /rewards/?campaign=&state=; the campaign's totals",
     "SELECT currency, sum(amount) FROM rewards_reward WHERE campaign_id = 2 AND state = "
     "'approved' GROUP BY currency"),
    ("reward_held_due", "the release job: held rewards now due",
     "SELECT id FROM rewards_reward WHERE state = 'held' AND due_at <= now() ORDER BY due_at "
     "LIMIT 500"),
    ("reward_unique_commission", "one commission per purchase and level; a purchase's grants",
     f"SELECT id FROM rewards_reward WHERE purchase_id = {PURCHASE} AND source = 'commission' "
     "AND adjusts_id IS NULL"),
    ("reward_unique_referee", "one referee reward per participant",
     f"SELECT id FROM rewards_reward WHERE participant_id = {PARTICIPANT} AND source = "
     "'referee' AND adjusts_id IS NULL"),
    ("reward_unique_tier", "one grant per tier; a referrer's tiers granted",
     f"SELECT tier_threshold FROM rewards_reward WHERE participant_id = {REFERRER} AND source "
     "= 'tier' AND adjusts_id IS NULL"),
    ("reward_pending", "the review queue's count",
     "SELECT count(*) FROM rewards_reward WHERE state = 'pending'"),
    ("reward_campaign_updated", "GET /rewards/?campaign=&updated_since=",
     "SELECT id FROM rewards_reward WHERE campaign_id = 2 AND updated_at >= now() - interval "
     "'1 day' ORDER BY updated_at"),
    ("rewards_reward_payout_batch_id_61718fd7", "a payout batch's lines (export, mark paid)",
     f"SELECT id FROM rewards_reward WHERE payout_batch_id = {BATCH}"),
    ("reward_payable", "making a payout batch: approved, unbatched, one currency",
     "SELECT id FROM rewards_reward WHERE state = 'approved' AND payout_batch_id IS NULL AND "
     "currency = 'USD'"),
    ("rewards_reward_referee_id_e4dc5a9b", "what a referee earned others (erasure, review)",
     f"SELECT id FROM rewards_reward WHERE referee_id = {PARTICIPANT}"),
    ("rewards_reward_purchase_id_726a5243", "a purchase's commissions and their corrections",
     f"SELECT id FROM rewards_reward WHERE purchase_id = {PURCHASE}"),
    ("rewards_reward_participant_id_8b6b24c3", "a participant's rewards (API, personal page)",
     f"SELECT id FROM rewards_reward WHERE participant_id = {REFERRER}"),
    ("rewards_reward_conversion_id_60cfa61b", "an event's rewards (the event's response)",
     f"SELECT id FROM rewards_reward WHERE conversion_id = {PURCHASE}"),
    ("reward_unique_adjustment", "one correction per grant and event",
     f"SELECT id FROM rewards_reward WHERE adjusts_id = {REWARD} AND conversion_id = 1 "
     "AND adjusts_id IS NOT NULL"),
    ("rewards_rewardtransition_reward_id_005d5409", "a reward's history",
     "SELECT id FROM rewards_rewardtransition WHERE reward_id = 1"),
    ("rewards_rewardtransition_campaign_id_a1ba140e", "a campaign's transitions",
     "SELECT id FROM rewards_rewardtransition WHERE campaign_id = 1"),
    ("rewards_rewardtransition_conversion_id_bf8642ad", "an event's transitions",
     "SELECT id FROM rewards_rewardtransition WHERE conversion_id = 1"),
    # trust
    ("allowlist_unique_per_campaign", "unique entry per campaign; the rules' allowlist",
     "SELECT id FROM trust_allowlistentry WHERE campaign_id = 1 AND kind = 'email'"),
    ("allowlist_unique_global", "unique global entry",
     "SELECT id FROM trust_allowlistentry WHERE campaign_id IS NULL AND kind = 'email' AND "
     "value = 'x'"),
    ("consent_unique", "one text per version and language; the join form",
     "SELECT id FROM trust_consenttext WHERE version = 'v1' AND language = 'en'"),
    ("export_participant_time", "a participant's data exports, newest first (rate limit)",
     "SELECT id FROM trust_dataexportrequest WHERE participant_id = 1 ORDER BY requested_at "
     "DESC LIMIT 1"),
    ("trust_erasurelog_participant_id_key", "one erasure per participant",
     "SELECT id FROM trust_erasurelog WHERE participant_id = 1"),
    ("trust_erasurelog_campaign_id_5f588215", "a campaign's erasures",
     "SELECT id FROM trust_erasurelog WHERE campaign_id = 1"),
    ("fraudrule_unique", "one setting per rule; a campaign's rule settings",
     "SELECT id FROM trust_fraudrulesetting WHERE campaign_id = 1"),
]  # fmt: skip


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan] if "Index Name" in plan else []
    for child in plan.get("Plans", []):
        found += _nodes(child)
    return found


def _explain(cursor: Any, sql: str, index: str) -> tuple[dict[str, Any] | None, list[str]]:
    """The plan node that reads `index`, if any, and the indexes the plan read."""
    cursor.execute("SAVEPOINT explain")
    try:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
        (plan,) = cursor.fetchone()
        if isinstance(plan, str):
            plan = json.loads(plan)
        nodes = _nodes(plan[0]["Plan"])
        node = next((n for n in nodes if n["Index Name"] == index), None)
        return node, [n["Index Name"] for n in nodes]
    finally:
        cursor.execute("ROLLBACK TO SAVEPOINT explain")


def main() -> int:
    import django

    django.setup()
    from django.db import connection, transaction

    rows: list[str] = []
    missing: list[str] = []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, i.relname, t.reltuples::bigint FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid "
            "JOIN pg_class t ON t.oid = x.indrelid WHERE NOT x.indisprimary AND c.relname ~ %s",
            [f"^({'|'.join(APPS)})_"],
        )
        indexes = {name: (table, size) for table, name, size in cursor.fetchall()}
        listed = {name for name, _, _ in QUERIES}
        missing = sorted(set(indexes) - listed)
        for name, serves, sql in QUERIES:
            if name not in indexes:
                print(f"not in the database (dropped?): {name}", file=sys.stderr)
                continue
            table, size = indexes[name]
            node, used = _explain(cursor, sql, name)
            how = ""
            if node is None and not used:
                cursor.execute("SET LOCAL enable_seqscan = off")
                node, used = _explain(cursor, sql, name)
                cursor.execute("SET LOCAL enable_seqscan = on")
                how = " (seq scan off)"
            if node is None:
                others = ", ".join(f"`{u}`" for u in dict.fromkeys(used) if u != name)
                line = f"not chosen: the plan reads {others}" if others else "**not used**"
            else:
                line = (
                    f"{node['Node Type']}{how}: rows={node['Actual Rows']} "
                    f"loops={node['Actual Loops']} {node['Actual Total Time']:.3f} ms"
                )
            rows.append(f"| `{table}` | `{name}` | {serves} | {max(size, 0):,} | {line} |")
        transaction.set_rollback(True)
    table = "\n".join(
        [
            "| table | index | serves | table rows | plan node (EXPLAIN ANALYZE) |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )
    start, end = "<!-- indexes:start -->", "<!-- indexes:end -->"
    body = DOC.read_text()
    head, rest = body.split(start, 1)
    _, tail = rest.split(end, 1)
    DOC.write_text(f"{head}{start}\n{table}\n{end}{tail}")
    print(table)
    if missing:
        print(f"indexes with no query listed here: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
