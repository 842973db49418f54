"""Writes: daily snapshots, K-drop alert episodes, and the alert email."""

from __future__ import annotations

import logging
from datetime import date, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone, translation

from apps.campaigns.models import Campaign

from .alerts import alert_recipients, alert_text, fallen_factor
from .dashboard import Day, daily_series, dashboard_extras, first_day
from .models import DailySnapshot, KAlert
from .selectors import Figures, figures, frozen_through, kfactor_report, report_transaction

logger = logging.getLogger(__name__)

# Each run recomputes this many days before the newest one, not just the new day: the
# alerts read two weeks, clicks may be marked as bots later, and a manual refresh wrote
# a partial "today" that the night's run must complete.
REFRESH_DAYS = 14
WEEK = 7


def snapshot_campaign(*, campaign_id: int, through: date, rebuild: bool = False) -> int:
    """Upsert the campaign's daily rows up to `through` and store the report as of that
    day on its row. Idempotent: running it twice writes the same rows (one per campaign
    and day, by the unique constraint). Returns the number of days written.

    A first run, or `rebuild`, covers every day since the first join; later runs the
    days since the newest row plus the last REFRESH_DAYS.
    """
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None:
        return 0
    start = min(first_day(campaign) or through, through)
    newest = (
        DailySnapshot.objects.filter(campaign_id=campaign_id, date__lte=through)
        .order_by("-date")
        .values_list("date", flat=True)
        .first()
    )
    if newest is not None and not rebuild:
        start = max(start, min(newest + timedelta(days=1), through - timedelta(REFRESH_DAYS - 1)))
    with report_transaction():  # the per-day distinct counts sort as much as the report
        series = daily_series(campaign, start, through)
    report = kfactor_report(campaign, None, through).as_dict()
    extras = dashboard_extras(campaign, through)
    with transaction.atomic():
        written = _upsert_days(campaign_id, series)
        DailySnapshot.objects.filter(campaign_id=campaign_id, date=through).update(
            report=report, extras=extras
        )
    return written


def _upsert_days(campaign_id: int, series: list[Day]) -> int:
    """Write the daily rows: INSERT ... ON CONFLICT (campaign, date) DO UPDATE, so a
    re-run, or two at once, leave one row a day. The report columns of older rows are
    left as they were.

    Days whose clicks are past their retention (frozen: apps.trust.retention) keep their
    visitor figures: the clicks they were counted from may be gone. So do the 7-day
    visitors of the week after them, which reach back into those days.
    """
    now = timezone.now()
    frozen = frozen_through(campaign_id)
    groups: dict[tuple[str, ...], list[DailySnapshot]] = {}
    for day in series:
        fields: tuple[str, ...] = ("joined", "referred", "visitors", "visitors_7d")
        if frozen is not None and day.date <= frozen:
            fields = ("joined", "referred")
        elif frozen is not None and day.date < frozen + timedelta(days=7):
            fields = ("joined", "referred", "visitors")
        groups.setdefault(fields, []).append(
            DailySnapshot(
                campaign_id=campaign_id,
                date=day.date,
                joined=day.joined,
                referred=day.referred,
                visitors=day.visitors,
                visitors_7d=day.visitors_7d,
                computed_at=now,
            )
        )
    for fields, rows in groups.items():
        DailySnapshot.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["campaign", "date"],
            update_fields=[*fields, "computed_at"],
            batch_size=500,
        )
    return len(series)


def snapshot_fill_days(*, campaign_id: int, through: date) -> int:
    """Roll the click log up into the daily rows up to `through`, before its clicks are
    deleted (apps.trust.retention): every day after the last frozen one is computed from
    the clicks, which are all still there. Returns the number of days written."""
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    start = first_day(campaign) if campaign else None
    if campaign is None or start is None:
        return 0
    frozen = frozen_through(campaign_id)
    if frozen is not None:
        start = max(start, frozen + timedelta(days=1))
    if start > through:
        return 0
    with report_transaction():
        series = daily_series(campaign, start, through)
    with transaction.atomic():
        return _upsert_days(campaign_id, series)


