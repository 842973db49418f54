"""The event-ingestion figure: purchases posted to POST /api/v1/events/ by wrk, against a
minimal authenticated POST view (/bench/post) given the same key and the same bodies.

The purchases are sent as a busy shop would send them, with `Prefer: respond-async`: the
server stores each one and answers 202, and a worker applies them (apps.rewards.queue).
The server's wake-ups go to a broker queue nobody reads during the round; after each
round this process applies what was queued, as one worker would (the note gives its rate),
and only then checks the rewards. Without the header each purchase is applied in its
request (about ten bare requests' work; README's analysis has the figure).

The workload is a pool of 50,000 purchases by buyers three to four levels deep in a
campaign with three commission levels (so each purchase pays three ancestors), a referee
reward and a tier; 15 % of the purchases are sent twice, the repeat a few requests after
its first delivery (an idempotent repeat: 200 and the first response). wrk walks the pool
in order, each thread taking every n-th request. Each measurement lasts a few seconds and
sends as much of the pool as it can; each round has order ids of its own, so every round
posts fresh purchases. Before the rounds, one purchase per buyer qualifies them all (the
referee rewards and tiers, a once-per-buyer cost), so that every round does the same work.

After each round the database is checked: no reward granted twice, and every purchase has
its three commissions. A round that finds either wrong, or gets an answer other than 200 or
201, counts as 0 requests/s, so the figure fails.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import TYPE_CHECKING

from django.db import connection
from django.utils import timezone

from apps.api.models import WebhookEndpoint
from apps.api.services import api_key_create
from apps.campaigns.models import Campaign, CommissionLevel, RefereeReward, RewardTier
from apps.common.codes import new_invite_code, new_token
from apps.referrals.models import Participant
from apps.rewards.models import Conversion, ConversionStatus
from apps.rewards.queue import apply_queued

from . import http
from .checks import duplicate_rewards
from .harness import Figure

if TYPE_CHECKING:
    from .suites import Context

PURCHASES = 50_000
REPEATED = 0.15
SEEDS = 100
LEVELS = (Decimal("10.00"), Decimal("5.00"), Decimal("2.00"))
SECONDS = 5
CONNECTIONS = 16
THREADS = 2
# Where the server queues its background work (webhook deliveries, messages), as in
# production; nothing consumes it during the run, and the queue is emptied afterwards.
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/12")

LUA = """
local buyers = {BUYERS}
local picks = {PICKS}
local slug, key, path, prefix = "{SLUG}", "{KEY}", "{PATH}", "{PREFIX}"
local step = {THREADS}
local threads = {}
local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key,
                 ["Prefer"] = "respond-async"}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  k = id - step
  lap = 0
end

