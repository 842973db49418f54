"""The queries of POST /api/v1/events/ for a purchase: a fixed number, whatever the depth of
the buyer in the tree and however many rewards exist already (the hot path of a viral
campaign: see the ingestion figure of `make bench`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from apps.api.models import WebhookDelivery
from apps.api.webhooks import webhook_endpoint_create
from apps.campaigns.models import Campaign
from apps.referrals.models import Participant
from apps.rewards import queue, tasks
from apps.rewards.models import Reward
from tests.factories import (
    CampaignFactory,
    CommissionLevelFactory,
    RefereeRewardFactory,
    RewardTierFactory,
    join,
)

pytestmark = [
    pytest.mark.django_db,
    # The counts are PostgreSQL's: there the buyer and its ancestors are found and locked
    # in one statement; SQLite (`make run`) reads them in two.
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's hot path"),
]
URL = "/api/v1/events/"

# A purchase by a buyer who qualified before, paying three levels of commission, with a
# webhook endpoint: the API key; the campaign; the buyer and three ancestors, found and
# locked in one statement; the order's purchase and waiting refunds; the purchase; the
# commission levels; the three commissions, their transitions, the webhook endpoints and
# their deliveries, one INSERT each; the event's answer. In a test, the transaction is a
# savepoint (2 more).
PURCHASE_QUERIES = 13
# A repeat: the API key, the campaign, the locked tree and the stored purchase.
REPEAT_QUERIES = 6


@pytest.fixture
def shop(db: object) -> Campaign:
    campaign = CampaignFactory(
        slug="shop",
        qualifying_event=Campaign.QualifyingEvent.PURCHASE,
        min_purchase_amount=Decimal("10.00"),
        holding_days=14,
    )
    for level, percent in ((1, "10.00"), (2, "5.00"), (3, "2.00")):
        CommissionLevelFactory(campaign=campaign, level=level, percent=Decimal(percent))
    RefereeRewardFactory(campaign=campaign)
    RewardTierFactory(campaign=campaign, threshold=2)
    webhook_endpoint_create(url="https://shop.example/hooks")
    return campaign


def chain(campaign: Campaign, depth: int) -> Participant:
    """A buyer `depth` levels below a seed."""
    person = join(campaign, "seed")
    for n in range(depth):
        person = join(campaign, f"p{n}", referrer=person, external_id=f"u-{n}")
    return person


def purchase(api: APIClient, buyer: Participant, order_id: str) -> dict[str, Any]:
    body = {
        "type": "purchase", "campaign": "shop", "external_id": buyer.external_id,
        "order_id": order_id, "amount": "50.00", "currency": "CNY",
    }  # fmt: skip
    response = api.post(URL, body, format="json")
    assert response.status_code in (200, 201), response.content
    return response.json()


@pytest.mark.parametrize(("depth", "earlier"), [(3, 1), (12, 25)])
def test_a_purchase_paying_three_levels_is_a_fixed_number_of_queries(api, shop, depth, earlier):
    buyer = chain(shop, depth)
    for n in range(earlier):  # the first qualifies the buyer; the others pay commissions
        purchase(api, buyer, f"earlier-{n}")
    assert Reward.objects.count() >= 3 * earlier

    with CaptureQueriesContext(connection) as queries:
        answer = purchase(api, buyer, "o-1")
    levels = sorted(r["level"] for r in answer["rewards"] if r["source"] == "commission")
    assert levels == [1, 2, 3]
    assert len(queries) == PURCHASE_QUERIES, "\n".join(q["sql"][:120] for q in queries)

    with CaptureQueriesContext(connection) as queries:
        assert purchase(api, buyer, "o-1") == answer
    assert len(queries) == REPEAT_QUERIES, "\n".join(q["sql"][:120] for q in queries)


def test_the_webhook_deliveries_of_one_request_are_one_message(
    api, shop, monkeypatch, django_capture_on_commit_callbacks
):
    buyer = chain(shop, 3)
    purchase(api, buyer, "first")
    queued: list[tuple[int, ...]] = []
    monkeypatch.setattr("apps.api.tasks.webhook_deliver.delay", lambda *ids: queued.append(ids))
    with django_capture_on_commit_callbacks(execute=True):
        purchase(api, buyer, "o-1")
    deliveries = WebhookDelivery.objects.filter(payload__data__order_id="o-1")
    assert len(queued) == 1 and sorted(queued[0]) == sorted(d.pk for d in deliveries)
    assert len(queued[0]) == 3  # one per commission


# Taken in with `Prefer: respond-async`: the API key and one statement (a repeat the same).
TAKE_IN_QUERIES = 2
# Applied by the worker: the claimed event with its campaign and buyer; the locked tree;
# the commission levels; the commissions; the refunds waiting for the order; the
# commissions' transitions; the webhook endpoints and their deliveries; the event marked
# applied with its answer; then the next claim, which finds none. In a test each claim's
# transaction is a savepoint (2 more each).
APPLY_QUERIES = 14


@pytest.mark.parametrize(("depth", "earlier"), [(3, 1), (12, 25)])
def test_a_queued_purchase_is_two_queries_in_and_a_fixed_number_applied(
    api, shop, depth, earlier, monkeypatch, settings
):
    buyer = chain(shop, depth)
    for n in range(earlier):
        purchase(api, buyer, f"earlier-{n}")
    settings.CELERY_TASK_ALWAYS_EAGER = False  # a worker elsewhere applies it
    monkeypatch.setattr(tasks.apply_queued_events, "apply_async", lambda **kw: None)
    body = {
        "type": "purchase", "campaign": "shop", "external_id": buyer.external_id,
        "order_id": "o-1", "amount": "50.00", "currency": "CNY",
    }  # fmt: skip
    for status in (202, 200):
        with CaptureQueriesContext(connection) as queries:
            response = api.post(URL, body, format="json", HTTP_PREFER="respond-async")
        assert response.status_code == status, response.content
        assert len(queries) == TAKE_IN_QUERIES, "\n".join(q["sql"][:120] for q in queries)

    with CaptureQueriesContext(connection) as queries:
        assert queue.apply_queued() == 1
    assert len(queries) == APPLY_QUERIES, "\n".join(q["sql"][:120] for q in queries)
    assert Reward.objects.filter(order_id="o-1", source="commission").count() == 3
