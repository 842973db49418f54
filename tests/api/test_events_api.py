"""POST /api/v1/events/: the contract's idempotency and the optional host signatures."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook

from apps.api.models import ApiKey
from apps.api.services import (
    api_key_create,
    api_key_finish_rotation,
    api_key_rotate_signing_secret,
)
from apps.campaigns.models import Campaign
from apps.referrals.models import Participant
from apps.rewards import retention
from apps.rewards.models import Conversion, IdempotencyKey, Reward
from apps.rewards.tasks import purge_old_idempotency_keys
from tests.factories import CommissionLevelFactory, RefereeRewardFactory, join

pytestmark = pytest.mark.django_db
URL = "/api/v1/events/"


@pytest.fixture
def shop(campaign: Campaign) -> Campaign:
    Campaign.objects.filter(pk=campaign.pk).update(
        qualifying_event="purchase", min_purchase_amount=Decimal("10.00")
    )
    campaign.refresh_from_db()
    CommissionLevelFactory(campaign=campaign, level=1, percent=Decimal("10.00"))
    RefereeRewardFactory(campaign=campaign)
    return campaign


@pytest.fixture
def buyer(shop: Campaign) -> Participant:
    alice = join(shop, "alice")
    return join(shop, "bob", referrer=alice, external_id="u-bob")


def body(buyer: Participant, **changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "type": "purchase", "campaign": "spring", "participant_id": buyer.pk,
        "order_id": "o-1", "amount": "50.00", "currency": "CNY",
        "occurred_at": datetime.now(UTC).isoformat(),
    }  # fmt: skip
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_a_purchase_is_taken_and_answered_with_what_it_did(api, buyer):
    response = api.post(URL, body(buyer), format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert set(data) == {
        "id", "type", "campaign", "participant_id", "order_id", "amount", "currency",
        "occurred_at", "status", "note", "qualified", "rewards",
    }  # fmt: skip
    assert (data["type"], data["amount"], data["status"], data["qualified"]) == (
        "purchase", "50.00", "applied", True,
    )  # fmt: skip
    assert sorted((r["source"], r["amount"]) for r in data["rewards"]) == [
        ("commission", "5.00"),
        ("referee", "20.00"),
    ]


def test_participants_can_be_named_by_external_id(api, buyer):
    response = api.post(URL, body(buyer, participant_id=None, external_id="u-bob"), format="json")
    assert response.status_code == 201 and response.json()["participant_id"] == buyer.pk


def test_a_verified_signup_needs_no_order_or_amount(api, buyer):
    data = {"type": "signup_verified", "campaign": "spring", "participant_id": buyer.pk}
    assert api.post(URL, data, format="json").status_code == 201
    assert api.post(URL, data, format="json").status_code == 200
    buyer.refresh_from_db()
    assert buyer.verified_at is not None


def test_without_a_key_campaign_type_and_order_id_make_the_key(api, buyer):
    first = api.post(URL, body(buyer), format="json")
    again = api.post(URL, body(buyer, occurred_at=None), format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    other_amount = api.post(URL, body(buyer, amount="60.00"), format="json")
    assert other_amount.status_code == 422
    assert other_amount.json()["error"]["code"] == "duplicate_event_mismatch"
    assert Conversion.objects.count() == 1 and Reward.objects.count() == 2


def test_the_same_key_and_body_answer_the_first_response_again(api, buyer):
    data = body(buyer)
    first = api.post(URL, data, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = api.post(URL, data, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert Conversion.objects.count() == 1


def test_the_same_key_with_another_body_is_422_and_changes_nothing(api, buyer):
    api.post(URL, body(buyer), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    before = (
        list(Conversion.objects.values()),
        list(Reward.objects.values()),
        list(IdempotencyKey.objects.values()),
    )
    response = api.post(URL, body(buyer, order_id="o-2"), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    after = (
        list(Conversion.objects.values()),
        list(Reward.objects.values()),
        list(IdempotencyKey.objects.values()),
    )
    assert after == before


def test_keys_are_kept_idempotency_key_days_then_deleted_every_night(api, buyer, settings):
    """Within IDEMPOTENCY_KEY_DAYS a key answers its first response; the nightly purge
    then deletes it, and the purchase resent with it is still recognised by its order."""
    settings.FISSION = {**settings.FISSION, "IDEMPOTENCY_KEY_DAYS": 30}
    first = api.post(URL, body(buyer), format="json", HTTP_IDEMPOTENCY_KEY="k-old")
    api.post(URL, body(buyer, order_id="o-2"), format="json", HTTP_IDEMPOTENCY_KEY="k-new")
    IdempotencyKey.objects.filter(key="k-old").update(
        created_at=timezone.now() - timedelta(days=30, seconds=1)
    )
    IdempotencyKey.objects.filter(key="k-new").update(
        created_at=timezone.now() - timedelta(days=29, hours=23)
    )

    purge_old_idempotency_keys()  # the nightly task's body

    assert set(IdempotencyKey.objects.values_list("key", flat=True)) == {"k-new"}
    rewards = Reward.objects.count()
    again = api.post(URL, body(buyer), format="json", HTTP_IDEMPOTENCY_KEY="k-old")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert Conversion.objects.filter(type="purchase").count() == 2
    assert Reward.objects.count() == rewards
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "apps.rewards.tasks.purge_old_idempotency_keys" in tasks
    assert retention.idempotency_keys_purge() == 0  # again: nothing more to do


def test_the_purge_deletes_in_batches(api, buyer):
    for n in range(5):
        api.post(URL, body(buyer, order_id=f"o-{n}"), format="json", HTTP_IDEMPOTENCY_KEY=f"k{n}")
    later = timezone.now() + timedelta(days=31)
    assert retention.idempotency_keys_purge(now=later, batch_size=2) == 5
    assert not IdempotencyKey.objects.exists()


def test_keys_belong_to_their_api_key(api, buyer):
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(name='app')[1]}")
    api.post(URL, body(buyer), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    response = other.post(
        URL, body(buyer, order_id="o-2"), format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert response.status_code == 201


def test_partial_refunds_of_one_order_need_their_own_keys(api, buyer):
    api.post(URL, body(buyer), format="json")
    refund = body(buyer, type="refund", amount="10.00")
    assert api.post(URL, refund, format="json", HTTP_IDEMPOTENCY_KEY="r-1").status_code == 201
    assert api.post(URL, refund, format="json", HTTP_IDEMPOTENCY_KEY="r-2").status_code == 201
    assert api.post(URL, refund, format="json", HTTP_IDEMPOTENCY_KEY="r-2").status_code == 201
    assert Conversion.objects.filter(type="refund").count() == 2
    commission = sum(r.amount for r in Reward.objects.filter(source="commission"))
    assert commission == Decimal("3.00")


def test_a_refund_before_its_purchase_is_accepted_with_202(api, buyer):
    response = api.post(URL, body(buyer, type="refund"), format="json")
    assert response.status_code == 202 and response.json()["status"] == "waiting"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"type": "signup"}, "type"),
        ({"order_id": ""}, "order_id"),
        ({"amount": None}, "amount"),
        ({"amount": "-5.00"}, "amount"),
        ({"amount": "0"}, "amount"),
        ({"amount": "1.005"}, "amount"),
        ({"amount": "abc"}, "amount"),
        ({"currency": "yuan"}, "currency"),
        ({"participant_id": None}, "participant_id"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"occurred_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}, "occurred_at"),
    ],
)
def test_invalid_events_are_400_and_store_nothing(api, buyer, changes, field):
    response = api.post(URL, body(buyer, **changes), format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert Conversion.objects.count() == 0


def test_unknown_campaign_participant_and_wrong_currency(api, buyer):
    assert api.post(URL, body(buyer, campaign="nope"), format="json").status_code == 404
    assert api.post(URL, body(buyer, participant_id=10**9), format="json").status_code == 404
    assert (
        api.post(URL, body(buyer, participant_id=None, external_id="x"), format="json").status_code
        == 404
    )
    wrong = api.post(URL, body(buyer, currency="USD"), format="json")
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "currency_mismatch"
    assert Conversion.objects.count() == 0


def test_events_need_an_api_key(anon_api, buyer):
    assert anon_api.post(URL, body(buyer), format="json").status_code == 401
    revoked = APIClient()
    key_row, key = api_key_create(name="old")
    ApiKey.objects.filter(pk=key_row.pk).update(revoked_at=datetime.now(UTC))
    revoked.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert revoked.post(URL, body(buyer), format="json").status_code == 401


# --- signatures ---------------------------------------------------------------------------


@pytest.fixture
def signed() -> tuple[APIClient, ApiKey, str]:
    api_key, key = api_key_create(name="signed shop")
    secret = api_key_rotate_signing_secret(api_key=api_key)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client, api_key, secret


def _signed_post(client, payload: bytes, secret: str, *, at=None, msg_id="msg_1", sig=None):
    at = at or datetime.now(UTC)
    signature = sig or Webhook(secret).sign(msg_id=msg_id, timestamp=at, data=payload.decode())
    return client.post(
        URL,
        payload,
        content_type="application/json",
        HTTP_WEBHOOK_ID=msg_id,
        HTTP_WEBHOOK_TIMESTAMP=str(int(at.timestamp())),
        HTTP_WEBHOOK_SIGNATURE=signature,
    )


def _other_secret() -> str:
    return "whsec_" + base64.b64encode(b"x" * 32).decode()


def test_a_correctly_signed_event_is_taken(signed, buyer):
    client, _, secret = signed
    payload = json.dumps(body(buyer)).encode()
    assert _signed_post(client, payload, secret).status_code == 201


@pytest.mark.parametrize("problem", ["wrong secret", "changed byte", "old", "future", "missing",
                                     "garbage"])  # fmt: skip
def test_a_badly_signed_event_is_401_and_stores_nothing(signed, buyer, problem):
    client, _, secret = signed
    payload = json.dumps(body(buyer)).encode()
    if problem == "wrong secret":
        response = _signed_post(client, payload, _other_secret())
    elif problem == "changed byte":
        signature = Webhook(secret).sign(
            msg_id="msg_1", timestamp=datetime.now(UTC), data=payload.decode()
        )
        tampered = payload.replace(b"50.00", b"90.00")
        response = _signed_post(client, tampered, secret, sig=signature)
    elif problem == "old":
        response = _signed_post(
            client, payload, secret, at=datetime.now(UTC) - timedelta(minutes=6)
        )
    elif problem == "future":
        response = _signed_post(
            client, payload, secret, at=datetime.now(UTC) + timedelta(minutes=6)
        )
    elif problem == "garbage":
        response = _signed_post(client, payload, secret, sig="v1,???? nonsense")
    else:
        response = client.post(URL, payload, content_type="application/json")
    assert response.status_code == 401, response.content
    assert response.json()["error"]["code"] == "invalid_signature"
    assert Conversion.objects.count() == 0


def test_a_signature_within_the_tolerance_is_accepted(signed, buyer):
    client, _, secret = signed
    payload = json.dumps(body(buyer)).encode()
    at = datetime.now(UTC) - timedelta(minutes=4)
    assert _signed_post(client, payload, secret, at=at).status_code == 201


def test_both_secrets_are_valid_while_rotating_then_only_the_new_one(signed, buyer):
    client, api_key, old = signed
    new = api_key_rotate_signing_secret(api_key=api_key)
    one = json.dumps(body(buyer, order_id="o-1")).encode()
    two = json.dumps(body(buyer, order_id="o-2")).encode()
    assert _signed_post(client, one, old).status_code == 201
    assert _signed_post(client, two, new).status_code == 201
    api_key_finish_rotation(api_key=api_key)
    three = json.dumps(body(buyer, order_id="o-3")).encode()
    assert _signed_post(client, three, old).status_code == 401
    assert _signed_post(client, three, new).status_code == 201


def test_ingestion_stays_lean(api, buyer, django_assert_max_num_queries):
    # The hot path: a purchase granting two rewards, and a duplicate delivery. Of these,
    # 3 are the participants' messages: one INSERT for all, and whether the referrer's next
    # tier is now one friend away (their qualified friends and the campaign's tiers).
    with django_assert_max_num_queries(29):
        assert api.post(URL, body(buyer), format="json").status_code == 201
    with django_assert_max_num_queries(8):
        assert api.post(URL, body(buyer), format="json").status_code == 200
