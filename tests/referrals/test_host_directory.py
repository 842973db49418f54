"""The host's invite directory: a SQLite file where the web processes of one machine share
where invite codes lead, before they ask Redis or PostgreSQL (apps.referrals.hostdirectory).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.campaigns.models import Campaign
from apps.common import breaker
from apps.common.breaker import Breaker
from apps.referrals import directory, hostdirectory
from apps.referrals.models import Click
from apps.referrals.selectors import invite_target, invite_targets_forget
from tests.factories import CampaignFactory, join

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def host_file(settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "invites.sqlite3"
    settings.FISSION = {**settings.FISSION, "INVITE_HOST_DIRECTORY": str(path)}
    monkeypatch.setattr(hostdirectory, "breaker", Breaker("host invite directory", 5.0))
    return path


def another_process() -> None:
    """A second web process of the same machine: nothing of its own, the same file."""
    invite_targets_forget()


def no_redis(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    asked: list[str] = []
    monkeypatch.setattr(directory, "lookup", lambda code: asked.append(code))
    return asked


def test_a_code_in_the_file_redirects_without_asking_redis_or_reading_participants(
    client, alice, host_file, monkeypatch
):
    hostdirectory.remember([(alice.code, alice.pk, alice.campaign_id)], 300)
    asked = no_redis(monkeypatch)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/r/{alice.code}")
    assert response.status_code == 302 and response["Location"] == "/c/spring/"
    assert "referrals_participant" not in " ".join(q["sql"] for q in queries)
    assert asked == []
    assert Click.objects.filter(participant=alice).count() == 1


def test_what_a_process_learns_is_written_for_the_machines_other_processes(
    alice, campaign, host_file, monkeypatch
):
    invite_target(alice.code)  # from PostgreSQL
    assert hostdirectory.lookup(alice.code) == (alice.pk, campaign.pk)
    bob = join(campaign, "bob")
    directory.remember([(bob.code, bob.pk, campaign.pk)])
    another_process()
    invite_target(bob.code)  # from the shared directory
    assert hostdirectory.lookup(bob.code) == (bob.pk, campaign.pk)
    another_process()
    asked = no_redis(monkeypatch)
    assert invite_target(bob.code) is not None
    assert asked == []


def test_another_process_reads_what_this_one_wrote(alice, host_file):
    hostdirectory.remember([(alice.code, alice.pk, alice.campaign_id)], 300)
    program = (
        "import django; django.setup(); from apps.referrals import hostdirectory; "
        f"print(hostdirectory.lookup({alice.code!r}))"
    )
    result = subprocess.run(  # noqa: S603 (this interpreter, our own program)
        [sys.executable, "-c", program],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "INVITE_HOST_DIRECTORY": str(host_file),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip().splitlines()[-1] == str((alice.pk, alice.campaign_id))


def test_a_join_writes_its_code_once_committed(
    campaign, host_file, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        bob = join(campaign, "bob")
    assert hostdirectory.lookup(bob.code) == (bob.pk, campaign.pk)


def test_entries_last_invite_cache_seconds(alice, host_file, settings, monkeypatch):
    settings.FISSION = {**settings.FISSION, "INVITE_CACHE_SECONDS": 60}
    now = [1_000_000.0]
    monkeypatch.setattr(hostdirectory.time, "time", lambda: now[0])
    invite_target(alice.code)
    now[0] += 59
    assert hostdirectory.lookup(alice.code) == (alice.pk, alice.campaign_id)
    now[0] += 1
    assert hostdirectory.lookup(alice.code) is None


def test_an_ended_campaigns_code_in_the_file_still_leads_nowhere(
    alice, host_file, django_assert_num_queries
):
    invite_target(alice.code)
    Campaign.objects.filter(pk=alice.campaign_id).update(status=Campaign.Status.ENDED)
    another_process()
    with django_assert_num_queries(1):  # the campaign's state, as for an unknown code
        assert invite_target(alice.code) is None


def test_erasure_takes_the_old_code_out_of_the_file_and_the_directory(alice, host_file):
    old = alice.code
    invite_target(old)
    assert directory.lookup(old) is not None and hostdirectory.lookup(old) is not None
    call_command("forget_participant", str(alice.pk), stdout=StringIO())
    assert hostdirectory.lookup(old) is None
    assert directory.lookup(old) is None
    another_process()
    assert invite_target(old) is None


def test_erasure_waits_for_a_busy_file_rather_than_leave_the_old_code(alice, host_file):
    old = alice.code
    hostdirectory.remember([(old, alice.pk, alice.campaign_id)], 300)
    other = sqlite3.connect(host_file, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process writing for longer than a redirect waits
    release = threading.Timer(10 * hostdirectory.TIMEOUT_SECONDS, other.execute, ["ROLLBACK"])
    release.start()
    try:
        call_command("forget_participant", str(alice.pk), stdout=StringIO())
    finally:
        release.join()
        other.close()
    assert hostdirectory.lookup(old) is None


def test_without_remembering_the_file_is_not_used(alice, host_file, settings):
    settings.FISSION = {**settings.FISSION, "INVITE_CACHE_SECONDS": 0}
    assert invite_target(alice.code) is not None
    assert not host_file.exists()


def test_a_write_that_finds_the_file_busy_is_dropped_and_reads_go_on(alice, campaign, host_file):
    hostdirectory.remember([(alice.code, alice.pk, campaign.pk)], 300)
    other = sqlite3.connect(host_file, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
    try:
        hostdirectory.remember([("newcode123", 99, campaign.pk)], 300)
        assert hostdirectory.breaker.usable()
        assert hostdirectory.lookup(alice.code) == (alice.pk, campaign.pk)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert hostdirectory.lookup("newcode123") is None


def test_a_file_that_cannot_be_opened_costs_one_try_then_is_left_alone(
    alice, settings, tmp_path, monkeypatch
):
    settings.FISSION = {**settings.FISSION, "INVITE_HOST_DIRECTORY": str(tmp_path)}  # a folder
    monkeypatch.setattr(hostdirectory, "breaker", Breaker("host invite directory", 5.0))
    now = [500.0]
    monkeypatch.setattr(breaker.time, "monotonic", lambda: now[0])
    tries: list[str] = []
    connect = hostdirectory.sqlite3.connect

    def counting_connect(*args: Any, **kwargs: Any) -> Any:
        tries.append(args[0])
        return connect(*args, **kwargs)

    monkeypatch.setattr(hostdirectory.sqlite3, "connect", counting_connect)
    assert invite_target(alice.code) is not None  # from PostgreSQL
    assert len(tries) == 1
    for _ in range(3):
        another_process()
        assert invite_target(alice.code) is not None
    assert len(tries) == 1
    now[0] += hostdirectory.RETRY_AFTER_SECONDS
    another_process()
    assert invite_target(alice.code) is not None
    assert len(tries) == 2


def test_warm_invite_codes_writes_every_live_code_to_the_file(host_file, monkeypatch):
    live = CampaignFactory(slug="live")
    paused = CampaignFactory(slug="paused", status=Campaign.Status.PAUSED)
    ended = CampaignFactory(slug="ended", status=Campaign.Status.ENDED)
    over = CampaignFactory(slug="over", ends_at=timezone.now() - timedelta(days=1))
    people = {c.slug: join(c, "alice") for c in (live, paused, ended, over)}
    # An entry that expired is dropped by the next warm.
    now = [hostdirectory.time.time()]
    monkeypatch.setattr(hostdirectory.time, "time", lambda: now[0])
    hostdirectory.remember([("expiredcod", 1, 1)], 1)
    now[0] += 2
    out = StringIO()

    call_command("warm_invite_codes", stdout=out)

    # The tests' cache is this process's own: only the file is written.
    assert out.getvalue().strip() == "2 invite codes written to this machine's file, for 300 s."
    known = {slug for slug, person in people.items() if hostdirectory.lookup(person.code)}
    assert known == {"live", "paused"}
    with hostdirectory._connection(str(host_file)) as db:
        assert db.execute("SELECT count(*) FROM invite_code_v1").fetchone() == (2,)


def test_warm_invite_codes_says_when_the_file_cannot_be_written(db, settings, tmp_path):
    settings.FISSION = {**settings.FISSION, "INVITE_HOST_DIRECTORY": str(tmp_path)}
    with pytest.raises(CommandError, match="Could not write"):
        call_command("warm_invite_codes", stdout=StringIO())
