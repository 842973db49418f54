from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from apps.referrals.models import Participant
from apps.referrals.selectors import descendant_count

pytestmark = pytest.mark.django_db

HEADER = "email,name,external_id,referrer_email,joined_at\n"


def _csv(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "people.csv"
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def _import(campaign, path: Path) -> str:
    out = io.StringIO()
    call_command("import_participants", campaign.slug, str(path), stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_children_before_parents_are_placed_under_them(campaign, tmp_path):
    path = _csv(
        tmp_path,
        "carol@example.com,Carol,c-3,bob@example.com,2025-03-03T10:00:00+08:00\n"
        "bob@example.com,Bob,c-2,alice@example.com,2025-03-02T10:00:00+08:00\n"
        "alice@example.com,Alice 王,c-1,,2025-03-01T10:00:00+08:00\n"
        "dave@example.com,Dave,,alice@example.com,2025-03-04\n",
    )
    assert "Imported 4 participants" in _import(campaign, path)
    people = {p.email: p for p in Participant.objects.filter(campaign=campaign)}
    alice, bob, carol = (
        people["alice@example.com"],
        people["bob@example.com"],
        people["carol@example.com"],
    )
    assert alice.name == "Alice 王" and alice.depth == 0 and alice.external_id == "c-1"
    assert bob.referrer == alice and carol.referrer == bob and carol.depth == 2
    assert carol.path == f"{alice.pk}/{bob.pk}"
    assert people["dave@example.com"].external_id is None
    assert descendant_count(alice) == 3
    assert alice.joined_at.isoformat() == "2025-03-01T02:00:00+00:00"
    assert len({p.code for p in people.values()}) == 4


def test_referrers_already_in_the_campaign_are_found_and_a_rerun_skips(campaign, alice, tmp_path):
    path = _csv(tmp_path, "zoe@example.com,Zoe,,ALICE@example.com,\n")
    _import(campaign, path)
    zoe = Participant.objects.get(email="zoe@example.com")
    assert zoe.referrer == alice and zoe.depth == 1
    assert "Imported 0 participants into spring; 1 were there already" in _import(campaign, path)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "ok@example.com,Ok,,,\nnot-an-email,X,,,\n",
            "line 3: 'not-an-email' is not an email address",
        ),
        (
            "ok@example.com,Ok,,,\nx@example.com,X,,ghost@example.com,\n",
            "line 3: referrer ghost@example.com is neither",
        ),
        ("a@example.com,A,,b@example.com,\nb@example.com,B,,a@example.com,\n", "cycle"),
        (
            "ok@example.com,Ok,,,\nx@example.com,X,,,yesterday\n",
            "line 3: joined_at 'yesterday' is not an ISO 8601 time",
        ),
        (
            "ok@example.com,Ok,,,\nOK@example.com,Again,,,\n",
            "line 3: OK@example.com appears already on line 2",
        ),
        ("ok@example.com," + "n" * 101 + ",,,\n", "line 2: name longer than 100 characters"),
        ("ok@example.com,Ok,,ok@example.com,\n", "cannot be their own referrer"),
        (
            "p@example.com,P,,,2025-03-02\nc@example.com,C,,p@example.com,2025-03-01\n",
            "line 3: joined_at is before their referrer joined",
        ),
    ],
)
def test_a_bad_row_is_reported_by_line_and_nothing_is_imported(campaign, tmp_path, body, message):
    with pytest.raises(CommandError, match="Nothing was imported") as exc:
        _import(campaign, _csv(tmp_path, body))
    assert message in str(exc.value)
    assert not Participant.objects.filter(campaign=campaign).exists()


def test_unknown_columns_and_campaigns_are_refused(campaign, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("mail,name\nx@example.com,X\n")
    with pytest.raises(CommandError, match="missing email; unknown mail"):
        _import(campaign, path)
    with pytest.raises(CommandError, match="No campaign 'nope'"):
        call_command("import_participants", "nope", str(path))
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("import_participants", campaign.slug, str(tmp_path / "missing.csv"))


def test_a_large_file_with_deep_chains_imports_in_one_go(campaign, tmp_path):
    lines = []
    for chain in range(20):
        # Each chain listed deepest first, 100 deep: 2,000 rows.
        for n in reversed(range(100)):
            referrer = f"c{chain}n{n - 1}@example.com" if n else ""
            joined = f"2025-01-01T00:{n // 60:02d}:{n % 60:02d}Z"
            lines.append(f"c{chain}n{n}@example.com,P{n},,{referrer},{joined}")
    _import(campaign, _csv(tmp_path, "\n".join(lines) + "\n"))
    assert Participant.objects.filter(campaign=campaign).count() == 2000
    deepest = Participant.objects.get(email="c7n99@example.com")
    assert deepest.depth == 99 and len(deepest.ancestor_ids) == 99
    assert descendant_count(Participant.objects.get(email="c7n0@example.com")) == 99
