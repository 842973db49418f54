"""Writes to the referral tree: joining a campaign."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.campaigns.models import Campaign
from apps.common.codes import new_invite_code, new_token
from apps.common.emails import normalize_email
from apps.common.errors import Conflict, FissionError
from apps.rewards.services import conversion_record_signup

from .models import Participant

NAME_MAX = Participant._meta.get_field("name").max_length or 100
EXTERNAL_ID_MAX = Participant._meta.get_field("external_id").max_length or 128
CODE_ATTEMPTS = 5


class JoinError(FissionError):
    code = "invalid_join"


def _existing(
    campaign: Campaign, email_normalized: str, external_id: str | None
) -> Participant | None:
    by_email = Participant.objects.filter(
        campaign=campaign, email_normalized=email_normalized
    ).first()
    by_external = (
        Participant.objects.filter(campaign=campaign, external_id=external_id).first()
        if external_id
        else None
    )
    if by_email and by_external and by_email.pk != by_external.pk:
        raise Conflict(
            "This email and this external_id belong to two different participants.",
            code="identity_conflict",
            fields={
                "email": "registered to another participant",
                "external_id": "registered to another participant",
            },
        )
    return by_email or by_external


def resolve_referrer(campaign: Campaign, referral_code: str) -> Participant:
    """The participant whose invite code this is, in this campaign."""
    referrer = (
        Participant.objects.filter(code=referral_code.strip().lower())
        .only("id", "campaign_id", "email_normalized", "depth", "path", "status", "name", "code")
        .first()
        if referral_code
        else None
    )
    if referrer is None:
        raise JoinError(
            f"No participant has the referral code {referral_code!r}.",
            code="unknown_referral_code",
            fields={"referral_code": "unknown code"},
        )
    if referrer.campaign_id != campaign.pk:
        raise JoinError(
            "That referral code belongs to another campaign.",
            code="referral_code_other_campaign",
            fields={"referral_code": "belongs to another campaign"},
        )
    return referrer


def participant_join(
    *,
    campaign: Campaign,
    email: str,
    name: str = "",
    external_id: str | None = None,
    referrer: Participant | None = None,
    consent: bool,
    consent_version: str = "",
    channel: str = "",
    language: str = "",
    ip_hash: str = "",
    visitor_id: str = "",
    joined_at: datetime | None = None,
    require_open: bool = True,
) -> tuple[Participant, bool]:
    """Join `campaign`; returns (participant, created).

    The same person again (normalised email or external id) gets their existing row,
    whatever referrer they name now: a referrer is set once, at joining. A referrer must
    be in the same campaign and may not be the person themself.
    """
    problems: dict[str, str] = {}
    try:
        email_normalized = normalize_email(email)
    except ValueError:
        problems["email"] = "not a valid email address"
        email_normalized = ""
    name = name.strip()
    if len(name) > NAME_MAX:
        problems["name"] = f"at most {NAME_MAX} characters"
    if external_id is not None:
        external_id = external_id.strip() or None
        if external_id and len(external_id) > EXTERNAL_ID_MAX:
            problems["external_id"] = f"at most {EXTERNAL_ID_MAX} characters"
    if not consent:
        problems["consent"] = "the participant must agree to the terms"
    if problems:
        raise JoinError(
            "The registration is not valid: " + "; ".join(f"{k} {v}" for k, v in problems.items()),
            fields=problems,
        )
    if referrer is not None and referrer.email_normalized == email_normalized:
        raise JoinError(
            "A participant cannot be their own referrer.",
            code="self_referral",
            fields={"referral_code": "is the participant's own code"},
        )
    existing = _existing(campaign, email_normalized, external_id)
    if existing is not None:
        return existing, False
    if require_open and not campaign.is_open():
        reason = campaign.closed_reason()
        raise JoinError(
            f"The campaign does not take new participants ({reason}).",
            code=f"campaign_{reason}",
            status=409 if reason in ("paused", "ended") else 400,
        )
    if referrer is not None and referrer.campaign_id != campaign.pk:
        raise JoinError(
            "That referrer belongs to another campaign.", code="referral_code_other_campaign"
        )

    participant = Participant(
        campaign=campaign,
        email=email.strip(),
        email_normalized=email_normalized,
        name=name,
        external_id=external_id,
        referrer=referrer,
        depth=referrer.depth + 1 if referrer else 0,
        path=referrer.path_for_children if referrer else "",
        channel=channel[:32],
        language=language[:10],
        consent_at=timezone.now(),
        consent_version=consent_version[:32],
        joined_at=joined_at or timezone.now(),
        join_ip_hash=ip_hash,
        join_visitor_id=visitor_id,
    )
    for _attempt in range(CODE_ATTEMPTS):
        participant.code = new_invite_code(settings.FISSION["INVITE_CODE_LENGTH"])
        participant.token = new_token()
        try:
            with transaction.atomic():
                participant.save(force_insert=True)
                # Sign-up campaigns: the join is the qualifying event (rewards, tiers).
                conversion_record_signup(participant=participant)
            return participant, True
        except IntegrityError:
            # Either the same person joined at the same moment (their row wins and is
            # returned), or the random code collided (try another).
            existing = _existing(campaign, email_normalized, external_id)
            if existing is not None:
                return existing, False
            participant.pk = None
    raise FissionError(
        "Could not allocate an invite code; try again.", code="code_exhausted", status=503
    )
