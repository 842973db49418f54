"""What one process remembers for a while: small, hot, read-mostly facts (where an invite
code leads, a campaign's state, its fraud rule settings) that would otherwise cost a
query on every request.

Each entry lives for its own number of seconds on the monotonic clock; at most `limit`
keys are kept (the oldest go first). Other processes do not see a change until their
entry expires, so each user says how stale it may be; `forget` drops an entry in this
process at once.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Remembered(Generic[K, V]):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        # Ordered by first insertion; popping its oldest is O(1), where a dict's first
        # key after many deletions is found by scanning past every deleted slot.
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """The value, or None once it has expired or was never remembered. Lock-free:
        dict.get is atomic under the GIL; only writers take the lock."""
        entry = self._entries.get(key)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    def put(self, key: K, value: V, seconds: float) -> V:
        """Remember `value` for `seconds` (not at all for 0); returns it."""
        if seconds <= 0:
            return value
        with self._lock:
            if key not in self._entries:
                while len(self._entries) >= self.limit:
                    self._entries.popitem(last=False)
            self._entries[key] = (time.monotonic() + seconds, value)
        return value

    def forget(self, key: K | None = None) -> None:
        """Forget `key`, or everything (tests)."""
        with self._lock:
            if key is None:
                self._entries.clear()
            else:
                self._entries.pop(key, None)
