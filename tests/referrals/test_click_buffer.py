"""The click buffer (CLICK_BUFFER_URL): clicks queued in a real Redis (a private database
number, emptied before and after each test) reach the click log exactly once, through
crashes and concurrent flushers, and go straight to the log while Redis is down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
import redis
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from apps.referrals import clickbuffer, clicklines
from apps.referrals.models import Click, Participant
from apps.referrals.services import click_record
from apps.referrals.tasks import flush_click_buffer
from apps.trust.privacy import participant_erase
from tests.factories import CampaignFactory, join
from tests.landing.conftest import PHONE

BUFFER_URL = "redis://127.0.0.1:6379/14"
# Nothing listens on port 1: connections are refused at once.
DOWN_URL = "redis://127.0.0.1:1/0"

# Transactional: a flush deletes its processing list when its transaction commits.
pytestmark = pytest.mark.django_db(transaction=True)


def use_buffer(settings: Any, url: str) -> None:
    settings.FISSION = {**settings.FISSION, "CLICK_BUFFER_URL": url}


@pytest.fixture
def buffer(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(BUFFER_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("needs Redis at 127.0.0.1:6379")
    client.flushdb()
    use_buffer(settings, BUFFER_URL)
    monkeypatch.setattr(clickbuffer, "_down_until", 0.0)
    yield client
    clickbuffer.sender.send()
    client.flushdb()


def click(participant: Participant, channel: str = "wechat", **kwargs: Any) -> None:
    click_record(
        campaign_id=participant.campaign_id,
        participant_id=participant.pk,
        channel=channel,
        visitor_id=kwargs.pop("visitor_id", "v1"),
        ip_hash="h",
        ua_class="mobile",
        **kwargs,
    )


def sent() -> None:
    """Wait until this process's sender has sent every click queued so far."""
    assert clickbuffer.sender.send()


def processing_lists(client: redis.Redis) -> list[bytes]:
    return list(client.scan_iter(match=clickbuffer.PROCESSING + "*"))


def test_buffered_clicks_reach_the_log_once_with_what_the_redirect_saw(alice, buffer):
    click(alice, "wechat")
    click(alice, "line", is_bot=True)
    assert not Click.objects.exists()
    assert clickbuffer.pending() == 2

    assert clickbuffer.flush() == 2
    rows = list(
        Click.objects.order_by("channel").values_list(
            "participant_id", "campaign_id", "channel", "visitor_id", "ua_class", "is_bot"
        )
    )
    assert rows == [
        (alice.pk, alice.campaign_id, "line", "v1", "mobile", True),
        (alice.pk, alice.campaign_id, "wechat", "v1", "mobile", False),
    ]
    assert all(c.buffer_id for c in Click.objects.all())
    assert clickbuffer.flush() == 0
    assert Click.objects.count() == 2
    assert clickbuffer.pending() == 0 and not processing_lists(buffer)
    assert buffer.zcard(clickbuffer.FLUSHES) == 0


def test_a_buffered_click_keeps_the_time_it_was_made(alice, buffer):
    before = timezone.now()
    click(alice)
    after = timezone.now()
    clickbuffer.flush()
    assert before <= Click.objects.get().created_at <= after


def test_the_redirect_queues_its_click_and_the_flush_stores_it(alice, buffer):
    response = Client(HTTP_USER_AGENT=PHONE).get(f"/r/{alice.code}?s=WhatsApp")
    assert response.status_code == 302
    assert not Click.objects.exists()
    assert clickbuffer.flush() == 1
    stored = Click.objects.get()
    assert (stored.participant_id, stored.channel, stored.is_bot) == (alice.pk, "whatsapp", False)


