"""Writes to the referral tree: joining a campaign, and the click log."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import datetime
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from apps.campaigns.models import Campaign
from apps.common.codes import new_invite_code, new_token
from apps.common.emails import normalize_email
from apps.common.errors import Conflict, FissionError
from apps.rewards.services import conversion_record_signup
from apps.trust.rules import Finding, JoinSignals, flags_for, screen_join, status_for

from . import clickbuffer, clicklines
from .models import Click, FraudFlag, Participant
from .selectors import REFERRER_FIELDS, invite_targets_share

NAME_MAX = Participant._meta.get_field("name").max_length or 100
EXTERNAL_ID_MAX = Participant._meta.get_field("external_id").max_length or 128
CODE_ATTEMPTS = 5


class JoinError(FissionError):
    code = "invalid_join"


class ParticipantBlocked(FissionError):
    """The campaign's fraud rules (or a person reviewing them) blocked this person. The
    participant exists, with the reasons, for an operator to review; the person gets no
    link. The web page does not say which rule: that would teach a cheat what to avoid."""

    code = "participant_blocked"
    status = 403


def refuse_if_blocked(participant: Participant) -> None:
    if participant.status == Participant.Status.BLOCKED:
        raise ParticipantBlocked(
            f"Participant {participant.pk} is blocked by the campaign's fraud rules; an "
            "operator can review the decision in the admin.",
        )


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
        .only(*REFERRER_FIELDS)
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
    client_ip: str = "",
    user_agent: str = "",
    joined_at: datetime | None = None,
    require_open: bool = True,
    ignore_self_referral: bool = False,
) -> tuple[Participant, bool]:
    """Join `campaign`; returns (participant, created).

    The same person again (normalised email or external id) gets their existing row,
    whatever referrer they name now: a referrer is set once, at joining. A referrer must
    be in the same campaign and may not be the person themself: naming one's own code is
    refused, unless `ignore_self_referral` (the public pages, where the code comes from a
    link the person clicked themself: they are only coming back to their own page).

    A live join (no `joined_at`: not history being imported) goes through the campaign's
    fraud rules (apps.trust.rules) with what is known of the client: `client_ip` (hashed
    here, never stored), `visitor_id`, `user_agent` (only its device class is kept). A
    finding is stored as a FraudFlag with the new row, whose status is then flagged or
    blocked; callers refuse a blocked participant (`refuse_if_blocked`).
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
        if not ignore_self_referral:
            raise JoinError(
                "A participant cannot be their own referrer.",
                code="self_referral",
                fields={"referral_code": "is the participant's own code"},
            )
        referrer = None
    if referrer is not None and referrer.campaign_id != campaign.pk:
        raise JoinError(
            "That referrer belongs to another campaign.", code="referral_code_other_campaign"
        )
    if require_open and not campaign.is_open():
        # A closed campaign still gives a returning person their page.
        existing = _existing(campaign, email_normalized, external_id)
        if existing is not None:
            return existing, False
        reason = campaign.closed_reason()
        raise JoinError(
            f"The campaign does not take new participants ({reason}).",
            code=f"campaign_{reason}",
            status=409 if reason in ("paused", "ended") else 400,
        )

    signals = JoinSignals.build(
        email_normalized=email_normalized,
        client_ip=client_ip,
        ip_hash=ip_hash,
        visitor_id=visitor_id,
        user_agent=user_agent,
    )
    findings: list[Finding] = []
    if joined_at is None:
        findings = screen_join(
            campaign=campaign, referrer=referrer, signals=signals, now=timezone.now()
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
        status=status_for(findings),
        join_ip_hash=signals.ip_hash,
        join_network_hash=signals.network_hash,
        join_visitor_id=signals.visitor_id,
        join_ua_class=signals.ua_class,
    )
    qualifies_on_join = campaign.qualifying_event == campaign.QualifyingEvent.SIGNUP
    # Insert first and let the unique constraints find a returning person: one
    # statement for a new participant (the common case), and no window in which two
    # concurrent joins of one person both see "not there yet".
    for _attempt in range(CODE_ATTEMPTS):
        participant.code = new_invite_code(settings.FISSION["INVITE_CODE_LENGTH"])
        participant.token = new_token()
        try:
            # A flagged join writes its flags with the row, all or nothing; an ordinary
            # join stays a single INSERT.
            with transaction.atomic() if findings else nullcontext():
                _insert(participant, qualifies_on_join=qualifies_on_join)
                if findings:
                    FraudFlag.objects.bulk_create(flags_for(participant, findings))
            # The new link is in the invite directory before anyone can click it.
            target = [(participant.code, participant.pk, campaign.pk)]
            transaction.on_commit(partial(invite_targets_share, target))
            return participant, True
        except IntegrityError:
            existing = _existing(campaign, email_normalized, external_id)
            if existing is not None:
                return existing, False
            if not Participant.objects.filter(
                Q(code=participant.code) | Q(token=participant.token)
            ).exists():
                raise
            participant.pk = None  # the random code collided: draw another
    raise FissionError(
        "Could not allocate an invite code; try again.", code="code_exhausted", status=503
    )


