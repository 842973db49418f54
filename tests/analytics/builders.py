"""Small builders for analytics tests: joins at given times, clicks, bulk trees."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from apps.campaigns.models import Campaign
from apps.common.codes import new_invite_code, new_token
from apps.referrals.models import Click, Participant
from tests.factories import join

# A fixed local moment far enough in the past that every cohort from it is mature.
T0 = datetime(2025, 3, 1, 10, 0, tzinfo=timezone.get_default_timezone())


def at(*, days: float = 0, hours: float = 0) -> datetime:
    return T0 + timedelta(days=days, hours=hours)


def join_at(
    campaign: Campaign, name: str, when: datetime, referrer: Participant | None = None
) -> Participant:
    return join(campaign, name, referrer=referrer, joined_at=when)


def click(
    participant: Participant,
    visitor: str,
    when: datetime = T0,
    *,
    is_bot: bool = False,
    channel: str = "",
) -> Click:
    return Click.objects.create(
        campaign_id=participant.campaign_id,
        participant=participant,
        visitor_id=visitor,
        created_at=when,
        is_bot=is_bot,
        channel=channel,
        ua_class="bot" if is_bot else "mobile",
    )


def bulk_people(
    campaign: Campaign,
    count: int,
    *,
    referrer: Participant | None = None,
    when: datetime = T0,
    prefix: str = "p",
) -> list[Participant]:
    """`count` participants in one INSERT (for the oracle sizes; the tree fields are the
    ones participant_join would write)."""
    people = [
        Participant(
            campaign=campaign,
            email=f"{prefix}{n}@example.com",
            email_normalized=f"{prefix}{n}@example.com",
            name=f"{prefix}{n}",
            code=new_invite_code(),
            token=new_token(),
            referrer=referrer,
            depth=referrer.depth + 1 if referrer else 0,
            path=referrer.path_for_children if referrer else "",
            joined_at=when,
        )
        for n in range(count)
    ]
    return Participant.objects.bulk_create(people)


def bulk_clicks(participant: Participant, visitors: int, *, when: datetime = T0) -> None:
    Click.objects.bulk_create(
        Click(
            campaign_id=participant.campaign_id,
            participant=participant,
            visitor_id=f"v{n}",
            created_at=when,
        )
        for n in range(visitors)
    )
