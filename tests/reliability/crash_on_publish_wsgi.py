"""Fission's WSGI application in a web process that dies right after a transaction
commits and before the tasks it queues are published: the on-commit hook that publishes
them ends the process (os._exit, no cleanup), as a power cut or an OOM kill between the
two would. Only tests/reliability/test_commit_then_crash.py serves it."""

from __future__ import annotations

import os

from config.wsgi import application  # sets Django up first

from apps.api import webhooks  # isort: skip
from apps.notifications import services as notifications  # isort: skip


def _die(ids: object) -> None:
    os._exit(137)


# The hooks `transaction.on_commit` calls after the commit, whichever comes first: the
# webhooks' and the participant messages' (a join queues a welcome too).
webhooks._enqueue = _die
notifications._enqueue = _die

__all__ = ["application"]