def _still_low(campaign: Campaign, current: Figures, alert: KAlert) -> bool:
    """An open episode lasts while K is under the threshold, or under the week-before K
    that opened it less the allowed drop. Without either setting it ends."""
    threshold = campaign.k_alert_threshold
    fraction = campaign.k_alert_drop_fraction
    below = threshold is not None and current.k < float(threshold)
    baseline = alert.previous_k if alert.reason == KAlert.Reason.DROP else None
    dropped = (
        fraction is not None
        and baseline is not None
        and current.k < baseline * (1 - float(fraction))
    )
    return below or dropped


def k_alert_check(*, campaign_id: int, day: date) -> KAlert | None:
    """Compare the 7 days ending `day` with the 7 before; open an episode on a drop
    (and email it once), keep it while K stays low, resolve it when K recovers.

    Returns the episode open after the check, if any. A week without joins says nothing
    about K and changes nothing.
    """
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None:
        return None
    current = figures(campaign, day - timedelta(days=WEEK - 1), day)
    open_alert = KAlert.objects.filter(campaign_id=campaign_id, resolved_at__isnull=True).first()
    if current.participants == 0:
        return open_alert
    if open_alert is not None:
        if _still_low(campaign, current, open_alert):
            KAlert.objects.filter(pk=open_alert.pk).update(last_checked_on=day, last_k=current.k)
            return open_alert
        KAlert.objects.filter(pk=open_alert.pk, resolved_at__isnull=True).update(
            resolved_at=timezone.now(), resolved_k=current.k, last_checked_on=day
        )
        return None
    previous = figures(campaign, day - timedelta(days=2 * WEEK - 1), day - timedelta(days=WEEK))
    threshold, fraction = campaign.k_alert_threshold, campaign.k_alert_drop_fraction
    reason = ""
    if threshold is not None and current.k < float(threshold):
        reason = KAlert.Reason.THRESHOLD
    elif (
        fraction is not None
        and previous.participants > 0
        and previous.k > 0
        and current.k < previous.k * (1 - float(fraction))
    ):
        reason = KAlert.Reason.DROP
    if not reason:
        return None
    has_previous = previous.participants > 0
    alert = KAlert(
        campaign=campaign,
        started_on=day,
        reason=reason,
        factor=fallen_factor(current, previous),
        k=current.k,
        i=current.i,
        c=current.c,
        previous_k=previous.k if has_previous else None,
        previous_i=previous.i if has_previous else None,
        previous_c=previous.c if has_previous else None,
        threshold=threshold,
        drop_fraction=fraction,
        last_checked_on=day,
        last_k=current.k,
    )
    try:
        with transaction.atomic():
            alert.save(force_insert=True)
    except IntegrityError:
        # A concurrent check opened it first (one open episode per campaign), or this
        # day's episode exists already: either way it was emailed by whoever made it.
        return KAlert.objects.filter(campaign_id=campaign_id, resolved_at__isnull=True).first()
    from .tasks import send_k_alert_email

    transaction.on_commit(lambda: send_k_alert_email.delay(alert.pk))
    return alert


def k_alert_email_send(*, alert_id: int) -> bool:
    """Email an alert to its recipients, once: the conditional UPDATE claims it, so two
    workers (or a retried task) cannot both send. Returns whether it was sent now."""
    claimed = KAlert.objects.filter(pk=alert_id, emailed_at__isnull=True).update(
        emailed_at=timezone.now()
    )
    if not claimed:
        return False
    alert = KAlert.objects.select_related("campaign").get(pk=alert_id)
    recipients = alert_recipients()
    if not recipients:
        logger.warning(
            "K-factor alert %s has no recipients: give staff the 'Can receive K-factor "
            "alert emails' permission or set K_ALERT_EMAILS.",
            alert_id,
        )
        return False
    with translation.override(settings.LANGUAGE_CODE):
        text = alert_text(alert)
        url = settings.SITE_URL + reverse(
            "admin:campaigns_campaign_dashboard", args=[alert.campaign_id]
        )
        subject = translation.gettext("K-factor alert: %(campaign)s") % {
            "campaign": alert.campaign.name
        }
        body = f"{text.headline}\n\n{text.detail}\n\n{text.suggestion}\n\n{url}\n"
    try:
        send_mail(subject, body, None, recipients)
    except Exception:
        # Not sent: release the claim so the task's retry can send it.
        KAlert.objects.filter(pk=alert_id).update(emailed_at=None)
        raise
    return True
