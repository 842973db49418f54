"""Sending: once per (participant, kind, cause), only after commit, errors recorded."""

from __future__ import annotations

import smtplib
from datetime import timedelta
from unittest import mock

import pytest
from django.core import mail
from django.db import connection, transaction
from django.utils import timezone

from apps.notifications import tasks
from apps.notifications.models import CampaignMessage, Message
from apps.notifications.services import notify_joined
from apps.referrals.models import Participant
from apps.referrals.services import participant_withdraw_consent
from tests.factories import join

from .conftest import log, race, sent_to

pytestmark = pytest.mark.django_db
SEND = "django.core.mail.EmailMultiAlternatives.send"


def queue_welcome(participant: Participant, capture) -> list:
    with capture() as callbacks:
        notify_joined(participant=participant, verify_email=False)
    return callbacks


def test_a_message_is_sent_once_even_when_its_task_runs_twice(
    alice, django_capture_on_commit_callbacks
):
    callbacks = queue_welcome(alice, django_capture_on_commit_callbacks)
    assert len(callbacks) == 1
    callbacks[0]()  # the task, as enqueued on commit
    tasks.message_send(alice.pk, "welcome", "join")  # delivered again by the broker
    callbacks[0]()
    assert len(sent_to(alice)) == 1
    assert log(alice) == [("welcome", "join", "sent")]
    message = Message.objects.get(participant=alice)
    assert message.attempts == 1 and message.sent_at is not None


def test_the_same_cause_queued_twice_is_one_message(alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        notify_joined(participant=alice, verify_email=False)
        notify_joined(participant=alice, verify_email=False)
    with django_capture_on_commit_callbacks(execute=True):
        notify_joined(participant=alice, verify_email=False)
    assert log(alice) == [("welcome", "join", "sent")]
    assert len(sent_to(alice)) == 1


def test_nothing_is_sent_inside_a_rolled_back_transaction(
    campaign, alice, django_capture_on_commit_callbacks
):
    def join_then_fail() -> None:
        with transaction.atomic():
            bob = join(campaign, "bob", referrer=alice)
            notify_joined(participant=bob, verify_email=False)
            raise RuntimeError("the join failed after all")

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
    ):
        join_then_fail()
    assert callbacks == []
    assert not Message.objects.exists()
    assert mail.outbox == []


