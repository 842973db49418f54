"""No N+1 queries: every page that lists rows costs as many queries with many rows as
with a few.

The table below names every list surface: each admin changelist (taken from the admin
site's registry, so a new ModelAdmin must join it), the admin change pages with inlines,
the custom admin pages (dashboard, finance reports, payout batches, bulk actions), every
API list and the public pages that list rows. The module builds a few rows of everything
(`grow`), renders each surface counting its queries, builds many more rows, and renders
each again: the counts must be equal, and each surface must show more rows the second
time (so a page that lists nothing cannot pass).

Everything runs once, inside one transaction that is rolled back; the tests compare the
figures: the ~60 surfaces cost seconds, not a minute of building rows for each.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group, Permission, User
from django.contrib.contenttypes.models import ContentType
from django.core.cache import cache
from django.db import connection, transaction
from django.http import HttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from apps.analytics.models import KAlert
from apps.api.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from apps.api.services import api_key_create
from apps.campaigns.models import Campaign, CommissionLevel, LandingCopy, RewardTier
from apps.exports.models import ExportJob
from apps.notifications.models import CampaignMessage, Message, MessageText
from apps.referrals.models import Click, FraudFlag, Participant
from apps.rewards.lifecycle import rewards_release_due
from apps.rewards.models import FinanceLog, PayoutBatch, Reward, RewardTransition
from apps.rewards.payouts import payout_batch_create
from apps.trust.models import (
    AllowlistEntry,
    ClickRetention,
    ConsentText,
    DataExportRequest,
    ErasureLog,
    FraudRule,
    FraudRuleSetting,
)
from tests.factories import (
    CampaignFactory,
    CommissionLevelFactory,
    LandingCopyFactory,
    ParticipantFactory,
    RefereeRewardFactory,
    RewardTierFactory,
    join,
)
from tests.rewards.helpers import purchase, verify

FEW, MANY = 2, 12

# Marked so that pytest-django sets the test database up; the rows are the module's.
pytestmark = pytest.mark.django_db


# --- The rows ---------------------------------------------------------------------------


@dataclass
class World:
    """The fixed objects whose lists grow, and how many units of rows exist so far."""

    shop: Campaign
    alice: Participant
    operator: User
    api_key: str
    reward: Reward
    endpoint: WebhookEndpoint
    delivery: WebhookDelivery
    message: CampaignMessage
    interval: IntervalSchedule
    crontab: CrontabSchedule
    solar: SolarSchedule
    clocked: ClockedSchedule
    batch: PayoutBatch | None = None
    units: int = 0
    participants: list[int] = field(default_factory=list)


def world_make() -> World:
    """A purchase campaign with a public leaderboard: alice invites everyone."""
    shop = CampaignFactory(
        slug="shop",
        qualifying_event=Campaign.QualifyingEvent.PURCHASE,
        holding_days=1,
        leaderboard_public=True,
    )
    CommissionLevelFactory(campaign=shop, level=1, percent=Decimal("10.00"))
    RefereeRewardFactory(campaign=shop)
    RewardTierFactory(campaign=shop, threshold=2)
    LandingCopyFactory(campaign=shop)
    alice = join(shop, "alice")
    operator = User.objects.create_superuser("olga", "olga@example.com", "pw-olga-123")
    first = join(shop, "first", referrer=alice)
    purchase(first, "first-order", "40.00")
    reward = Reward.objects.filter(participant=alice).order_by("id").first()
    assert reward is not None
    endpoint = WebhookEndpoint.objects.create(url="https://shop.example/hook", campaign=shop)
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint, campaign=shop, event_id="first", event_type="reward.created", payload={}
    )
    message = CampaignMessage.objects.create(campaign=shop, kind="welcome")
    return World(
        shop=shop,
        alice=alice,
        operator=operator,
        api_key=api_key_create(name="shop")[1],
        reward=reward,
        endpoint=endpoint,
        delivery=delivery,
        message=message,
        interval=IntervalSchedule.objects.create(every=1, period="hours"),
        crontab=CrontabSchedule.objects.create(minute="0", hour="3"),
        solar=SolarSchedule.objects.create(event="sunrise", latitude=31.2, longitude=121.5),
        clocked=ClockedSchedule.objects.create(clocked_time=timezone.now()),
        participants=[alice.pk, first.pk],
    )


def grow(world: World, units: int) -> None:
    """Add rows until there are `units` of each kind, then pay what is approved in a new
    payout batch (the batch's page lists this round's payees)."""
    for i in range(world.units, units):
        _unit(world, i)
    world.units = units
    rewards_release_due(now=timezone.now() + timedelta(days=2))
    world.batch = payout_batch_create(actor="finance", currency="CNY").batch


def _unit(world: World, i: int) -> None:
    shop, alice, now = world.shop, world.alice, timezone.now()
    # A campaign of its own, with everything the campaign lists show.
    other = CampaignFactory(slug=f"other-{i}")
    RewardTierFactory(campaign=other, threshold=3)
    RefereeRewardFactory(campaign=other)
    CommissionLevelFactory(campaign=other)
    LandingCopyFactory(campaign=other)
    KAlert.objects.create(
        campaign=other, started_on=now.date(), reason="threshold", factor="i",
        k=0.1, i=0.2, c=0.5, last_checked_on=now.date(), last_k=0.1, threshold=Decimal("0.5"),
    )  # fmt: skip
    ClickRetention.objects.create(campaign=other, frozen_through=now.date())
    other_message = CampaignMessage.objects.create(campaign=other, kind="welcome")
    MessageText.objects.create(message=other_message, language="en", subject="Hi", body="{link}")
    WebhookEndpoint.objects.create(url=f"https://h{i}.example/hook", campaign=other)
    AllowlistEntry.objects.create(campaign=other, kind="domain", value=f"office{i}.example")
    seed = join(other, f"seed{i}")
    verify(join(other, f"invited{i}", referrer=seed))  # a referee reward of its own
    erased = ParticipantFactory(campaign=other)
    ErasureLog.objects.create(participant=erased, campaign=other, actor="admin:olga")

    # The shop's own lists, shown inline on its page.
    RewardTier.objects.create(campaign=shop, threshold=100 + i, amount=Decimal(1))
    AllowlistEntry.objects.create(campaign=shop, kind="network", value=f"10.{i}.0.0/16")
    rules = FraudRule.values
    if i < len(rules):
        FraudRuleSetting.objects.create(campaign=shop, rule=rules[i], action="flag")
    # Lists with a fixed maximum (a text per language, three commission levels) get
    # their last row when growing past a few.
    if i == 0:
        MessageText.objects.create(message=world.message, language="en", subject="Hi")
    if i == FEW:
        LandingCopy.objects.create(campaign=shop, language="zh-hans", headline="邀请好友")
        CommissionLevel.objects.create(campaign=shop, level=2, percent=Decimal("5.00"))
        MessageText.objects.create(message=world.message, language="zh-hans", subject="你好")

    # alice invites a friend, who invites someone: both buy. The friend is flagged (their
    # rewards wait in the review queue) and leads the leaderboard with the grandchild.
    friend = join(shop, f"friend{i}", referrer=alice)
    grand = join(shop, f"grand{i}", referrer=friend)
    purchase(friend, f"f-{i}", "30.00")
    purchase(grand, f"g-{i}", "50.00")
    Participant.objects.filter(pk=friend.pk).update(status="flagged")
    world.participants += [friend.pk, grand.pk]
    FraudFlag.objects.create(participant=alice, code=f"manual-{i}", reason="looked odd")
    FraudFlag.objects.create(participant=friend, code="ip_burst", reason="one address")
    Click.objects.create(campaign=shop, participant=alice, visitor_id=f"v{i}", channel="wa")
    Message.objects.create(
        campaign=shop, participant=alice, kind="friend_joined", cause=f"friend:{friend.pk}",
        friend=friend, subject=f"{friend.name} joined",
    )  # fmt: skip
    DataExportRequest.objects.create(participant=friend)
    ConsentText.objects.create(version=f"v{i}", language="en", text="I agree.")
    RewardTransition.objects.create(
        reward=world.reward, campaign=shop, from_state="held", to_state="held",
        actor="engine", conversion=world.reward.conversion,
    )  # fmt: skip

    # Webhooks, keys, exports and the finance log.
    delivery = WebhookDelivery.objects.create(
        endpoint=world.endpoint, campaign=shop, event_id=f"e{i}", event_type="reward.created",
        payload={},
    )  # fmt: skip
    WebhookAttempt.objects.create(delivery=world.delivery, number=i + 1, error="timeout")
    WebhookAttempt.objects.create(delivery=delivery, number=1, status_code=500)
    api_key_create(name=f"key{i}")
    user = User.objects.create_user(f"user{i}", is_staff=True)
    group = Group.objects.create(name=f"group{i}")
    group.permissions.add(Permission.objects.get(codename="view_reward"))
    user.groups.add(group)
    ExportJob.objects.create(requested_by=user, filters={"campaign": "shop"})
    FinanceLog.objects.create(action="report_exported", actor=f"admin:user{i}", batch=world.batch)

    # The beat schedule, each kind of schedule with its tasks, and the login records.
    for kind, schedule in (
        ("interval", world.interval),
        ("crontab", world.crontab),
        ("solar", world.solar),
        ("clocked", world.clocked),
    ):
        PeriodicTask.objects.create(
            name=f"{kind}-{i}", task="apps.x", one_off=kind == "clocked", **{kind: schedule}
        )
    IntervalSchedule.objects.create(every=10 + i, period="minutes")
    CrontabSchedule.objects.create(minute=str(i), hour="4")
    SolarSchedule.objects.create(event="sunset", latitude=i, longitude=i)
    ClockedSchedule.objects.create(clocked_time=now + timedelta(days=i))
    login = {"user_agent": "ua", "ip_address": f"192.0.2.{i}", "username": f"user{i}"}
    # bulk_create: axes keeps its counts in the cache, and its handler refuses saves.
    AccessAttempt.objects.bulk_create(
        [AccessAttempt(**login, failures_since_start=1, get_data="", post_data="")]
    )
    AccessLog.objects.bulk_create([AccessLog(**login)])
    AccessFailureLog.objects.bulk_create([AccessFailureLog(**login)])


# --- The surfaces -----------------------------------------------------------------------


@dataclass(frozen=True)
class Surface:
    """A page that lists rows: how to ask for it, and how many rows it showed."""

    name: str
    url: Callable[[World], str]
    shown: Callable[[HttpResponse], int]
    post: Callable[[World], dict[str, Any]] | None = None
    api: bool = False


def _changelist_rows(response: HttpResponse) -> int:
    return len(response.context["cl"].result_list)


def _inline_rows(response: HttpResponse) -> int:
    return sum(len(inline.formset.forms) for inline in response.context["inline_admin_formsets"])


def _results(response: HttpResponse) -> int:
    return len(response.json()["results"])


def _csv_rows(response: HttpResponse) -> int:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return len(list(csv.reader(io.StringIO(body.decode("utf-8-sig")))))


def _context(name: str) -> Callable[[HttpResponse], int]:
    return lambda response: len(response.context[name])


def _changelists() -> list[Surface]:
    return [
        Surface(
            f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist",
            lambda w, m=model: reverse(
                f"admin:{m._meta.app_label}_{m._meta.model_name}_changelist"
            ),
            _changelist_rows,
        )
        for model in admin.site._registry
    ]


def _change(model: type[Any], pk: Callable[[World], int]) -> Surface:
    name = f"admin:{model._meta.app_label}_{model._meta.model_name}_change"
    return Surface(name, lambda w: reverse(name, args=[pk(w)]), _inline_rows)


def _action(name: str, action: str) -> Surface:
    """A bulk action of the participant list on everyone: what it lists or exports."""

    def post(w: World) -> dict[str, Any]:
        return {"action": action, "_selected_action": w.participants}

    return Surface(
        name, lambda w: reverse("admin:referrals_participant_changelist"), _shown_action, post
    )


def _shown_action(response: HttpResponse) -> int:
    if response.get("Content-Type", "").startswith("application/json"):
        return len(json.loads(response.content)["participations"])
    return len(response.context["participants"])


CHANGE_PAGES = [
    _change(Campaign, lambda w: w.shop.pk),
    _change(CampaignMessage, lambda w: w.message.pk),
    _change(Participant, lambda w: w.alice.pk),
    _change(WebhookDelivery, lambda w: w.delivery.pk),
    _change(Reward, lambda w: w.reward.pk),
    _change(IntervalSchedule, lambda w: w.interval.pk),
    _change(CrontabSchedule, lambda w: w.crontab.pk),
    _change(SolarSchedule, lambda w: w.solar.pk),
    _change(ClockedSchedule, lambda w: w.clocked.pk),
]

CUSTOM_ADMIN_PAGES = [
    Surface(
        "admin:rewards_payoutbatch_change (payees)",
        lambda w: reverse("admin:rewards_payoutbatch_change", args=[_batch(w)]),
        _context("payees"),
    ),
    Surface(
        "admin:campaigns_campaign_dashboard",
        lambda w: reverse("admin:campaigns_campaign_dashboard", args=[w.shop.pk]),
        lambda r: r.context["report"].participants,
    ),
    Surface(
        "admin:exports_reconciliation",
        lambda w: reverse("admin:exports_reconciliation"),
        _context("lines"),
    ),
    Surface(
        "admin:exports_reconciliation (CSV)",
        lambda w: reverse("admin:exports_reconciliation") + "?campaign=&format=csv",
        _csv_rows,
    ),
    Surface(
        "admin:exports_report (CSV)",
        lambda w: reverse("admin:exports_report"),
        _csv_rows,
        post=lambda w: {"date_field": "created", "format": "csv"},
    ),
    Surface(
        "admin:rewards_payoutbatch_lines (CSV)",
        lambda w: reverse("admin:rewards_payoutbatch_lines", args=[_batch(w), "csv"]),
        _csv_rows,
    ),
    Surface(
        "admin:rewards_payoutbatch_payees (CSV)",
        lambda w: reverse("admin:rewards_payoutbatch_payees", args=[_batch(w)]),
        _csv_rows,
    ),
    Surface(
        "admin:autocomplete (campaigns)",
        lambda w: (
            reverse("admin:autocomplete")
            + "?app_label=trust&model_name=allowlistentry&field_name=campaign"
        ),
        _results,
    ),
    _action("admin action: erase personal data (confirmation)", "erase_personal_data"),
    _action("admin action: export personal data", "export_personal_data"),
]


def _batch(world: World) -> int:
    assert world.batch is not None
    return world.batch.pk


API = [
    Surface("GET /api/v1/campaigns/", lambda w: reverse("api:campaigns"), _results, api=True),
    Surface(
        "GET /api/v1/campaigns/shop/ (tiers)",
        lambda w: reverse("api:campaign", args=["shop"]),
        lambda r: len(r.json()["tiers"]),
        api=True,
    ),
    Surface("GET /api/v1/rewards/", lambda w: reverse("api:rewards"), _results, api=True),
    Surface(
        "GET /api/v1/rewards/?campaign=shop&state=approved",
        lambda w: reverse("api:rewards") + "?campaign=shop&state=approved",
        _results,
        api=True,
    ),
    Surface(
        "GET /api/v1/participants/<alice>/",
        lambda w: reverse("api:participant", args=[w.alice.pk]),
        lambda r: len(r.json()["flags"]) + len(r.json()["rewards"]),
        api=True,
    ),
    Surface(
        "GET /api/v1/campaigns/shop/stats/",
        lambda w: reverse("api:campaign-stats", args=["shop"]),
        lambda r: r.json()["participants"],
        api=True,
    ),
]

PUBLIC_PAGES = [
    Surface(
        "/c/shop/ (tiers)", lambda w: reverse("landing:campaign", args=["shop"]), _context("tiers")
    ),
    Surface(
        "/p/<alice>/ (rewards, friends)",
        lambda w: reverse("landing:personal", args=[w.alice.token]),
        lambda r: len(r.context["rewards"]) + len(r.context["referral_names"]),
    ),
    Surface(
        "/c/shop/leaderboard/",
        lambda w: reverse("analytics:leaderboard", args=["shop"]),
        _context("rows"),
    ),
]

SURFACES = _changelists() + CHANGE_PAGES + CUSTOM_ADMIN_PAGES + API + PUBLIC_PAGES


# --- Measuring --------------------------------------------------------------------------


@dataclass
class Figure:
    queries: int = 0
    shown: int = 0
    sql: list[str] = field(default_factory=list)


@dataclass
class Measured:
    few: dict[str, Figure] = field(default_factory=dict)
    many: dict[str, Figure] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _render(world: World, surface: Surface) -> Figure:
    client = Client()
    client.force_login(world.operator)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {world.api_key}"} if surface.api else {}
    url = surface.url(world)
    cache.clear()  # the leaderboard and rate limits are cached; each render starts cold
    with CaptureQueriesContext(connection) as queries:
        if surface.post is not None:
            response = client.post(url, surface.post(world), **headers)
        else:
            response = client.get(url, **headers)
        shown = surface.shown(response)  # a streamed body is read here, with its queries
    if response.status_code != 200:
        raise AssertionError(f"{url} answered {response.status_code}")
    return Figure(len(queries), shown, [q["sql"] for q in queries.captured_queries])


def _measure_all(world: World, into: dict[str, Figure], errors: dict[str, str]) -> None:
    for surface in SURFACES:
        if surface.name in errors:
            continue
        try:
            into[surface.name] = _render(world, surface)
        except Exception as exc:  # reported by the surface's own test
            errors[surface.name] = f"{type(exc).__name__}: {exc}"


@pytest.fixture(scope="module")
def measured(django_db_setup: Any, django_db_blocker: Any) -> Measured:
    result = Measured()
    with django_db_blocker.unblock(), transaction.atomic():
        world = world_make()
        grow(world, FEW)
        # The content types are cached for the process once read: read them all first.
        ContentType.objects.get_for_models(*apps.get_models())
        _measure_all(world, result.few, result.errors)
        grow(world, MANY)
        _measure_all(world, result.many, result.errors)
        transaction.set_rollback(True)
    return result


@pytest.mark.parametrize("surface", SURFACES, ids=lambda s: s.name)
def test_query_count_does_not_grow_with_the_rows(surface: Surface, measured: Measured) -> None:
    assert surface.name not in measured.errors, measured.errors[surface.name]
    few, many = measured.few[surface.name], measured.many[surface.name]
    assert many.shown > few.shown, (
        f"{surface.name} showed {few.shown} rows, then {many.shown}: grow() must add rows "
        "that it lists"
    )
    assert many.queries == few.queries, (
        f"{surface.name}: {few.queries} queries for {few.shown} rows, {many.queries} for "
        f"{many.shown}; the queries repeated more often:\n{_repeated(few.sql, many.sql)}"
    )


def _repeated(few: list[str], many: list[str]) -> str:
    """Each query (its numbers and strings blanked) that ran more often with more rows."""
    before, after = Counter(map(_shape, few)), Counter(map(_shape, many))
    return "\n".join(
        f"{before[sql]} -> {count} times: {sql[:300]}"
        for sql, count in after.items()
        if count > before[sql]
    )


def _shape(sql: str) -> str:
    return re.sub(r"'[^']*'|\d+", "?", sql)


def test_every_admin_with_inlines_has_its_change_page_in_the_table() -> None:
    with_inlines = {
        f"admin:{model._meta.app_label}_{model._meta.model_name}_change"
        for model, model_admin in admin.site._registry.items()
        if model_admin.inlines and not model._meta.proxy
    }
    assert with_inlines <= {surface.name for surface in CHANGE_PAGES}
