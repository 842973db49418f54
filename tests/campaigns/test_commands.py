from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from apps.api.models import ApiKey, hash_key
from apps.campaigns.models import Campaign
from apps.referrals.models import Participant

pytestmark = pytest.mark.django_db


def test_seed_demo_twice_changes_nothing_the_second_time(settings, tmp_path, monkeypatch):
    monkeypatch.setattr(
        "apps.campaigns.management.commands.seed_demo.PASSWORD_FILE", tmp_path / "pw"
    )
    first, second = io.StringIO(), io.StringIO()
    call_command("seed_demo", stdout=first)
    counts = (
        Campaign.objects.count(),
        Participant.objects.count(),
        get_user_model().objects.count(),
    )
    call_command("seed_demo", stdout=second)
    assert counts == (
        Campaign.objects.count(),
        Participant.objects.count(),
        get_user_model().objects.count(),
    )
    assert counts == (1, 4, 1)
    demo = Campaign.objects.get(slug="demo")
    assert demo.tiers.count() == 3 and demo.commission_levels.count() == 2
    assert {c.language for c in demo.landing_copies.all()} == {"en", "zh-hans"}
    alice = Participant.objects.get(email="alice@example.com")
    assert f"/r/{alice.code}" in first.getvalue() and f"/p/{alice.token}/" in first.getvalue()
    password = (tmp_path / "pw").read_text()
    assert f"admin / {password}" in first.getvalue() and f"admin / {password}" in second.getvalue()
    assert get_user_model().objects.get(username="admin").check_password(password)


def test_create_api_key_prints_the_key_last_and_stores_only_its_hash():
    out = io.StringIO()
    call_command("create_api_key", "shop backend", stdout=out, stderr=io.StringIO())
    key = out.getvalue().strip().splitlines()[-1]
    api_key = ApiKey.objects.get()
    assert api_key.name == "shop backend"
    assert api_key.key_hash == hash_key(key) and key not in api_key.key_hash
    assert key.startswith(api_key.prefix)
    with pytest.raises(CommandError, match="needs a name"):
        call_command("create_api_key", "  ")
