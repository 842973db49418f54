"""The Celery app. Settings come from Django's settings under the CELERY_ prefix."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("fission")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def close_old_connections(task: Any = None, **kwargs: Any) -> None:
    """Treat a task like a request: keep the worker's database connection for
    CONN_MAX_AGE, check it before reuse (CONN_HEALTH_CHECKS) and drop it when broken.

    Celery's Django fix-up would otherwise open a new connection for every task (a
    third of a short task's time); CELERY_DB_REUSE_MAX in the settings turns that off.
    """
    if task is not None and getattr(task.request, "is_eager", False):
        return  # in-process: the caller's connection, and maybe its transaction
    from django.db import close_old_connections as close

    close()
