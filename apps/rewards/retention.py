"""Idempotency keys are kept IDEMPOTENCY_KEY_DAYS days, then deleted every night.

A key answers a resent request with its first response for that long. Afterwards the same
key is a new request: a purchase resent that late is still recognised by its order id (the
stored purchase answers, or 422 if its details differ); a refund is not, so hosts must
stop retrying within the period (README, "Conversion events").
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import IdempotencyKey

BATCH = 5000


def idempotency_keys_purge(*, now: datetime | None = None, batch_size: int = BATCH) -> int:
    """Delete the keys older than IDEMPOTENCY_KEY_DAYS, in batches, each its own short
    transaction; returns how many. Safe to run twice, or at once."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.FISSION["IDEMPOTENCY_KEY_DAYS"])
    old = IdempotencyKey.objects.filter(created_at__lt=cutoff).order_by()
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(old.values_list("id", flat=True)[:batch_size])
            if ids:
                deleted += IdempotencyKey.objects.filter(pk__in=ids).delete()[0]
        if len(ids) < batch_size:
            return deleted
