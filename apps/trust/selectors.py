"""Reads: everything held about a person, as JSON (the data-subject export), and the
consent text a participant agreed to.

The export holds everything about the person and nothing about anyone else. Of the
people around them it shows what their personal page shows: their inviter's and their
friends' first names. Clicks on their invite link are other people's visits, so only
their number is given. Rewards earned through a friend keep their amount and state but
not the friend's order number.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Count, Prefetch, prefetch_related_objects
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
    rows an operator selected): a fixed number of queries however many rows."""
    rows = list(participants)
    related = _Related.load(rows)
    return {
        "format": EXPORT_FORMAT,
        "exported_at": timezone.now().isoformat(),
        "site": settings.SITE_URL,
        "participations": [_participation(p, related) for p in rows],
    }


@dataclass
class _Related:
    """Everything the export shows of the participants' own rows, read once for all of
    them and grouped by participant (the campaign and referrer come with the rows)."""

    consent_texts: dict[tuple[str, str], str]
    friends: dict[int, list[str]]
    qualified: dict[int, int]
    flags: dict[int, list[FraudFlag]]
    events: dict[int, list[Conversion]]
    rewards: dict[int, list[Reward]]
    visits: dict[tuple[int, str], list[Click]]
    link_clicks: dict[int, list[tuple[str, int]]]
    messages: dict[int, list[Message]]

    @classmethod
    def load(cls, rows: list[Participant]) -> _Related:
        ids = [p.pk for p in rows]
        prefetch_related_objects(rows, "campaign__tiers")  # what the progress reads
        versions = {p.consent_version for p in rows if p.consent_version}
        visitors = {p.join_visitor_id for p in rows if p.join_visitor_id}
        friends = Participant.objects.filter(referrer_id__in=ids).order_by("joined_at", "id")
        qualified = (
            friends.filter(qualified_at__isnull=False, status=Participant.Status.ACTIVE)
            .order_by()
            .values_list("referrer_id")
            .annotate(n=Count("id"))
        )
        clicks = (
            Click.objects.filter(participant_id__in=ids, is_bot=False)
            .values_list("participant_id", "channel")
            .annotate(n=Count("id"))
            .order_by()
        )
        visits = Click.objects.filter(
            campaign_id__in={p.campaign_id for p in rows}, visitor_id__in=visitors
        )
        rewards = Reward.objects.filter(participant_id__in=ids).prefetch_related(
            Prefetch("transitions", queryset=RewardTransition.objects.order_by("id"))
        )
        return cls(
            consent_texts={
                (t.version, t.language): t.text
                for t in ConsentText.objects.filter(version__in=versions)
            },
            friends=_grouped(friends.values_list("referrer_id", "name")),
            qualified=dict(qualified),
            flags=_grouped(
                (f.participant_id, f)
                for f in FraudFlag.objects.filter(participant_id__in=ids).order_by(
                    "created_at", "id"
                )
            ),
            events=_grouped(
                (c.participant_id, c)
                for c in Conversion.objects.filter(participant_id__in=ids)
                .exclude(type=ConversionType.REVIEW)
                .order_by("occurred_at", "id")
            ),
            rewards=_grouped((r.participant_id, r) for r in rewards.order_by("id")),
            visits=_grouped(
                ((c.campaign_id, c.visitor_id), c) for c in visits.order_by("created_at", "id")
            )
            if visitors
            else {},
            link_clicks=_grouped((pk, (channel, n)) for pk, channel, n in clicks),
            messages=_grouped(
                (m.participant_id, m)
                for m in Message.objects.filter(participant_id__in=ids).order_by("created_at", "id")
            ),
        )


def _grouped(pairs: Iterable[tuple[Any, Any]]) -> dict[Any, list[Any]]:
    groups: dict[Any, list[Any]] = defaultdict(list)
    for key, value in pairs:
        groups[key].append(value)
    return groups


def _participation(p: Participant, related: _Related) -> dict[str, Any]:
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
            "text": related.consent_texts.get((p.consent_version, p.language)),
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
            {"first_name": public_name(name)} for name in related.friends.get(p.pk, [])
        ],
        "progress": _progress(p, related.qualified.get(p.pk, 0)),
        "fraud_checks": [_flag(f) for f in related.flags.get(p.pk, [])],
        "events": [_event(c) for c in related.events.get(p.pk, [])],
        "rewards": _rewards(p, related.rewards.get(p.pk, [])),
        "visits_from_your_browser": _own_visits(
            related.visits.get((p.campaign_id, p.join_visitor_id), []) if p.join_visitor_id else []
        ),
        "clicks_on_your_invite_link": _link_clicks(related.link_clicks.get(p.pk, [])),
        "messages_sent_to_you": [
            {
                "kind": m.kind,
                "subject": m.subject,
                "language": m.language,
                "status": m.status,
                "created_at": _iso(m.created_at),
                "sent_at": _iso(m.sent_at),
            }
            for m in related.messages.get(p.pk, [])
        ],
    }


def _progress(p: Participant, qualified: int) -> dict[str, Any]:
    progress = participant_progress(p, qualified)
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


def _rewards(p: Participant, rewards: list[Reward]) -> list[dict[str, Any]]:
    out = []
    for r in rewards:
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


def _own_visits(clicks: list[Click]) -> list[dict[str, Any]]:
    """Visits through invite links of this campaign from the browser the person joined
    with (its visitor cookie)."""
    return [
        {
            "at": _iso(c.created_at),
            "channel": c.channel or None,
            "device_class": c.ua_class,
            "ip_hash": c.ip_hash or None,
            "visitor_id": c.visitor_id,
        }
        for c in clicks
    ]


def _link_clicks(rows: list[tuple[str, int]]) -> dict[str, Any]:
    """Other people's visits through the person's link: counted, never listed."""
    channels = {channel or "direct": n for channel, n in sorted(rows)}
    return {"total": sum(channels.values()), "by_channel": channels}
