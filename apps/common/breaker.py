"""A breaker for an optional helper (a cache, a local file): after it fails, leave it alone
for a few seconds and do without it, so that a helper that is down costs one failure per
process every few seconds, not one per request."""

from __future__ import annotations

import logging
import time

logger = logging.getLogger(__name__)


class Breaker:
    def __init__(self, name: str, seconds: float) -> None:
        self.name = name
        self.seconds = seconds
        self._until = 0.0

    def usable(self) -> bool:
        return not self._until or time.monotonic() >= self._until

    def failed(self, exc: BaseException) -> None:
        self._until = time.monotonic() + self.seconds
        logger.warning("%s unavailable for %s s: %s", self.name, self.seconds, exc)

    def worked(self) -> None:
        if self._until:  # a global written only when it changes
            self._until = 0.0
