"""Periodic jobs of analytics: thin, taking ids, safe to run twice.

The beat schedule (config/settings.py) runs `snapshot_all` and `check_k_alerts` a little
after local midnight, for the day that just ended. Each fans out one task per campaign,
so one slow campaign does not hold up the rest.
"""

from __future__ import annotations

from datetime import date, timedelta
from smtplib import SMTPException

from celery import shared_task
from django.utils import timezone

from . import rollup, selectors, services


def _yesterday() -> date:
    return timezone.localdate() - timedelta(days=1)


@shared_task
def snapshot_all() -> None:
    through = _yesterday().isoformat()
    for campaign_id in selectors.campaigns_to_snapshot():
        snapshot_campaign.delay(campaign_id, through)


@shared_task
def snapshot_campaign(campaign_id: int, through: str, rebuild: bool = False) -> None:
    services.snapshot_campaign(
        campaign_id=campaign_id, through=date.fromisoformat(through), rebuild=rebuild
    )


@shared_task
def check_k_alerts() -> None:
    day = _yesterday().isoformat()
    for campaign_id in selectors.campaigns_to_check():
        check_k_alert.delay(campaign_id, day)


@shared_task
def check_k_alert(campaign_id: int, day: str) -> None:
    services.k_alert_check(campaign_id=campaign_id, day=date.fromisoformat(day))


@shared_task(
    autoretry_for=(SMTPException, ConnectionError, TimeoutError),
    retry_backoff=30,
    retry_backoff_max=3600,
    max_retries=6,
)
def send_k_alert_email(alert_id: int) -> None:
    services.k_alert_email_send(alert_id=alert_id)


@shared_task(ignore_result=True)
def roll_up_reports() -> None:
    """Periodic (every minute): fold new participants and clicks into the K-factor
    report's tallies (apps.analytics.rollup). Two at once wait for each other."""
    rollup.report_rollup()
