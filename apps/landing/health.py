"""/healthz: each dependency's state; 200 while the database answers, 503 otherwise."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # any failure means "down"; the reason goes to the log
        logger.exception("health check: database")
        return "down"
    return "ok"


def _cache() -> str:
    try:
        cache.set("fission:healthz", "1", 5)
        return "ok" if cache.get("fission:healthz") == "1" else "down"
    except Exception:
        logger.exception("health check: cache")
        return "down"


def _broker() -> str:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return "in-process"
    from config.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception:
        logger.exception("health check: broker")
        return "down"
    return "ok"


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _database(), "cache": _cache(), "broker": _broker()}
    ok = checks["database"] == "ok"
    return JsonResponse(
        {"status": "ok" if ok else "down", "checks": checks}, status=200 if ok else 503
    )
