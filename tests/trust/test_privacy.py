"""Data-subject rights: erasure keeps the tree and the books, the export holds everything
about the person and nothing about anyone else."""

from __future__ import annotations

import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.test import Client

from apps.analytics.selectors import kfactor_report
from apps.common.ip import ip_hash
from apps.referrals.models import Click, Participant
from apps.rewards.lifecycle import rewards_approve, rewards_mark_paid
from apps.rewards.models import Reward
from apps.rewards.selectors import reward_totals
from apps.rewards.services import conversion_ingest
from apps.trust.models import ConsentText, DataExportRequest, ErasureLog
from apps.trust.privacy import data_export_send
from tests.factories import (
    CampaignFactory,
    CommissionLevelFactory,
    RefereeRewardFactory,
    RewardTierFactory,
    join,
)

from .conftest import DESKTOP, browser, form

pytestmark = pytest.mark.django_db
PARTICIPANTS = "/admin/referrals/participant/"
ALICE_IP, BOB_IP, CAROL_IP, DAVE_IP = "198.51.100.1", "198.51.100.2", "203.0.113.3", "192.0.2.4"


def buy(participant: Participant, order_id: str, amount: str) -> None:
    conversion_ingest(
        type="purchase",
        campaign_slug=participant.campaign.slug,
        participant_id=participant.pk,
        order_id=order_id,
        amount=Decimal(amount),
        currency="CNY",
    )


@pytest.fixture
def shop(db):
    campaign = CampaignFactory(
        slug="shop", qualifying_event="purchase", min_purchase_amount=Decimal("10.00")
    )
    CommissionLevelFactory(campaign=campaign, level=1, percent=Decimal("10.00"))
    CommissionLevelFactory(campaign=campaign, level=2, percent=Decimal("5.00"))
    RefereeRewardFactory(campaign=campaign)
    RewardTierFactory(campaign=campaign, threshold=1, amount=Decimal("30.00"))
    return campaign


def web_join(client: Client, email: str, name: str, ref: str = "") -> Participant:
    client.get("/c/shop/")
    if ref:
        client.get(f"/r/{ref}?s=wechat")
    assert client.post("/c/shop/join", form(email, name)).status_code == 303
    return Participant.objects.get(email=email)


@pytest.fixture
def people(shop):
    """Alice Wang refers Bob Li (through the web), Bob refers Carol Zhou, who buys; Bob
    buys too; Dave opens Bob's link and does not join. Some rewards are paid."""
    alice = web_join(browser(ALICE_IP), "alice.wang@example.com", "Alice Wang")
    bob_browser = browser(BOB_IP)
    bob = web_join(bob_browser, "bob.li@example.com", "Bob Li", ref=alice.code)
    Participant.objects.filter(pk=bob.pk).update(external_id="shop-user-42")
    carol = web_join(browser(CAROL_IP, DESKTOP), "carol.zhou@example.com", "Carol Zhou", bob.code)
    browser(DAVE_IP, DESKTOP).get(f"/r/{bob.code}?s=weibo")
    buy(carol, "carol-order-1", "50.00")
    buy(bob, "bob-order-1", "80.00")
    alices = list(Reward.objects.filter(participant=alice).values_list("pk", flat=True))
    rewards_approve(reward_ids=alices, actor="test")
    rewards_mark_paid(reward_ids=alices, reference="batch-1", actor="test")
    bob.refresh_from_db()
    return alice, bob, carol, bob_browser


def books() -> list[tuple]:
    return list(
        Reward.objects.order_by("id").values_list(
            "id", "participant_id", "source", "amount", "currency", "state", "order_id"
        )
    )


# --- erasure -------------------------------------------------------------------------------


