"""The click log's retention: clicks older than CLICK_RETENTION_DAYS are deleted every
night, after their days are rolled up into the daily snapshots.

The order is what makes it safe, per campaign:

1. roll up: every day about to be purged gets its snapshot row, computed from the clicks
   still there (days already snapshotted keep theirs);
2. freeze: `ClickRetention.frozen_through` moves to the last purged day, committed before
   anything is deleted; from then on analytics reads those days' visitors from the
   snapshots, and rebuilding the snapshots leaves their visitor figures alone;
3. delete, in batches, each its own short transaction.

A crash between steps leaves frozen days whose clicks are still there (deleted by the
next run), never deleted clicks whose days were not rolled up.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.analytics.ranges import day_start
from apps.analytics.rollup import visitors_forget
from apps.analytics.services import snapshot_fill_days
from apps.campaigns.models import Campaign
from apps.referrals.models import Click

from .models import ClickRetention

BATCH = 5000


def retention_cutoff(now: datetime | None = None) -> date:
    """The first local day whose clicks are kept."""
    today = timezone.localdate(now or timezone.now())
    return today - timedelta(days=settings.FISSION["CLICK_RETENTION_DAYS"])


def clicks_purge(*, now: datetime | None = None, batch_size: int = BATCH) -> int:
    """Roll up, freeze and delete the clicks older than the retention, campaign by
    campaign; returns how many clicks were deleted. Safe to run twice, or at once."""
    keep_from = retention_cutoff(now)
    through = keep_from - timedelta(days=1)
    boundary = day_start(keep_from)
    deleted = 0
    for campaign_id in Campaign.objects.order_by("pk").values_list("pk", flat=True):
        old = Click.objects.filter(campaign_id=campaign_id, created_at__lt=boundary)
        if not old.exists():
            continue
        snapshot_fill_days(campaign_id=campaign_id, through=through)
        with transaction.atomic():
            state, created = ClickRetention.objects.select_for_update().get_or_create(
                campaign_id=campaign_id, defaults={"frozen_through": through}
            )
            if not created and state.frozen_through < through:
                state.frozen_through = through
                state.updated_at = timezone.now()
                state.save(update_fields=["frozen_through", "updated_at"])
        # Its visitors are counted from the snapshots from now on: the visitor ids the
        # report's roll-up kept for it go now, not with its last click (again on every
        # run, in case one died in between: nothing is left to delete after the first).
        visitors_forget(campaign_id)
        campaign_deleted = 0
        while True:
            with transaction.atomic():
                ids = list(old.order_by().values_list("id", flat=True)[:batch_size])
                if ids:
                    campaign_deleted += Click.objects.filter(pk__in=ids).delete()[0]
            if len(ids) < batch_size:
                break
        if campaign_deleted:
            ClickRetention.objects.filter(pk=campaign_id).update(
                clicks_deleted=F("clicks_deleted") + campaign_deleted
            )
        deleted += campaign_deleted
    return deleted
