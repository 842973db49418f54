"""The reward admin: review queue, bulk approve and reject with a reason, history."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apps.api import webhooks
from apps.referrals.models import Participant
from apps.rewards.models import Reward
from tests.factories import join

from .helpers import purchase

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/rewards/reward/"
QUEUE = "/admin/rewards/rewardreview/"


@pytest.fixture
def olga(db) -> Client:
    user = get_user_model().objects.create_superuser("olga", "olga@example.com", "pw-olga-123")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def flagged_sale(shop, alice, bob, carol):
    Participant.objects.filter(pk=carol.pk).update(status="flagged")
    carol.refresh_from_db()
    purchase(carol, "o-1", "50.00")  # three pending rewards
    purchase(bob, "o-2", "50.00")  # bob's own reward and alice's commission: held
    return shop


def test_the_review_queue_shows_pending_and_flagged_rewards(olga, flagged_sale, carol):
    response = olga.get(QUEUE)
    assert response.status_code == 200
    queue = response.context["cl"].queryset
    assert set(queue.values_list("state", flat=True)) == {"pending"}
    assert queue.count() == 3
    Participant.objects.filter(pk=carol.pk).update(status="active")
    Reward.objects.filter(participant=carol).update(state="held")
    Participant.objects.filter(pk=carol.pk).update(status="flagged")
    assert olga.get(QUEUE).context["cl"].queryset.filter(participant=carol).count() == 1


def test_bulk_approve_and_reject_with_a_reason(olga, flagged_sale):
    pending = list(Reward.objects.filter(state="pending").order_by("id"))
    response = olga.post(
        QUEUE,
        {"action": "reject", "_selected_action": [pending[0].pk], "reason": ""},
        follow=True,
    )
    assert "Say why" in response.content.decode()
    assert Reward.objects.get(pk=pending[0].pk).state == "pending"
    olga.post(
        QUEUE,
        {"action": "reject", "_selected_action": [pending[0].pk], "reason": "fake account"},
    )
    olga.post(
        QUEUE,
        {"action": "approve", "_selected_action": [r.pk for r in pending[1:]], "reason": "ok"},
    )
    rejected = Reward.objects.get(pk=pending[0].pk)
    assert rejected.state == "rejected"
    last = rejected.transitions.last()
    assert (last.actor, last.reason) == ("admin:olga", "fake account")
    assert set(
        Reward.objects.filter(pk__in=[r.pk for r in pending[1:]]).values_list("state", flat=True)
    ) == {"held"}


def test_the_reward_list_and_history_take_a_fixed_number_of_queries(
    olga, flagged_sale, alice, django_assert_max_num_queries
):
    for i in range(10):
        friend = join(flagged_sale, f"friend{i}", referrer=alice)
        purchase(friend, f"p-{i}", "20.00")
    with django_assert_max_num_queries(12):
        response = olga.get(CHANGELIST)
    assert response.status_code == 200
    history = olga.get(f"{CHANGELIST}?participant__id__exact={alice.pk}")
    assert {r.participant_id for r in history.context["cl"].result_list} == {alice.pk}
    reward = Reward.objects.filter(participant=alice).first()
    detail = olga.get(f"{CHANGELIST}{reward.pk}/change/")
    assert detail.status_code == 200 and "append-only" in detail.content.decode().lower()


def test_rewards_cannot_be_added_or_deleted_by_hand(olga, flagged_sale):
    assert olga.get(f"{CHANGELIST}add/").status_code == 403
    reward = Reward.objects.first()
    assert olga.get(f"{CHANGELIST}{reward.pk}/delete/").status_code == 403


def test_conversions_webhooks_and_keys_are_visible(olga, flagged_sale):
    webhooks.webhook_endpoint_create(url="https://shop.example/hooks")
    for url in (
        "/admin/rewards/conversion/",
        "/admin/api/webhookendpoint/",
        "/admin/api/webhookdelivery/",
        "/admin/api/apikey/",
        "/admin/rewards/conversion/?q=o-1",
    ):
        assert olga.get(url).status_code == 200, url


def test_a_new_webhook_endpoint_gets_a_secret_shown_once(olga, db):
    response = olga.post(
        "/admin/api/webhookendpoint/add/",
        {"url": "https://shop.example/hooks", "description": "", "events": "[]", "is_active": "on"},
        follow=True,
    )
    assert response.status_code == 200
    from apps.api.models import WebhookEndpoint

    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret.startswith("whsec_")
    assert endpoint.secret in response.content.decode()