-- Thread i sends picks i, i + step, i + 2 step, ... in order; past the end of the pool
-- it starts again with order ids of a new lap.
function request()
  k = k + step
  if k > #picks then
    k = id
    lap = lap + 1
  end
  local n = picks[k]
  local body = string.format(
    '{"type":"purchase","campaign":"%s","external_id":"%s","order_id":"%s%d-%d",'
      .. '"amount":"%d.00","currency":"CNY"}',
    slug, buyers[n % #buyers + 1], prefix, lap, n, 20 + n % 80)
  return wrk.format("POST", path, headers, body)
end
"""


def _picks(rng: random.Random) -> list[int]:
    """The order numbers in the order they are sent: each purchase once, and 15 % of
    them again 1 to 40 requests later."""
    keyed = [(float(n), n) for n in range(PURCHASES)]
    repeated = rng.sample(range(PURCHASES), int(PURCHASES * REPEATED))
    keyed += [(n + rng.uniform(1, 40), n) for n in repeated]
    return [n for _, n in sorted(keyed)]


def _make_campaign(run: str) -> tuple[Campaign, list[Participant]]:
    """A purchase campaign with three commission levels, and SEEDS binary trees four
    levels deep below their seeds; returns it and its buyers (depth 3 and 4)."""
    campaign = Campaign.objects.create(
        slug=f"bench-ingest-{run}",
        name="Benchmark: event ingestion",
        status=Campaign.Status.ACTIVE,
        qualifying_event=Campaign.QualifyingEvent.PURCHASE,
        min_purchase_amount=Decimal("10.00"),
        holding_days=14,
    )
    for level, percent in enumerate(LEVELS, start=1):
        CommissionLevel.objects.create(campaign=campaign, level=level, percent=percent)
    RefereeReward.objects.create(campaign=campaign, kind="coupon", amount=Decimal("20.00"))
    RewardTier.objects.create(campaign=campaign, threshold=2, kind="coupon", amount=Decimal(50))
    now = timezone.now()
    count = 0

    def person(parent: Participant | None) -> Participant:
        nonlocal count
        count += 1
        email = f"b{run}-{count}@bench.example"
        return Participant(
            campaign=campaign,
            email=email,
            email_normalized=email,
            name=f"Buyer {count}",
            external_id=f"b{count}",
            referrer=parent,
            depth=parent.depth + 1 if parent else 0,
            path=parent.path_for_children if parent else "",
            code=new_invite_code(10),
            token=new_token(),
            channel="api",
            consent_at=now,
            consent_version="api",
            joined_at=now,
        )

    generation = Participant.objects.bulk_create([person(None) for _ in range(SEEDS)])
    buyers: list[Participant] = []
    for depth in range(1, 5):
        generation = Participant.objects.bulk_create(
            [person(parent) for parent in generation for _ in range(2)]
        )
        if depth >= 3:
            buyers += generation
    with connection.cursor() as cursor:
        # As generate_load_data does: the planner learns the new campaign's size, or it
        # takes it for empty and finds buyers through the campaign's index, not the
        # unique index of external ids.
        cursor.execute("ANALYZE referrals_participant")
    return campaign, buyers


def _check(campaign: Campaign, prefix: str) -> str:
    """What is wrong with the rewards of the campaign, or ''."""
    duplicates = duplicate_rewards(campaign.pk)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*) FROM rewards_conversion c
            WHERE c.campaign_id = %s AND c.type = 'purchase' AND c.order_id LIKE %s
              AND (SELECT count(*) FROM rewards_reward r
                   WHERE r.purchase_id = c.id AND r.source = 'commission') <> %s
            """,
            [campaign.pk, prefix + "%", len(LEVELS)],
        )
        incomplete = int(cursor.fetchone()[0])
    queued = Conversion.objects.filter(campaign=campaign, status=ConversionStatus.QUEUED).count()
    problems = []
    if queued:
        problems.append(f"{queued} purchases still queued")
    if duplicates:
        problems.append(f"{duplicates} rewards granted twice")
    if incomplete:
        problems.append(f"{incomplete} purchases without their {len(LEVELS)} commissions")
    return ", ".join(problems)


def _empty_queue(url: str) -> None:
    import redis

    redis.Redis.from_url(url).delete("celery")


def ingest(ctx: Context) -> list[Figure]:
    run = secrets.token_hex(3)
    rng = random.Random(8)
    campaign, buyers = _make_campaign(run)
    _, key = api_key_create(name=f"bench ingest {run}")
    # Every grant is a webhook delivery, queued by the request that made it.
    WebhookEndpoint.objects.create(
        url="https://hooks.bench.example/fission", campaign=campaign, secret="whsec_bench"
    )
    names = [b.external_id or "" for b in buyers]
    rng.shuffle(names)  # neighbours in the pool do not share ancestors
    picks = _picks(rng)

    server = ctx.stack.enter_context(http.Server(env={"CELERY_BROKER_URL": BROKER_URL}))
    ctx.stack.callback(_empty_queue, BROKER_URL)
    # This process is the worker that applies the queued purchases: what they queue in turn
    # (webhook deliveries) goes to the same broker queue, as a real worker's would.
    from config.celery import app

    previous = {k: app.conf[k] for k in ("broker_url", "task_always_eager")}
    app.conf.update(broker_url=BROKER_URL, task_always_eager=False)
    ctx.stack.callback(app.conf.update, previous)

    # Each buyer's first purchase qualifies them: done once, before the rounds.
    import httpx

    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request

    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as client:

        def first(name: str) -> int:
            body = {
                "type": "purchase", "campaign": campaign.slug, "external_id": name,
                "order_id": f"first-{name}", "amount": "50.00", "currency": "CNY",
            }  # fmt: skip
            return client.post("/api/v1/events/", json=body).status_code

        with ThreadPoolExecutor(CONNECTIONS) as pool:
            statuses = set(pool.map(first, names))
    assert statuses == {201}, f"warm-up purchases answered {statuses}"

    rounds = iter(range(1, 1000))
    figure = Figure(
        name="events: purchase ingestion",
        workload=f"{PURCHASES:,} purchases, {REPEATED:.0%} repeated, "
        f"{len(LEVELS)} commission levels",
        baseline_name="minimal authenticated POST",
        subject=lambda: 0.0,
        baseline=lambda: 0.0,
        target=0.35,
        unit="requests/s",
    )

    def script(path: str, prefix: str) -> str:
        return (
            LUA.replace("{BUYERS}", http.lua_list(names))
            .replace("{PICKS}", "{" + ",".join(map(str, picks)) + "}")
            .replace("{SLUG}", campaign.slug)
            .replace("{KEY}", key)
            .replace("{PATH}", path)
            .replace("{PREFIX}", prefix)
            .replace("{THREADS}", str(THREADS))
        )

    def load(path: str, prefix: str) -> http.Load:
        return http.wrk(
            server.url,
            script(path, prefix),
            seconds=SECONDS,
            connections=CONNECTIONS,
            threads=THREADS,
        )

    def subject() -> float:
        prefix = f"r{next(rounds)}-"
        found = load("/api/v1/events/", prefix)
        started = time.perf_counter()
        applied = apply_queued(limit=10**9)
        worker_rate = applied / (time.perf_counter() - started)
        problem = _check(campaign, prefix)
        if found.errors:
            problem = ", ".join(filter(None, [problem, f"{found.errors} errors"]))
        figure.notes.append(
            f"{prefix.rstrip('-')}: {found.requests:,} events, p50 {found.p50_ms:.1f} ms, "
            f"p99 {found.p99_ms:.1f} ms, applied after by one worker at {worker_rate:,.0f}/s, "
            f"{problem or 'no reward twice, every commission'}"
        )
        return 0.0 if problem else found.rate

    def baseline() -> float:
        found = load("/bench/post", "b-")
        if found.errors:
            raise RuntimeError(f"the baseline answered {found.errors} errors")
        return found.rate

    figure.subject, figure.baseline = subject, baseline
    return [figure]
