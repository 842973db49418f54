"""POST /api/v1/events/ with `Prefer: respond-async`: a purchase is stored and answered
202 at once, and a worker applies it, exactly as it would have been applied in the request
(apps.rewards.queue)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.test import override_settings

from apps.campaigns.models import Campaign
from apps.referrals.models import Participant
from apps.rewards import engine, queue, tasks
from apps.rewards.models import Conversion, ConversionStatus, IdempotencyKey, Reward

pytestmark = pytest.mark.django_db
URL = "/api/v1/events/"
ASYNC = {"HTTP_PREFER": "respond-async"}


def purchase(who: Participant, order_id: str = "o-1", **changes: Any) -> dict[str, Any]:
    data = {
        "type": "purchase", "campaign": "shop", "participant_id": who.pk,
        "order_id": order_id, "amount": "50.00", "currency": "CNY",
    }  # fmt: skip
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


@pytest.fixture
def wakes(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """A real broker's behaviour: the request publishes a pass (recorded here) and returns;
    the test runs the worker's pass itself."""
    published: list[dict[str, Any]] = []
    monkeypatch.setattr(tasks.apply_queued_events, "apply_async", lambda **kw: published.append(kw))
    monkeypatch.setattr(queue, "_pass_due", 0.0)
    with override_settings(CELERY_TASK_ALWAYS_EAGER=False):
        yield published


