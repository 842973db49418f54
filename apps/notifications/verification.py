"""Confirming an email address: the verification link records the qualifying event.

Kept apart from services.py because it calls the rewards services, which themselves
call services.notify_* (an import cycle otherwise).
"""

from __future__ import annotations

from django.db import transaction

from apps.referrals.models import Participant
from apps.rewards.models import ConversionType
from apps.rewards.services import conversion_ingest

from .services import notify_verified

ACTOR = "email verification"


@transaction.atomic
def email_verify(*, participant: Participant) -> bool:
    """The person followed their verification link: record `signup_verified` exactly as
    if the host had posted it (which marks the participant verified and, in a campaign
    that qualifies on it, qualifies them), then send the welcome.

    Returns False when the address was confirmed already. Exactly once however often and
    however concurrently the link is followed: the rewards service locks the participant
    and keeps one verification per participant (a unique constraint); a repeat is a
    replay and changes nothing.
    """
    if participant.verified_at is not None:
        return False
    result = conversion_ingest(
        type=ConversionType.SIGNUP_VERIFIED,
        campaign_slug=participant.campaign.slug,
        participant_id=participant.pk,
        actor=ACTOR,
    )
    if result.replayed:
        return False
    participant.refresh_from_db(fields=["verified_at", "qualified_at"])
    notify_verified(participant=participant)
    return True
