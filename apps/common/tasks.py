"""Queueing a task after a commit without letting the broker fail the request."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from kombu.exceptions import OperationalError as BrokerError

logger = logging.getLogger(__name__)


def delay_each(task: Any, calls: Iterable[Sequence[Any]], *, left_for: str) -> bool:
    """`task.delay(*args)` for each of `calls`. A broker that cannot be reached stops the
    loop with a warning instead of an error: the rows the tasks work on are stored, and
    the periodic sweep named by `left_for` takes them once the broker is back. Returns
    whether every call was queued."""
    calls = list(calls)
    for args in calls:
        try:
            task.delay(*args)
        except BrokerError as exc:
            logger.warning(
                "broker unreachable: %d × %s left for %s: %s", len(calls), task.name, left_for, exc
            )
            return False
    return True