def test_nothing_is_sent_before_the_commit(alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        notify_joined(participant=alice, verify_email=False)
        assert mail.outbox == []
        assert log(alice) == [("welcome", "join", "queued")]
    assert len(mail.outbox) == 1


def test_an_unsubscribed_participant_is_never_sent_anything(
    alice, django_capture_on_commit_callbacks
):
    participant_withdraw_consent(participant=alice)
    with django_capture_on_commit_callbacks(execute=True):
        notify_joined(participant=alice, verify_email=False)
    assert mail.outbox == []
    (message,) = Message.objects.filter(participant=alice)
    assert message.status == "skipped" and "no more emails" in message.error


def test_consent_is_checked_again_when_the_message_is_sent(
    alice, django_capture_on_commit_callbacks
):
    callbacks = queue_welcome(alice, django_capture_on_commit_callbacks)
    participant_withdraw_consent(participant=alice)  # between the queueing and the send
    callbacks[0]()
    assert mail.outbox == []
    assert log(alice) == [("welcome", "join", "skipped")]


def test_a_message_switched_off_in_the_campaign_is_not_sent(
    campaign, alice, django_capture_on_commit_callbacks
):
    CampaignMessage.objects.create(campaign=campaign, kind="welcome", enabled=False)
    with django_capture_on_commit_callbacks(execute=True):
        notify_joined(participant=alice, verify_email=False)
    assert mail.outbox == []
    assert Message.objects.get(participant=alice).error == (
        "This message is switched off in the campaign."
    )


def test_a_blocked_participant_is_not_written_to(alice, django_capture_on_commit_callbacks):
    Participant.objects.filter(pk=alice.pk).update(status="blocked")
    with django_capture_on_commit_callbacks(execute=True):
        notify_joined(participant=alice, verify_email=False)
    assert mail.outbox == []
    assert log(alice) == [("welcome", "join", "skipped")]


def test_a_transient_delivery_error_is_recorded_and_retried_later(
    alice, settings, django_capture_on_commit_callbacks
):
    callbacks = queue_welcome(alice, django_capture_on_commit_callbacks)
    with mock.patch(SEND, side_effect=smtplib.SMTPServerDisconnected("connection lost")):
        callbacks[0]()
    message = Message.objects.get(participant=alice)
    assert message.status == "queued" and message.attempts == 1
    assert message.error == "SMTPServerDisconnected: connection lost"
    assert message.next_attempt_at > timezone.now()
    assert mail.outbox == []

    # The sweep sends it once the wait is over.
    later = timezone.now() + timedelta(seconds=settings.FISSION["MESSAGE_RETRY_BASE_SECONDS"] + 1)
    with mock.patch("django.utils.timezone.now", return_value=later):
        tasks.messages_send_due()
    message.refresh_from_db()
    assert message.status == "sent" and message.attempts == 2 and message.error == ""
    assert len(sent_to(alice)) == 1


def test_a_message_gives_up_after_its_last_try(alice, settings, django_capture_on_commit_callbacks):
    settings.FISSION = {**settings.FISSION, "MESSAGE_MAX_ATTEMPTS": 2}
    callbacks = queue_welcome(alice, django_capture_on_commit_callbacks)
    busy = smtplib.SMTPResponseException(451, b"try again later")
    with mock.patch(SEND, side_effect=busy):
        callbacks[0]()
        Message.objects.update(next_attempt_at=timezone.now())
        tasks.messages_send_due()
        tasks.messages_send_due()
    message = Message.objects.get(participant=alice)
    assert message.status == "failed" and message.attempts == 2
    assert "451" in message.error


def test_a_refused_address_fails_at_once(alice, django_capture_on_commit_callbacks):
    callbacks = queue_welcome(alice, django_capture_on_commit_callbacks)
    refused = smtplib.SMTPRecipientsRefused({alice.email: (550, b"no such user")})
    with mock.patch(SEND, side_effect=refused):
        callbacks[0]()
    message = Message.objects.get(participant=alice)
    assert message.status == "failed" and message.attempts == 1
    assert "550" in message.error


def test_the_sweep_sends_messages_whose_task_was_lost(alice, django_capture_on_commit_callbacks):
    queue_welcome(alice, django_capture_on_commit_callbacks)  # the broker lost the task
    tasks.messages_send_due()
    assert mail.outbox == []  # not yet: the on-commit task may still be on its way
    Message.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    tasks.messages_send_due()
    tasks.messages_send_due()
    assert len(sent_to(alice)) == 1


def test_the_operator_can_send_a_failed_message_again(
    alice, admin_client, django_capture_on_commit_callbacks
):
    callbacks = queue_welcome(alice, django_capture_on_commit_callbacks)
    with mock.patch(SEND, side_effect=smtplib.SMTPRecipientsRefused({})):
        callbacks[0]()
    message = Message.objects.get(participant=alice)
    assert message.status == "failed"
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/notifications/message/",
            {"action": "send_again", "_selected_action": [message.pk]},
        )
    assert response.status_code == 302
    message.refresh_from_db()
    assert message.status == "sent" and len(sent_to(alice)) == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="races need PostgreSQL")
def test_many_workers_running_one_message_at_once_send_it_once(campaign):
    alice = join(campaign, "alice")
    Message.objects.create(campaign=campaign, participant=alice, kind="welcome", cause="join")
    results = race(8, lambda _i: tasks.message_send(alice.pk, "welcome", "join"))
    assert results == [None] * 8
    assert len(sent_to(alice)) == 1
    assert Message.objects.get(participant=alice).attempts == 1