def _insert(participant: Participant, *, qualifies_on_join: bool) -> None:
    if qualifies_on_join or connection.in_atomic_block:
        # Inside a caller's transaction a failed INSERT must not poison it; and in a
        # sign-up campaign the join is the qualifying event, granted with the row.
        with transaction.atomic():
            participant.save(force_insert=True)
            if qualifies_on_join:
                conversion_record_signup(participant=participant)
    else:
        participant.save(force_insert=True)


def click_record(
    *,
    campaign_id: int,
    participant_id: int,
    channel: str = "",
    visitor_id: str = "",
    ip_hash: str = "",
    ua_class: str = Click.UserAgentClass.OTHER,
    is_bot: bool = False,
) -> None:
    """Log one visit through an invite link: a single INSERT, or with the click buffer
    (CLICK_BUFFER_URL) a hand-over to this process's sender, and nothing else.

    This runs on every invite click, so it updates no counter and queues no task; the
    figures that need clicks (visitors, funnels) are computed from this log. Buffered
    clicks reach the log within seconds (apps.referrals.clickbuffer); when the buffer
    cannot be reached the sender inserts them itself, so none is lost.
    """
    values: dict[str, Any] = {
        "campaign_id": campaign_id,
        "participant_id": participant_id,
        "channel": channel[:32],
        "visitor_id": visitor_id[:64],
        "ip_hash": ip_hash[:64],
        "ua_class": ua_class if ua_class in _UA_CLASSES else "other",
        "is_bot": is_bot,
    }
    if not clickbuffer.enabled():
        _click_insert({**values, "created_at": timezone.now()})
        return
    clickbuffer.queue(clicklines.line(**values))


_UA_CLASSES = frozenset(Click.UserAgentClass.values)
_CLICK_COLUMNS = (
    "campaign_id", "participant_id", "channel", "visitor_id", "ip_hash", "ua_class", "is_bot",
    "created_at",
)  # fmt: skip
_CLICK_FIELDS = [
    next(f for f in Click._meta.concrete_fields if f.attname == column) for column in _CLICK_COLUMNS
]
# Raw SQL: on the hottest path the ORM's save machinery costs more than the INSERT.
_CLICK_INSERT = (
    f"INSERT INTO {Click._meta.db_table} ({', '.join(_CLICK_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join(['%s'] * len(_CLICK_COLUMNS))})"
)


def _click_insert(row: dict[str, Any]) -> None:
    """One click, unbuffered (no buffer_id: only buffered clicks need one)."""
    params = [f.get_db_prep_value(row[f.attname], connection) for f in _CLICK_FIELDS]
    with connection.cursor() as cursor:
        cursor.execute(_CLICK_INSERT, params)


def participant_withdraw_consent(*, participant: Participant) -> bool:
    """The person wants no more messages; they stay in the campaign and keep their page.

    Idempotent: the first withdrawal's time is kept. Returns whether this call withdrew.
    """
    now = timezone.now()
    changed = Participant.objects.filter(
        pk=participant.pk, consent_withdrawn_at__isnull=True
    ).update(consent_withdrawn_at=now)
    if changed:
        participant.consent_withdrawn_at = now
    return bool(changed)
