"""PostgreSQL restarts while people join and the host application posts events.

A private cluster serves a real web server (gunicorn); client threads join through the
landing page, register participants and post purchases through the API. The cluster is
stopped (a fast shutdown, which ends every session) and started again a couple of seconds
later. While it is down every request gets 503 with Retry-After: the friendly page, or
the API's error JSON, never a stack trace. Afterwards every acknowledged request is
stored, requests sent again (events with their Idempotency-Key) have one effect, and the
rewards and the tree are consistent.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg

from .conftest import (
    needs_gunicorn,
    needs_postgres,
    needs_postgres_server,
    record,
)
from .procs import Visitor, django_env, run_django, wait_for

pytestmark = [needs_postgres, needs_postgres_server, needs_gunicorn]

THREADS = 6
BEFORE, DOWN, AFTER = 2.5, 2.0, 3.0  # seconds of load before, during and after the outage

SEED = """
from decimal import Decimal
from apps.api.services import api_key_create
from tests.factories import (
    CampaignFactory, CommissionLevelFactory, RefereeRewardFactory, RewardTierFactory, join,
)
shop = CampaignFactory(
    slug="shop", qualifying_event="purchase", min_purchase_amount=Decimal("10.00")
)
CommissionLevelFactory(campaign=shop, level=1, percent=Decimal("10.00"))
CommissionLevelFactory(campaign=shop, level=2, percent=Decimal("5.00"))
RefereeRewardFactory(campaign=shop, amount=Decimal("20.00"))
RewardTierFactory(campaign=shop, threshold=3)
alice = join(shop, "alice", external_id="u-alice")
print(api_key_create(name="load")[1], alice.code)
"""


@dataclass
class Outcome:
    kind: str  # join, register, event
    status: int  # 0: no answer at all
    retry_after: str | None = None
    body: str = ""


@dataclass
class Load:
    """What the clients sent and what they were told."""

    codes: list[str]
    outcomes: list[Outcome] = field(default_factory=list)
    joined: dict[str, str] = field(default_factory=dict)  # email: personal page path
    registered: dict[str, dict[str, Any]] = field(default_factory=dict)  # external id: body
    events: dict[str, int] = field(default_factory=dict)  # order id: conversion id
    unanswered_events: list[dict[str, Any]] = field(default_factory=list)
    unanswered_joins: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, kind: str, response: httpx.Response | None) -> None:
        outcome = Outcome(kind, 0)
        if response is not None:
            outcome = Outcome(
                kind, response.status_code, response.headers.get("Retry-After"), response.text
            )
        with self.lock:
            self.outcomes.append(outcome)
        if outcome.status == 503:
            # A real client would wait the Retry-After; this one only stops hammering.
            time.sleep(0.2)


def _client_loop(base: str, key: str, load: Load, stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    visitor = Visitor(base)
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=10)
    n = 0
    while not stop.is_set():
        n += 1
        choice = rng.random()
        with load.lock:
            code = rng.choice(load.codes)
            buyers = list(load.registered)
        try:
            if choice < 0.3:
                email = f"web-{seed}-{n}@example.com"
                response = visitor.join("shop", email, name=f"Web {n}", ref=code)
                load.note("join", response)
                with load.lock:
                    if response.status_code == 303:
                        load.joined[email] = response.headers["Location"]
                    else:
                        load.unanswered_joins.append(email)
            elif choice < 0.6 or not buyers:
                external_id = f"x-{seed}-{n}"
                body = {
                    "email": f"{external_id}@example.com", "external_id": external_id,
                    "referral_code": code, "consent": True,
                }  # fmt: skip
                response = api.post("/api/v1/campaigns/shop/participants/", json=body)
                load.note("register", response)
                if response.status_code == 201:
                    with load.lock:
                        load.registered[external_id] = response.json()
                        load.codes.append(response.json()["code"])
            else:
                event = {
                    "type": "purchase", "campaign": "shop", "external_id": rng.choice(buyers),
                    "order_id": f"o-{seed}-{n}", "amount": "50.00", "currency": "CNY",
                }  # fmt: skip
                response = api.post(
                    "/api/v1/events/", json=event, headers={"Idempotency-Key": event["order_id"]}
                )
                load.note("event", response)
                with load.lock:
                    if response.status_code == 201:
                        load.events[event["order_id"]] = response.json()["id"]
                    else:
                        load.unanswered_events.append(event)
        except httpx.TransportError as exc:
            with load.lock:
                load.outcomes.append(Outcome("transport", 0, body=repr(exc)))


def test_a_postgres_restart_under_load_answers_503_and_loses_nothing(
    processes, private_postgres, test_database_url
):
    private_postgres.create_database_like("fission", test_database_url)
    database_url = private_postgres.url("fission")
    env = django_env(DATABASE_URL=database_url, RATELIMIT_ENABLE="false")
    key, alice_code = run_django(env, SEED).split()
    server = processes.web(env)

    load = Load(codes=[alice_code])
    stop = threading.Event()
    clients = [
        threading.Thread(target=_client_loop, args=(server.url, key, load, stop, seed))
        for seed in range(THREADS)
    ]
    for client in clients:
        client.start()
    time.sleep(BEFORE)
    private_postgres.stop("fast")
    down_at = time.monotonic()
    time.sleep(DOWN)
    health_while_down = httpx.get(f"{server.url}/healthz", timeout=10)
    private_postgres.start()
    up_at = time.monotonic()
    first_success = wait_for(
        lambda: httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200,
        timeout=20,
        what="the site to answer again",
    )
    time.sleep(AFTER)
    stop.set()
    for client in clients:
        client.join(timeout=30)

    # What the clients were told.
    statuses = Counter((o.kind, o.status) for o in load.outcomes)
    unavailable = [o for o in load.outcomes if o.status == 503]
    assert health_while_down.status_code == 503
    assert unavailable, f"the outage was not seen: {statuses}"
    assert {o.status for o in load.outcomes} <= {200, 201, 303, 503}, [
        (o.kind, o.status, o.body[:300]) for o in load.outcomes if o.status in (0, 500)
    ]
    for outcome in unavailable:
        assert outcome.retry_after == "5", outcome
        assert "Traceback" not in outcome.body and "psycopg" not in outcome.body
        if outcome.kind in ("register", "event"):
            assert '"code": "unavailable"' in outcome.body, outcome.body
        else:
            assert "Back in a moment" in outcome.body, outcome.body[:300]

    # Clients send again what was not acknowledged: an event with the same key and body.
    api = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"})
    replays = Counter()
    for event in load.unanswered_events:
        response = api.post(
            "/api/v1/events/", json=event, headers={"Idempotency-Key": event["order_id"]}
        )
        replays[response.status_code] += 1
        assert response.status_code in (200, 201), response.text
        load.events[event["order_id"]] = response.json()["id"]
    visitor = Visitor(server.url)
    for email in load.unanswered_joins:
        response = visitor.join("shop", email, ref=alice_code)
        assert response.status_code == 303
        load.joined[email] = response.headers["Location"]

    with psycopg.connect(database_url) as db:
        lost = _lost(db, load)
        duplicates = _duplicate_rewards(db)
        inconsistent = _inconsistent_tree(db)
        commission_gaps = _missing_commissions(db)
    record(
        "postgres_restart",
        {
            "requests": len(load.outcomes),
            "acknowledged": sum(1 for o in load.outcomes if o.status in (200, 201, 303)),
            "answered_503_retry_after": len(unavailable),
            "other_errors": sum(1 for o in load.outcomes if o.status not in (200, 201, 303, 503)),
            "events_sent_again": sum(replays.values()),
            "lost": lost,
            "duplicated_rewards": duplicates,
            "outage_seconds": round(up_at - down_at, 2),
            "seconds_to_first_success_after_start": round(first_success, 2),
        },
    )
    assert lost == 0
    assert duplicates == 0
    assert inconsistent == 0
    assert commission_gaps == 0


def _lost(db: psycopg.Connection[Any], load: Load) -> int:
    """Acknowledged writes that are not in the database."""
    tokens = {path.strip("/").split("/")[1] for path in load.joined.values()}
    found = db.execute(
        "SELECT count(*) FROM referrals_participant WHERE token = ANY(%s)", [list(tokens)]
    ).fetchone()
    registered = db.execute(
        "SELECT count(*) FROM referrals_participant WHERE id = ANY(%s) AND external_id = ANY(%s)",
        [[b["id"] for b in load.registered.values()], list(load.registered)],
    ).fetchone()
    events = db.execute(
        "SELECT count(DISTINCT order_id) FROM rewards_conversion "
        "WHERE type = 'purchase' AND id = ANY(%s) AND order_id = ANY(%s)",
        [list(load.events.values()), list(load.events)],
    ).fetchone()
    assert found and registered and events
    return (
        len(tokens) - found[0] + len(load.registered) - registered[0] + len(load.events) - events[0]
    )


def _duplicate_rewards(db: psycopg.Connection[Any]) -> int:
    """Rewards granted twice: the same tier, referee reward or commission level again."""
    row = db.execute(
        """
        SELECT
          (SELECT count(*) - count(DISTINCT (participant_id, tier_threshold))
             FROM rewards_reward WHERE source = 'tier' AND adjusts_id IS NULL)
        + (SELECT count(*) - count(DISTINCT participant_id)
             FROM rewards_reward WHERE source = 'referee' AND adjusts_id IS NULL)
        + (SELECT count(*) - count(DISTINCT (purchase_id, level))
             FROM rewards_reward WHERE source = 'commission' AND adjusts_id IS NULL)
        + (SELECT count(*) - count(DISTINCT (campaign_id, order_id))
             FROM rewards_conversion WHERE type = 'purchase')
        """
    ).fetchone()
    assert row is not None
    return int(row[0])


def _inconsistent_tree(db: psycopg.Connection[Any]) -> int:
    """Participants whose depth or path does not follow from their referrer's."""
    row = db.execute(
        """
        SELECT count(*) FROM referrals_participant child
        LEFT JOIN referrals_participant parent ON parent.id = child.referrer_id
        WHERE (parent.id IS NULL AND (child.depth <> 0 OR child.path <> ''))
           OR (parent.id IS NOT NULL AND (
                child.depth <> parent.depth + 1
                OR child.path <> CASE WHEN parent.path = '' THEN parent.id::text
                                      ELSE parent.path || '/' || parent.id END))
        """
    ).fetchone()
    assert row is not None
    return int(row[0])


def _missing_commissions(db: psycopg.Connection[Any]) -> int:
    """Purchases whose commissions are not one per ancestor, up to the campaign's 2 levels."""
    row = db.execute(
        """
        SELECT count(*) FROM rewards_conversion c
        JOIN referrals_participant buyer ON buyer.id = c.participant_id
        WHERE c.type = 'purchase' AND c.status = 'applied'
          AND (SELECT count(*) FROM rewards_reward r
               WHERE r.purchase_id = c.id AND r.source = 'commission' AND r.adjusts_id IS NULL)
              <> LEAST(buyer.depth, 2)
        """
    ).fetchone()
    assert row is not None
    return int(row[0])