def test_forgetting_a_person_erases_them_and_keeps_the_tree_and_the_books(shop, people):
    alice, bob, carol, _ = people
    before_books, before_totals = books(), reward_totals(campaign=shop)
    visitors_before = kfactor_report(shop).visitors
    old_code, old_token, old_visitor = bob.code, bob.token, bob.join_visitor_id
    assert Click.objects.filter(visitor_id=old_visitor).exists()

    out = StringIO()
    call_command("forget_participant", str(bob.pk), stdout=out)
    assert f"Participant {bob.pk}: personal data erased" in out.getvalue()

    bob.refresh_from_db()
    assert bob.email == bob.email_normalized
    assert bob.email.startswith(f"erased-{bob.pk}-") and bob.email.endswith("@erased.invalid")
    assert (bob.name, bob.external_id) == ("", None)
    assert (bob.join_ip_hash, bob.join_network_hash, bob.join_visitor_id, bob.join_ua_class) == (
        "", "", "", ""
    )  # fmt: skip
    assert bob.consent_withdrawn_at is not None  # nothing is ever sent to nobody
    # The tree: same place, same children.
    assert (bob.referrer_id, bob.depth, bob.path) == (alice.pk, 1, str(alice.pk))
    carol.refresh_from_db()
    assert (carol.referrer_id, carol.depth) == (bob.pk, 2)
    # The books: every entry and every total as before.
    assert books() == before_books
    assert reward_totals(campaign=shop) == before_totals
    # The visits from Bob's browser: unlinked, still counted once.
    assert not Click.objects.filter(visitor_id=old_visitor).exists()
    own = Click.objects.get(participant=alice)
    assert (own.ip_hash, own.ua_class) == ("", "other")
    assert kfactor_report(shop).visitors == visitors_before
    # Old links lead nowhere.
    assert bob.code != old_code and bob.token != old_token
    assert Client().get(f"/p/{old_token}/").status_code == 404
    assert Client().get(f"/r/{old_code}").status_code == 404
    # The log says that, when and by whom; nothing about who.
    log = ErasureLog.objects.get()
    assert (log.participant_id, log.actor, log.clicks_scrubbed) == (bob.pk, "forget_participant", 1)


def test_forgetting_twice_changes_nothing_more(people):
    bob = people[1]
    call_command("forget_participant", str(bob.pk), stdout=StringIO())
    bob.refresh_from_db()
    email = bob.email
    call_command("forget_participant", str(bob.pk), stdout=StringIO())
    bob.refresh_from_db()
    assert bob.email == email and ErasureLog.objects.count() == 1


def test_forgetting_an_unknown_participant_says_so(db):
    with pytest.raises(CommandError, match="No participant 999"):
        call_command("forget_participant", "999")


def test_the_admin_asks_before_it_erases(olga, people):
    bob = people[1]
    data = {"action": "erase_personal_data", "_selected_action": [bob.pk]}
    page = olga.post(PARTICIPANTS, data)
    assert page.status_code == 200
    assert "cannot be undone" in page.content.decode()
    assert Participant.objects.get(pk=bob.pk).email == "bob.li@example.com"

    done = olga.post(PARTICIPANTS, {**data, "confirm": "yes"}, follow=True)
    assert "Personal data of 1 participant erased." in done.content.decode()
    assert Participant.objects.get(pk=bob.pk).name == ""
    assert ErasureLog.objects.get().actor == "admin:olga"


# --- export --------------------------------------------------------------------------------


def others_data(alice: Participant, carol: Participant) -> list[str]:
    """What the export of Bob must not contain: other people's details."""
    return [
        alice.email, "Wang", alice.code, alice.join_visitor_id, alice.join_ip_hash,
        carol.email, "Zhou", carol.code, carol.join_visitor_id, carol.join_ip_hash,
        "carol-order-1",
        ip_hash(DAVE_IP), ip_hash(CAROL_IP), ip_hash(ALICE_IP),
        *Click.objects.filter(participant__in=[bob_of(carol)]).values_list("visitor_id", flat=True),
    ]  # fmt: skip


def bob_of(carol: Participant) -> Participant:
    return Participant.objects.get(pk=carol.referrer_id)


def check_bobs_export(data: dict, alice: Participant, bob: Participant, carol: Participant) -> None:
    text = json.dumps(data, ensure_ascii=False)
    (part,) = [p for p in data["participations"] if p["campaign"]["slug"] == "shop"]
    me = part["participant"]
    assert (me["email"], me["name"], me["external_id"]) == (
        "bob.li@example.com", "Bob Li", "shop-user-42"
    )  # fmt: skip
    assert me["invite_code"] == bob.code and me["status"] == "active"
    assert part["join_signals"] == {
        "ip_hash": ip_hash(BOB_IP),
        "network_hash": bob.join_network_hash,
        "visitor_id": bob.join_visitor_id,
        "device_class": "mobile",
    }
    consent = ConsentText.objects.get(version=bob.consent_version, language="en")
    assert part["consent"]["text"] == consent.text and "I agree" in consent.text
    assert part["invited_by"] == {"first_name": "Alice"}
    assert part["friends_invited"] == [{"first_name": "Carol"}]
    assert [e["order_id"] for e in part["events"]] == ["bob-order-1"]
    mine = Reward.objects.filter(participant=bob).order_by("id")
    assert [(r["source"], r["amount"]) for r in part["rewards"]] == [
        (r.source, f"{r.amount:.2f}") for r in mine
    ]
    assert {r["order_id"] for r in part["rewards"]} == {None, "bob-order-1"}
    assert [v["visitor_id"] for v in part["visits_from_your_browser"]] == [bob.join_visitor_id]
    assert part["clicks_on_your_invite_link"] == {
        "total": 2,
        "by_channel": {"wechat": 1, "weibo": 1},
    }
    for value in others_data(alice, carol):
        assert value and value not in text, value


