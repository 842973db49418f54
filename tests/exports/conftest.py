"""Finance fixtures: the shop campaign of the reward tests, its ledger after refunds
before and after a payout, and the people who use the finance pages."""

from __future__ import annotations

import importlib
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.utils import timezone

from apps.campaigns.models import Campaign
from apps.referrals.models import Participant
from apps.rewards.lifecycle import rewards_release_due
from apps.rewards.payouts import payout_batch_create, payout_batch_mark_paid
from tests.factories import CampaignFactory, RefereeRewardFactory, join
from tests.rewards import conftest as rewards
from tests.rewards.helpers import purchase, refund

# The reward tests' purchase campaign and personas (tests/rewards/conftest.py).
shop, alice, bob = rewards.shop, rewards.alice, rewards.bob
carol, dave = rewards.carol, rewards.dave


def release_all() -> None:
    """The holding periods are over."""
    rewards_release_due(now=timezone.now() + timedelta(days=15))


@pytest.fixture
def ledger(shop: Campaign, alice: Participant, bob: Participant, carol: Participant, dave):
    """carol buys for 50.00 and dave for 100.00 (order "=o-2", a formula-looking id);
    carol refunds 10.00 before the payout; everything is paid in batch BANK-1; then dave
    refunds everything: his, bob's and alice's rewards are owed back, as negative entries.
    A second campaign pays 5.00 USD to each invited friend (approved at once)."""
    purchase(carol, "o-1", "50.00")
    purchase(dave, "=o-2", "100.00")
    refund(carol, "o-1", "10.00")
    release_all()
    batch = payout_batch_create(actor="finance", currency="CNY").batch
    payout_batch_mark_paid(batch_id=batch.pk, reference="BANK-1", actor="finance")
    refund(dave, "=o-2", "100.00")
    usd = CampaignFactory(slug="usd", currency="USD", holding_days=0)
    RefereeRewardFactory(campaign=usd, amount="5.00", currency="USD")
    root = join(usd, "zoe")
    for name in ("yan", "xia"):
        join(usd, name, referrer=root)
    # Names and ids a spreadsheet would run as formulas.
    Participant.objects.filter(pk=alice.pk).update(name='=HYPERLINK("http://x")')
    Participant.objects.filter(pk=bob.pk).update(name="+Bob", external_id="@u-1")
    Participant.objects.filter(pk=carol.pk).update(name="-Carol\x07")
    Participant.objects.filter(pk=dave.pk).update(name="\tDave", external_id="\ru-4")
    return shop


def _user(username: str, *, group: str | None = None, perms: list[str] | None = None) -> Any:
    user = get_user_model().objects.create_user(
        username, f"{username}@example.com", f"pw-{username}-123", is_staff=True
    )
    if group:
        user.groups.add(_group(group))
    for perm in perms or []:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


def _group(name: str) -> Group:
    """The group the data migration made. A transactional test's flush deletes it (and
    post_migrate makes only permissions again), so it is made again here from the
    migration's own list when missing, whatever order the tests run in."""
    migration = importlib.import_module("apps.exports.migrations.0002_finance_group")
    group, created = Group.objects.get_or_create(name=name)
    if created and name == migration.GROUP:
        for label, codenames in migration.PERMISSIONS.items():
            group.permissions.add(
                *Permission.objects.filter(content_type__app_label=label, codename__in=codenames)
            )
    return group


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def fiona(db: Any) -> Any:
    """Finance: in the "finance" group made by the data migration."""
    return _user("fiona", group="finance")


@pytest.fixture
def finance_client(fiona: Any) -> Client:
    return _client(fiona)


@pytest.fixture
def oscar(db: Any) -> Any:
    """An operator: runs campaigns and reviews rewards, but is not finance."""
    return _user(
        "oscar",
        perms=[
            "campaigns.view_campaign", "campaigns.change_campaign", "campaigns.add_campaign",
            "referrals.view_participant", "rewards.view_reward", "rewards.change_reward",
            "rewards.view_payoutbatch", "exports.view_exportjob",
        ],
    )  # fmt: skip


@pytest.fixture
def operator_client(oscar: Any) -> Client:
    return _client(oscar)