@pytest.fixture
def post(api, django_capture_on_commit_callbacks):
    """POST an event with `Prefer: respond-async`, running what waits for the commit (on
    SQLite every event takes the long way, which wakes the worker once it commits)."""

    def send(body: dict[str, Any], **headers: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return api.post(URL, body, format="json", **{**ASYNC, **headers})

    return send


def _rewards() -> list[tuple[int, str, Decimal]]:
    return sorted(Reward.objects.values_list("participant_id", "source", "amount"))


def test_a_queued_purchase_is_answered_at_once_and_applied_by_the_worker(
    post, alice, bob, carol, wakes
):
    response = post(purchase(carol))

    assert response.status_code == 202, response.content
    assert response["Preference-Applied"] == "respond-async"
    data = response.json()
    assert (data["status"], data["rewards"], data["amount"]) == ("queued", [], "50.00")
    assert data["participant_id"] == carol.pk and data["campaign"] == "shop"
    assert Conversion.objects.get().status == ConversionStatus.QUEUED
    assert _rewards() == []
    assert wakes == [{"countdown": queue.GATHER_SECONDS}]

    tasks.apply_queued_events()

    assert _rewards() == sorted(
        [(carol.pk, "referee", Decimal(20)), (bob.pk, "commission", Decimal(5)),
         (alice.pk, "commission", Decimal("2.5"))]
    )  # fmt: skip
    stored = Conversion.objects.get()
    assert (stored.status, stored.qualifying, stored.response_status) == ("applied", True, 201)
    # A repeat answers the event as it is now: applied, with its rewards.
    again = post(purchase(carol))
    assert again.status_code == 200 and again["Idempotent-Replayed"] == "true"
    assert again.json()["status"] == "applied" and len(again.json()["rewards"]) == 3
    assert "Preference-Applied" not in again


def test_the_same_purchase_again_while_queued_is_stored_once(post, bob, carol, wakes):
    first = post(purchase(carol)).json()
    again = post(purchase(carol))

    assert again.status_code == 200 and again.json() == first
    assert Conversion.objects.count() == 1
    tasks.apply_queued_events()
    tasks.apply_queued_events()
    assert Reward.objects.filter(source="commission").count() == 2


def test_a_repeat_with_other_details_is_refused_like_any_other(post, bob, carol, wakes):
    post(purchase(carol))
    response = post(purchase(carol, amount="60.00"))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "duplicate_event_mismatch"


def test_with_in_process_tasks_the_purchase_is_applied_before_the_answer(post, bob, carol):
    response = post(purchase(carol))
    assert response.status_code == 202 and response.json()["status"] == "queued"
    assert Conversion.objects.get().status == ConversionStatus.APPLIED
    assert Reward.objects.filter(source="commission").count() == 2


@pytest.mark.parametrize(
    ("changes", "status", "code"),
    [
        ({"participant_id": 10**9}, 404, "participant_not_found"),
        ({"campaign": "nope"}, 404, "campaign_not_found"),
        ({"currency": "USD"}, 422, "currency_mismatch"),
        ({"amount": "0"}, 400, "invalid"),
    ],
)
def test_bad_purchases_get_the_same_errors_and_store_nothing(
    post, carol, wakes, changes, status, code
):
    response = post(purchase(carol, **changes))
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    assert not Conversion.objects.exists() and wakes == []


def test_a_buyer_named_by_external_id_is_found(post, shop, bob, wakes):
    buyer = Participant.objects.get(pk=bob.pk)
    Participant.objects.filter(pk=buyer.pk).update(external_id="u-bob")
    body = purchase(buyer, participant_id=None, external_id="u-bob")
    response = post(body)
    assert response.status_code == 202 and response.json()["participant_id"] == bob.pk


def test_a_refund_of_a_queued_purchase_waits_for_it(post, alice, bob, carol, wakes):
    post(purchase(carol))
    refund = post(purchase(carol, type="refund", amount="50.00"))

    # Refunds are applied in the request: this one keeps until its purchase is applied.
    assert refund.status_code == 202 and refund.json()["status"] == "waiting"
    tasks.apply_queued_events()

    assert Conversion.objects.get(type="refund").status == ConversionStatus.APPLIED
    # Granted, then taken back: as when a refund comes before its purchase.
    assert set(Reward.objects.values_list("state", flat=True)) == {"reversed"}
    assert Reward.objects.count() == 3


def test_other_events_are_applied_in_the_request_whatever_is_asked(post, shop, bob, wakes):
    Campaign.objects.filter(pk=shop.pk).update(qualifying_event="verified_signup")
    body = {"type": "signup_verified", "campaign": "shop", "participant_id": bob.pk}
    response = post(body)
    assert response.status_code == 201 and response.json()["status"] == "applied"
    assert "Preference-Applied" not in response and wakes == []


def test_an_idempotency_key_keeps_its_first_answer(post, bob, carol, wakes):
    first = post(purchase(carol), HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == 202 and first.json()["status"] == "queued"
    assert IdempotencyKey.objects.get().response_status == 202
    assert len(wakes) == 1  # woken once the event was committed

    again = post(purchase(carol), HTTP_IDEMPOTENCY_KEY="k-1")
    assert again.status_code == 202 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    tasks.apply_queued_events()
    assert Reward.objects.filter(source="commission").count() == 2


def test_a_process_publishes_one_pass_per_window(post, bob, carol, dave, wakes, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(queue.time, "monotonic", lambda: clock[0])
    post(purchase(carol, "o-1"))
    clock[0] += queue.GATHER_SECONDS / 2
    post(purchase(dave, "o-2"))
    assert len(wakes) == 1  # the pass already published runs after both
    clock[0] += queue.GATHER_SECONDS
    post(purchase(carol, "o-3"))
    assert len(wakes) == 2

    tasks.apply_queued_events()
    assert not Conversion.objects.filter(status=ConversionStatus.QUEUED).exists()


def test_an_event_that_fails_stays_queued_and_the_rest_are_applied(
    post, bob, carol, dave, wakes, monkeypatch
):
    post(purchase(carol, "o-bad"))
    post(purchase(dave, "o-good"))
    real = engine.apply

    def apply(ledger: Any, conversion: Conversion, *args: Any, **kwargs: Any) -> None:
        if conversion.order_id == "o-bad":
            raise RuntimeError("a bug")
        real(ledger, conversion, *args, **kwargs)

    monkeypatch.setattr(engine, "apply", apply)
    published: list[tuple[Any, ...]] = []
    monkeypatch.setattr(tasks.apply_queued_events, "delay", lambda *a: published.append(a))
    tasks.apply_queued_events()
    assert published == []  # the failure waits for the sweep, not a pass in a loop
    statuses = dict(Conversion.objects.values_list("order_id", "status"))
    assert statuses == {"o-bad": "queued", "o-good": "applied"}
    assert not Reward.objects.filter(order_id="o-bad").exists()

    monkeypatch.setattr(engine, "apply", real)
    assert queue.apply_queued() == 1  # the next pass
    assert not Conversion.objects.filter(status=ConversionStatus.QUEUED).exists()


def test_a_pass_at_its_limit_publishes_the_next(post, bob, carol, dave, wakes, monkeypatch):
    post(purchase(carol, "o-1"))
    post(purchase(dave, "o-2"))
    monkeypatch.setattr(queue, "PASS_LIMIT", 1)
    published: list[tuple[Any, ...]] = []
    monkeypatch.setattr(tasks.apply_queued_events, "delay", lambda *a: published.append(a))

    tasks.apply_queued_events()

    assert Conversion.objects.filter(status=ConversionStatus.QUEUED).count() == 1
    assert published == [()]


def test_the_sweep_is_scheduled(settings):
    tasks_scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "apps.rewards.tasks.apply_queued_events" in tasks_scheduled
