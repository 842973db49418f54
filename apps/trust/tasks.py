"""Trust's background work: thin, taking ids, safe to run twice."""

from __future__ import annotations

from smtplib import SMTPException

from celery import shared_task

from apps.campaigns.models import Campaign

from . import privacy, retention, services


@shared_task(acks_late=True, ignore_result=True)
def purge_old_clicks() -> None:
    """Periodic (nightly, after the snapshots): roll up, then delete, clicks older than
    CLICK_RETENTION_DAYS."""
    retention.clicks_purge()


@shared_task(ignore_result=True)
def check_referral_quality() -> None:
    """Periodic (nightly): one check per campaign that still takes or rewards joins."""
    campaigns = Campaign.objects.exclude(status=Campaign.Status.DRAFT).order_by("pk")
    for campaign_id in campaigns.values_list("pk", flat=True):
        check_campaign_referral_quality.delay(campaign_id)


@shared_task(ignore_result=True)
def check_campaign_referral_quality(campaign_id: int) -> None:
    services.referral_quality_check(campaign_id=campaign_id)


@shared_task(
    autoretry_for=(SMTPException, ConnectionError, TimeoutError),
    retry_backoff=30,
    retry_backoff_max=3600,
    max_retries=6,
    ignore_result=True,
)
def send_data_export(request_id: int) -> None:
    privacy.data_export_send(request_id=request_id)