def test_two_flushers_at_once_store_each_click_once(settings, buffer):
    if connection.vendor != "postgresql":
        pytest.skip("needs concurrent connections")
    alice = join(CampaignFactory(), "alice")
    for n in range(600):
        click(alice, visitor_id=f"v{n}")
    barrier = threading.Barrier(2)
    written: list[int] = []

    def flusher() -> None:
        try:
            barrier.wait()
            written.append(clickbuffer.flush(batch=50))
        finally:
            connection.close()

    threads = [threading.Thread(target=flusher) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(written) == 600
    assert Click.objects.count() == 600
    assert Click.objects.values("visitor_id").distinct().count() == 600
    assert clickbuffer.pending() == 0 and not processing_lists(buffer)


def test_a_flusher_that_dies_after_the_copy_duplicates_nothing(alice, buffer, monkeypatch):
    for channel in ("a", "b", "c"):
        click(alice, channel)
    # Dies after the commit, before deleting its processing list.
    monkeypatch.setattr(clickbuffer, "_release", lambda client, name: None)
    assert clickbuffer.flush() == 3
    assert len(processing_lists(buffer)) == 1
    monkeypatch.undo()
    monkeypatch.setattr(clickbuffer, "_down_until", 0.0)

    # Within its lease the list belongs to the (presumed live) flusher: left alone.
    assert clickbuffer.flush() == 0
    assert len(processing_lists(buffer)) == 1
    # Past the lease a flush takes it over, finds its clicks written and clears it.
    monkeypatch.setattr(clickbuffer, "LEASE_SECONDS", -1.0)
    assert clickbuffer.flush() == 0
    assert sorted(Click.objects.values_list("channel", flat=True)) == ["a", "b", "c"]
    assert not processing_lists(buffer) and buffer.zcard(clickbuffer.FLUSHES) == 0


def test_a_flusher_that_dies_before_the_commit_loses_nothing(alice, buffer, monkeypatch):
    click(alice, "a")
    click(alice, "b")

    def crash(rows: list[Any]) -> int:
        raise ConnectionError("worker killed")

    monkeypatch.setattr(clickbuffer, "_insert", crash)
    with pytest.raises(ConnectionError):
        clickbuffer.flush()
    monkeypatch.undo()
    assert not Click.objects.exists() and clickbuffer.pending() == 0

    monkeypatch.setattr(clickbuffer, "LEASE_SECONDS", -1.0)
    click(alice, "c")
    assert clickbuffer.flush() == 3
    assert sorted(Click.objects.values_list("channel", flat=True)) == ["a", "b", "c"]
    assert not processing_lists(buffer)


def test_a_flush_in_a_transaction_that_rolls_back_is_written_again(alice, buffer, monkeypatch):
    click(alice)

    def erase_that_fails() -> None:
        with transaction.atomic():
            assert clickbuffer.flush() == 1
            raise RuntimeError("the caller's transaction fails")

    with pytest.raises(RuntimeError):
        erase_that_fails()
    assert not Click.objects.exists()
    assert len(processing_lists(buffer)) == 1
    monkeypatch.setattr(clickbuffer, "LEASE_SECONDS", -1.0)
    assert clickbuffer.flush() == 1
    assert Click.objects.count() == 1


def test_a_push_whose_answer_was_lost_is_stored_once(alice, buffer, monkeypatch):
    """The push reached Redis but its answer timed out: the redirect inserts the click
    itself, and the flush then finds it written (the same buffer_id)."""
    real = clickbuffer.client()

    class LostAnswer:
        def rpush(self, key: str, *values: str) -> int:
            real.rpush(key, *values)
            raise redis.TimeoutError("no answer")

    monkeypatch.setattr(clickbuffer, "client", lambda: LostAnswer())
    click(alice)
    sent()
    assert Click.objects.count() == 1
    monkeypatch.undo()
    assert clickbuffer.pending() == 1
    assert clickbuffer.flush() == 0
    assert Click.objects.count() == 1


def test_with_redis_down_the_sender_inserts_the_clicks(alice, settings, monkeypatch):
    use_buffer(settings, DOWN_URL)
    monkeypatch.setattr(clickbuffer, "_down_until", 0.0)
    click(alice, "wechat")
    sent()
    assert Click.objects.get().channel == "wechat"

    # For a few seconds the process leaves Redis alone: no connection is even tried.
    def refuse() -> None:
        raise AssertionError("Redis tried again at once")

    monkeypatch.setattr(clickbuffer, "client", refuse)
    click(alice, "line")
    sent()
    assert Click.objects.count() == 2


def test_with_redis_down_the_redirect_still_counts_the_click(alice, settings, monkeypatch):
    use_buffer(settings, DOWN_URL)
    monkeypatch.setattr(clickbuffer, "_down_until", 0.0)
    response = Client().get(f"/r/{alice.code}?s=wechat")
    assert response.status_code == 302
    sent()
    assert Click.objects.filter(participant=alice, channel="wechat").count() == 1


def test_the_redirect_answers_without_waiting_for_redis(alice, buffer, monkeypatch):
    """The redirect hands its click to the sender thread and answers: a Redis that takes
    its time holds up no visitor, and the click arrives once it answers."""
    answer = threading.Event()
    real_push = clickbuffer.push

    def slow_push(clicks: list[str]) -> None:
        assert answer.wait(10), "the redirect waited for the push"
        real_push(clicks)

    monkeypatch.setattr(clickbuffer, "push", slow_push)
    response = Client(HTTP_USER_AGENT=PHONE).get(f"/r/{alice.code}?s=wechat")
    assert response.status_code == 302
    assert buffer.llen(clickbuffer.PENDING) == 0  # not pushed yet
    answer.set()
    assert clickbuffer.flush() == 1
    assert Click.objects.get().channel == "wechat"


def test_the_sender_carries_the_clicks_of_its_window_in_one_push(alice, buffer, monkeypatch):
    """Clicks a few milliseconds apart (a busy process) wake the sender once and travel
    in one RPUSH, not one each."""
    pushes: list[int] = []
    real_push = clickbuffer.push

    def counted_push(clicks: list[str]) -> None:
        pushes.append(len(clicks))
        real_push(clicks)

    monkeypatch.setattr(clickbuffer, "push", counted_push)
    for n in range(10):
        click(alice, visitor_id=f"v{n}")
        time.sleep(0.003)  # ten clicks over about 30 ms, inside one GATHER_SECONDS
    deadline = time.monotonic() + 10
    while sum(pushes) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sum(pushes) == 10
    assert len(pushes) <= 3  # one, unless the machine stalled this thread for 50 ms
    assert clickbuffer.flush() == 10


def test_clicks_of_many_threads_at_once_reach_the_log_once(alice, buffer):
    threads, per_thread = 8, 100
    barrier = threading.Barrier(threads)

    def visitor(n: int) -> None:
        barrier.wait()
        for k in range(per_thread):
            click(alice, visitor_id=f"v{n}-{k}")

    workers = [threading.Thread(target=visitor, args=(n,)) for n in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert clickbuffer.flush() == threads * per_thread
    assert Click.objects.values("visitor_id").distinct().count() == threads * per_thread
    assert clickbuffer.pending() == 0


def test_clicks_neither_redis_nor_the_database_took_are_kept_and_sent_later(
    alice, buffer, monkeypatch
):
    def down(clicks: list[str]) -> None:
        raise ConnectionError("Redis and PostgreSQL both down")

    monkeypatch.setattr(clickbuffer, "_deliver", down)
    click(alice, "a")
    click(alice, "b")
    assert not clickbuffer.sender.send()
    assert clickbuffer.sender.held() == 2
    monkeypatch.undo()
    monkeypatch.setattr(clickbuffer, "_down_until", 0.0)
    sent()
    assert clickbuffer.flush() == 2
    assert sorted(Click.objects.values_list("channel", flat=True)) == ["a", "b"]


def test_an_unreadable_item_is_dropped_and_the_rest_written(alice, buffer):
    good = clicklines.line(
        campaign_id=alice.campaign_id,
        participant_id=alice.pk,
        channel="c",
        visitor_id="v",
        ip_hash="h",
        ua_class="mobile",
        is_bot=False,
    )
    fields = good.split("\t")
    unreadable = [
        b"not json",
        b'["short"]',
        b"\xff\xfe",  # not UTF-8
        "\t".join(fields[:-1]),  # a column short
        good + "\tf",  # one too many
        good.replace("\tc\t", "\t" + "c" * 33 + "\t"),  # longer than the column
        good.replace("\tc\t", "\tc\x00\t"),  # COPY takes no NUL
        good.replace("\tc\t", "\tc\\x\t"),  # an escape COPY would read otherwise
        good.replace("\tmobile\t", "\tphone\t"),
        good.replace("+00:00", ""),  # a time without its zone
        "\t".join([fields[0], "9" * 19, *fields[2:]]),  # past bigint
    ]
    click(alice, "a")
    buffer.rpush(clickbuffer.PENDING, *unreadable)
    click(alice, "b")
    buffer.rpush(clickbuffer.PENDING, good)
    assert clickbuffer.flush() == 3
    assert sorted(Click.objects.values_list("channel", flat=True)) == ["a", "b", "c"]
    assert not processing_lists(buffer)


def test_text_columns_keep_tabs_backslashes_and_line_breaks(alice, buffer):
    """Whatever the service is given reaches the log as it was (the redirect itself only
    passes a sanitised channel and a random visitor id)."""
    click(alice, "a\tb\\c\nd\re", visitor_id="\\t not a tab")
    click(alice, "微信", visitor_id="v\ud800")  # no encoding takes a lone surrogate
    assert clickbuffer.flush() == 2
    stored = sorted(Click.objects.values_list("channel", "visitor_id"))
    assert stored == [("a\tb\\c\nd\re", "\\t not a tab"), ("微信", "v?")]


def test_a_click_queued_by_the_previous_version_is_written(alice, buffer):
    """During a rolling deploy, processes of the version before queue each click as a JSON
    array: the flush writes those too, with their own id and time."""
    buffer_id, made = uuid.uuid4(), timezone.now() - timedelta(seconds=3)
    legacy = [
        buffer_id.hex,
        alice.campaign_id,
        alice.pk,
        made.isoformat(),
        "old",
        "v0",
        "h",
        "bot",
        1,
    ]
    buffer.rpush(clickbuffer.PENDING, json.dumps(legacy, separators=(",", ":")))
    click(alice, "new")
    assert clickbuffer.flush() == 2
    old = Click.objects.get(channel="old")
    assert (old.buffer_id, old.created_at, old.visitor_id, old.ua_class, old.is_bot) == (
        buffer_id,
        made,
        "v0",
        "bot",
        True,
    )


def test_a_click_of_no_participant_is_skipped_not_failing_the_batch(alice, buffer):
    """Participants are never deleted, but one forged or corrupt item must not hold up
    the buffer for ever on the foreign key."""
    click(alice, "a")
    forged = clicklines.line(
        campaign_id=alice.campaign_id,
        participant_id=alice.pk + 1000,
        channel="x",
        visitor_id="",
        ip_hash="",
        ua_class="other",
        is_bot=False,
    )
    buffer.rpush(clickbuffer.PENDING, forged)
    click(alice, "b")
    assert clickbuffer.flush() == 2
    assert sorted(Click.objects.values_list("channel", flat=True)) == ["a", "b"]


def test_the_periodic_task_flushes_and_does_nothing_without_a_buffer(alice, buffer, settings):
    click(alice)
    flush_click_buffer()
    assert Click.objects.count() == 1

    click(alice)
    use_buffer(settings, "")
    flush_click_buffer()
    assert Click.objects.count() == 1


def test_the_flush_command_writes_everything_waiting(alice, buffer, monkeypatch):
    monkeypatch.setattr(clickbuffer, "BATCH", 2)
    for n in range(5):
        click(alice, visitor_id=f"v{n}")
    out = StringIO()
    call_command("flush_clicks", stdout=out)
    assert "5 clicks written; 0 waiting." in out.getvalue()
    assert Click.objects.count() == 5


def test_the_flush_command_says_when_there_is_no_buffer(settings):
    use_buffer(settings, "")
    with pytest.raises(CommandError, match="CLICK_BUFFER_URL is not set"):
        call_command("flush_clicks")


def test_erasure_scrubs_visits_still_in_the_buffer(campaign, buffer):
    alice = join(campaign, "alice")
    bob = join(campaign, "bob", referrer=alice, visitor_id="bobs-browser")
    click(alice, visitor_id="bobs-browser")
    participant_erase(participant_id=bob.pk, actor="dpo")
    visit = Click.objects.get()
    assert visit.visitor_id != "bobs-browser" and visit.ua_class == "other"


def test_a_flush_may_take_over_left_batches_at_once_when_told_none_runs(alice, buffer, monkeypatch):
    click(alice)
    monkeypatch.setattr(clickbuffer, "_release", lambda client, name: None)
    clickbuffer.flush()
    monkeypatch.undo()
    monkeypatch.setattr(clickbuffer, "_down_until", 0.0)
    Click.objects.all().delete()  # as if that flusher died before its COPY
    assert clickbuffer.flush() == 0
    assert clickbuffer.flush(lease=0) == 1
    assert not processing_lists(buffer)


def test_a_process_that_exits_sends_the_clicks_it_holds_first(alice, buffer):
    """A web process stopping (a deploy, a restart) sends its clicks on its way out: here
    its sender thread is kept from running, so only the exit can send the click."""
    program = f"""
import django
django.setup()
from apps.referrals import clickbuffer, services
clickbuffer.sender._started = True  # no thread: only the exit can send it
services.click_record(campaign_id={alice.campaign_id}, participant_id={alice.pk}, channel="bye")
assert clickbuffer.sender.held() == 1
"""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "true",
        "CLICK_BUFFER_URL": BUFFER_URL,
    }
    subprocess.run([sys.executable, "-c", program], env=env, check=True, timeout=60)  # noqa: S603
    assert buffer.llen(clickbuffer.PENDING) == 1
    assert clickbuffer.flush() == 1
    assert Click.objects.get().channel == "bye"
