"""Reads: everything held about a person, as JSON (the data-subject export), and the
consent text a participant agreed to.

The export holds everything about the person and nothing about anyone else. Of the
people around them it shows what their personal page shows: their inviter's and their
friends' first names. Clicks on their invite link are other people's visits, so only
their number is given. Rewards earned through a friend keep their amount and state but
not the friend's order number.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Count, Prefetch
from django.utils import timezone

from apps.common.money import format_amount
from apps.common.names import public_name
from apps.notifications.models import Message
from apps.referrals.models import Click, FraudFlag, Participant
from apps.referrals.selectors import participant_progress
from apps.rewards.models import Conversion, ConversionType, Reward, RewardTransition

from .models import ConsentText

EXPORT_FORMAT = "fission.personal-data/1"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def consent_text(participant: Participant) -> str | None:
    """The words the participant agreed to, if the join recorded them."""
    row = ConsentText.objects.filter(
        version=participant.consent_version, language=participant.language
    ).first()
    return row.text if row else None


def same_person(participant: Participant) -> list[Participant]:
    """Every participant row of the same mailbox (one per campaign), oldest first: what
    the person behind this page is, across campaigns."""
    return list(
        Participant.objects.filter(email_normalized=participant.email_normalized)
        .select_related("campaign", "referrer")
        .order_by("joined_at", "id")
    )


def person_export(participants: Iterable[Participant]) -> dict[str, Any]:
    """The data-subject export of these participant rows (the same person's, or the
    rows an operator selected)."""
    rows = list(participants)
    return {
        "format": EXPORT_FORMAT,
        "exported_at": timezone.now().isoformat(),
        "site": settings.SITE_URL,
        "participations": [_participation(p) for p in rows],
    }


def _participation(p: Participant) -> dict[str, Any]:
    campaign = p.campaign
    referrer = p.referrer if p.referrer_id else None
    return {
        "campaign": {"slug": campaign.slug, "name": campaign.name},
        "participant": {
            "id": p.pk,
            "email": p.email,
            "email_normalized": p.email_normalized,
            "name": p.name,
            "external_id": p.external_id,
            "invite_code": p.code,
            "invite_url": f"{settings.SITE_URL}/r/{p.code}",
            "joined_at": _iso(p.joined_at),
            "joined_through": p.channel,
            "language": p.language,
            "depth": p.depth,
            "status": p.status,
            "verified_at": _iso(p.verified_at),
            "qualified_at": _iso(p.qualified_at),
        },
        "consent": {
            "given_at": _iso(p.consent_at),
            "version": p.consent_version,
            "text": consent_text(p),
            "withdrawn_at": _iso(p.consent_withdrawn_at),
        },
        # What the fraud rules keep of the joining browser: keyed hashes and a class,
        # never the address or the full user agent.
        "join_signals": {
            "ip_hash": p.join_ip_hash or None,
            "network_hash": p.join_network_hash or None,
            "visitor_id": p.join_visitor_id or None,
            "device_class": p.join_ua_class or None,
        },
        "invited_by": {"first_name": public_name(referrer.name)} if referrer else None,
        "friends_invited": [
            {"first_name": public_name(name)}
            for name in p.referrals.order_by("joined_at", "id").values_list("name", flat=True)
        ],
        "progress": _progress(p),
        "fraud_checks": [_flag(f) for f in p.flags.order_by("created_at", "id")],
        "events": [_event(c) for c in _own_events(p)],
        "rewards": _rewards(p),
        "visits_from_your_browser": _own_visits(p),
        "clicks_on_your_invite_link": _link_clicks(p),
        "messages_sent_to_you": [
            {
                "kind": m.kind,
                "subject": m.subject,
                "language": m.language,
                "status": m.status,
                "created_at": _iso(m.created_at),
                "sent_at": _iso(m.sent_at),
            }
            for m in Message.objects.filter(participant=p).order_by("created_at", "id")
        ],
    }


def _progress(p: Participant) -> dict[str, Any]:
    progress = participant_progress(p)
    return {
        "qualified_friends": progress["qualified_referrals"],
        "next_tier": progress["next_tier"],
    }


def _flag(flag: FraudFlag) -> dict[str, Any]:
    return {
        "code": flag.code,
        "score": flag.score,
        "reason": flag.reason,
        "evidence": flag.evidence,
        "decided_by": "fraud rules" if flag.code != "manual" else "an operator",
        "action": flag.action,
        "created_at": _iso(flag.created_at),
        "review": flag.resolution or None,
        "reviewed_at": _iso(flag.resolved_at),
        "review_note": flag.resolution_note or None,
    }


def _own_events(p: Participant) -> list[Conversion]:
    return list(
        Conversion.objects.filter(participant=p)
        .exclude(type=ConversionType.REVIEW)
        .order_by("occurred_at", "id")
    )


def _event(c: Conversion) -> dict[str, Any]:
    return {
        "type": c.type,
        "order_id": c.order_id or None,
        "amount": None if c.amount is None else format_amount(c.amount, c.currency),
        "currency": c.currency or None,
        "occurred_at": _iso(c.occurred_at),
        "received_at": _iso(c.received_at),
        "status": c.status,
        "note": c.note or None,
    }


def _rewards(p: Participant) -> list[dict[str, Any]]:
    rewards = Reward.objects.filter(participant=p).prefetch_related(
        Prefetch("transitions", queryset=RewardTransition.objects.order_by("id"))
    )
    out = []
    for r in rewards.order_by("id"):
        # A tier or commission is earned through a friend: their order number is theirs.
        own = r.referee_id == p.pk
        out.append(
            {
                "id": r.pk,
                "source": r.source,
                "level": r.level,
                "tier_threshold": r.tier_threshold,
                "kind": r.kind,
                "amount": format_amount(r.amount, r.currency),
                "currency": r.currency,
                "state": r.state,
                "order_id": (r.order_id or None) if own else None,
                "correction_of": r.adjusts_id,
                "created_at": _iso(r.created_at),
                "approved_at": _iso(r.approved_at),
                "paid_at": _iso(r.paid_at),
                "payout_reference": r.payout_reference or None,
                "history": [
                    {"from": t.from_state or None, "to": t.to_state, "at": _iso(t.created_at)}
                    for t in r.transitions.all()
                ],
            }
        )
    return out


def _own_visits(p: Participant) -> list[dict[str, Any]]:
    """Visits through invite links of this campaign from the browser the person joined
    with (its visitor cookie)."""
    if not p.join_visitor_id:
        return []
    clicks = Click.objects.filter(campaign_id=p.campaign_id, visitor_id=p.join_visitor_id)
    return [
        {
            "at": _iso(c.created_at),
            "channel": c.channel or None,
            "device_class": c.ua_class,
            "ip_hash": c.ip_hash or None,
            "visitor_id": c.visitor_id,
        }
        for c in clicks.order_by("created_at", "id")
    ]


def _link_clicks(p: Participant) -> dict[str, Any]:
    """Other people's visits through the person's link: counted, never listed."""
    rows = (
        Click.objects.filter(participant=p, is_bot=False)
        .values_list("channel")
        .annotate(n=Count("id"))
        .values_list("channel", "n")
        .order_by()
    )
    channels = {channel or "direct": n for channel, n in sorted(rows)}
    return {"total": sum(channels.values()), "by_channel": channels}
