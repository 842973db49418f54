"""Races, on real PostgreSQL: threads released together by a barrier."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from apps.api.services import api_key_create
from apps.rewards import queue, tasks
from apps.rewards.lifecycle import rewards_release_due
from apps.rewards.models import Conversion, IdempotencyKey, Reward, RewardTransition
from tests.factories import join

from .helpers import purchase

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="races need PostgreSQL"),
]
THREADS = 50


def race(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run work(0..n-1) in n threads that start at the same moment; their results."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except Exception as exc:  # reported by the caller's assertions
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _client() -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(name='shop')[1]}")
    return client


def _effects() -> tuple[int, list[tuple[int, int | None, Decimal]]]:
    return (
        Conversion.objects.count(),
        sorted(Reward.objects.values_list("participant_id", "level", "amount")),
    )


def test_fifty_deliveries_of_one_event_at_once_have_one_effect(shop, alice, bob, carol):
    client = _client()
    body = {"type": "purchase", "campaign": "shop", "participant_id": carol.pk,
            "order_id": "o-1", "amount": "50.00", "currency": "CNY"}  # fmt: skip
    responses = race(THREADS, lambda i: client.post("/api/v1/events/", body, format="json"))
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 201, 202, 409}, codes
    assert codes.count(201) == 1
    conversions, rewards = _effects()
    assert conversions == 1
    assert rewards == sorted(
        [(carol.pk, None, Decimal("20")), (bob.pk, 1, Decimal("5")), (alice.pk, 2, Decimal("2.5"))]
    )
    first = next(r for r in responses if r.status_code == 201).json()
    assert all(r.json() == first for r in responses if r.status_code == 200)


def test_fifty_deliveries_with_one_idempotency_key_have_one_effect(shop, alice, bob, carol):
    client = _client()
    body = {"type": "refund", "campaign": "shop", "participant_id": carol.pk,
            "order_id": "o-1", "amount": "20.00", "currency": "CNY"}  # fmt: skip
    purchase(carol, "o-1", "50.00")
    responses = race(
        THREADS,
        lambda i: client.post("/api/v1/events/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1"),
    )
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 201, 202, 409}, codes
    assert 201 in codes
    assert Conversion.objects.filter(type="refund").count() == 1
    assert IdempotencyKey.objects.count() == 1
    assert Reward.objects.filter(amount__lt=0).count() == 2  # one correction per level
    replayed = [r for r in responses if r.status_code != 409]
    assert all(r.json() == replayed[0].json() for r in replayed)


def test_two_friends_crossing_the_threshold_together_grant_one_tier(shop, alice, bob):
    carol = join(shop, "carol", referrer=bob)
    dave = join(shop, "dave", referrer=bob)
    friends = [carol, dave]
    results = race(2, lambda i: purchase(friends[i], f"o-{i}", "10.00"))
    assert all(not isinstance(r, Exception) for r in results), results
    assert Reward.objects.filter(participant=bob, source="tier").count() == 1
    assert Reward.objects.filter(source="referee").count() == 2


def test_many_friends_crossing_thresholds_at_once_grant_each_tier_once(shop, alice):
    from tests.factories import RewardTierFactory

    RewardTierFactory(campaign=shop, threshold=5, amount=Decimal("80.00"))
    friends = [join(shop, f"friend{i}", referrer=alice) for i in range(8)]
    results = race(8, lambda i: purchase(friends[i], f"o-{i}", "10.00"))
    assert all(not isinstance(r, Exception) for r in results), results
    tiers = sorted(
        Reward.objects.filter(participant=alice, source="tier").values_list(
            "tier_threshold", flat=True
        )
    )
    assert tiers == [2, 5]


def test_the_release_job_run_twice_at_once_approves_each_reward_once(shop, alice):
    friends = [join(shop, f"friend{i}", referrer=alice) for i in range(6)]
    for i, friend in enumerate(friends):
        purchase(friend, f"o-{i}", "10.00")
    held = Reward.objects.filter(state="held").count()
    assert held > 6
    later = timezone.now() + timedelta(days=15)
    counts = race(4, lambda i: rewards_release_due(now=later, batch_size=3))
    assert sum(counts) == held
    assert Reward.objects.filter(state="approved").count() == held
    approvals = RewardTransition.objects.filter(to_state="approved")
    assert approvals.count() == held
    assert approvals.values("reward").distinct().count() == held


def test_a_key_still_in_flight_answers_409_at_once(shop, alice, bob):
    from apps.api.models import ApiKey

    client = _client()
    api_key = ApiKey.objects.get()
    taken, release = threading.Event(), threading.Event()

    def in_flight() -> None:
        # Another request holding the key: the lock conversion_ingest takes first.
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                    [f"fission-idem:{api_key.pk}:k-1"],
                )
                taken.set()
                release.wait(10)
        finally:
            connections.close_all()

    holder = threading.Thread(target=in_flight)
    holder.start()
    try:
        assert taken.wait(10)
        body = {"type": "purchase", "campaign": "shop", "participant_id": bob.pk,
                "order_id": "o-1", "amount": "50.00", "currency": "CNY"}  # fmt: skip
        response = client.post("/api/v1/events/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "idempotency_key_in_flight"
        assert Conversion.objects.count() == 0
    finally:
        release.set()
        holder.join()
    response = client.post("/api/v1/events/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert response.status_code == 201


def test_fifty_async_deliveries_of_one_purchase_store_and_apply_it_once(shop, alice, bob, carol):
    client = _client()
    body = {"type": "purchase", "campaign": "shop", "participant_id": carol.pk,
            "order_id": "o-1", "amount": "50.00", "currency": "CNY"}  # fmt: skip
    responses = race(
        THREADS,
        lambda i: client.post("/api/v1/events/", body, format="json", HTTP_PREFER="respond-async"),
    )
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 202}, codes
    assert codes.count(202) == 1
    conversions, rewards = _effects()
    assert conversions == 1 and Conversion.objects.get().status == "applied"
    assert rewards == sorted(
        [(carol.pk, None, Decimal("20")), (bob.pk, 1, Decimal("5")), (alice.pk, 2, Decimal("2.5"))]
    )


def test_workers_racing_over_the_queue_apply_each_purchase_once(
    shop, alice, bob, carol, dave, monkeypatch
):
    monkeypatch.setattr(tasks.apply_queued_events, "apply_async", lambda **kw: None)
    client = _client()
    with override_settings(CELERY_TASK_ALWAYS_EAGER=False):
        for n in range(20):
            buyer = (carol, dave)[n % 2]
            body = {"type": "purchase", "campaign": "shop", "participant_id": buyer.pk,
                    "order_id": f"o-{n}", "amount": "50.00", "currency": "CNY"}  # fmt: skip
            response = client.post(
                "/api/v1/events/", body, format="json", HTTP_PREFER="respond-async"
            )
            assert response.status_code == 202
    assert Conversion.objects.filter(status="queued").count() == 20

    applied = race(4, lambda i: queue.apply_queued())

    assert sum(applied) == 20, applied
    assert not Conversion.objects.filter(status="queued").exists()
    commissions = Reward.objects.filter(source="commission")
    assert commissions.count() == 40  # bob (level 1) and alice (level 2) for each
    assert commissions.values("purchase_id", "level").distinct().count() == 40