def test_the_admin_exports_everything_about_a_person_and_nothing_else(olga, people):
    alice, bob, carol, _ = people
    response = olga.post(
        PARTICIPANTS, {"action": "export_personal_data", "_selected_action": [bob.pk]}
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert "attachment" in response["Content-Disposition"]
    data = json.loads(response.content)
    assert data["format"] == "fission.personal-data/1"
    check_bobs_export(data, alice, bob, carol)


def test_the_person_gets_their_data_by_email_from_their_page(
    people, campaign, django_capture_on_commit_callbacks
):
    alice, bob, carol, _bob_browser = people
    join(campaign, "bob", email="Bob.Li+spring@example.com")  # the same mailbox elsewhere
    join(campaign, "eve", email="eve@example.com")  # someone else
    client = Client(enforce_csrf_checks=True)
    page = client.get(f"/p/{bob.token}/")
    assert "Email me my data" in page.content.decode()
    assert client.post(f"/p/{bob.token}/my-data").status_code == 403  # no CSRF token
    token = page.cookies["csrftoken"].value
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/p/{bob.token}/my-data", {"csrfmiddlewaretoken": token})
    assert response.status_code == 303 and response["Location"].endswith("?done=export")
    assert "everything we hold about you" in client.get(response["Location"]).content.decode()

    (message,) = mail.outbox
    assert message.to == ["bob.li@example.com"]
    (name, content, mimetype) = message.attachments[0]
    assert name == f"fission-data-{bob.code}.json" and mimetype == "application/json"
    data = json.loads(content)
    assert [p["campaign"]["slug"] for p in data["participations"]] == ["shop", "spring"]
    assert "eve@example.com" not in content
    check_bobs_export(data, alice, bob, carol)


def test_asking_too_often_gets_a_friendly_429_and_no_more_mail(
    people, settings, django_capture_on_commit_callbacks
):
    bob = people[1]
    settings.FISSION = {**settings.FISSION, "DATA_EXPORTS_PER_DAY": 2}
    client = Client()
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            assert client.post(f"/p/{bob.token}/my-data").status_code == 303
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/p/{bob.token}/my-data")
    assert response.status_code == 429
    assert "Already on its way" in response.content.decode()
    assert len(mail.outbox) == 2


def test_a_retried_export_task_sends_once(people, django_capture_on_commit_callbacks):
    bob = people[1]
    with django_capture_on_commit_callbacks(execute=True):
        Client().post(f"/p/{bob.token}/my-data")
    request = DataExportRequest.objects.get()
    assert request.sent_at is not None
    assert data_export_send(request_id=request.pk) is False
    assert len(mail.outbox) == 1


def test_erasure_blanks_message_subjects_that_named_the_person(people):
    from apps.notifications.models import Message

    alice, bob, _carol, _ = people
    about_bob = Message.objects.filter(participant=alice, friend=bob)
    assert about_bob.exists() and Message.objects.filter(participant=bob).exists()
    # Subjects are written when a message is sent (on commit, by a task): as if sent.
    about_bob.update(subject="Bob joined through your link")
    Message.objects.filter(participant=bob).update(
        subject="Welcome, Bob", error="550 bob.li@example.com"
    )
    Message.objects.filter(participant=alice).exclude(friend=bob).update(subject="Welcome, Alice")
    call_command("forget_participant", str(bob.pk), stdout=StringIO())
    assert not Message.objects.filter(participant=bob).exclude(subject="").exists()
    assert not about_bob.exclude(subject="").exists()
    # alice's other messages keep their subjects
    assert (
        Message.objects.filter(participant=alice).exclude(friend=bob).exclude(subject="").exists()
    )


def test_the_export_lists_the_messages_sent_to_the_person(people):
    from apps.notifications.models import Message
    from apps.trust.selectors import person_export

    alice, _bob, _carol, _ = people
    data = person_export(
        [Participant.objects.select_related("campaign", "referrer").get(pk=alice.pk)]
    )
    sent = data["participations"][0]["messages_sent_to_you"]
    assert len(sent) == Message.objects.filter(participant=alice).count() > 0
    assert {"kind", "subject", "status", "sent_at"} <= set(sent[0])
    assert "bob.li@example.com" not in json.dumps(data)
