"""What a process remembers for a while (apps.common.memory): each entry for its own
seconds, at most `limit` keys, the oldest going first."""

from __future__ import annotations

import pytest

from apps.common import memory
from apps.common.memory import Remembered


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(memory.time, "monotonic", lambda: now[0])
    return now


def test_an_entry_lives_for_its_seconds(clock):
    remembered: Remembered[str, int] = Remembered(limit=10)
    assert remembered.put("a", 1, 5) == 1
    clock[0] += 4.9
    assert remembered.get("a") == 1
    clock[0] += 0.2
    assert remembered.get("a") is None


def test_zero_seconds_remembers_nothing(clock):
    remembered: Remembered[str, int] = Remembered(limit=10)
    remembered.put("a", 1, 0)
    assert remembered.get("a") is None


def test_the_oldest_key_goes_first_and_a_new_value_keeps_its_place(clock):
    remembered: Remembered[str, int] = Remembered(limit=2)
    remembered.put("a", 1, 60)
    remembered.put("b", 2, 60)
    remembered.put("a", 3, 60)  # replaces, evicts nothing
    assert (remembered.get("a"), remembered.get("b")) == (3, 2)
    remembered.put("c", 4, 60)
    assert (remembered.get("a"), remembered.get("b"), remembered.get("c")) == (None, 2, 4)


def test_forget_one_or_all(clock):
    remembered: Remembered[str, int] = Remembered(limit=10)
    for key in "abc":
        remembered.put(key, 1, 60)
    remembered.forget("a")
    assert remembered.get("a") is None and remembered.get("b") == 1
    remembered.forget()
    assert remembered.get("b") is None and remembered.get("c") is None
