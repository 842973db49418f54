"""Factories and personas: alice refers bob, bob refers carol, mallory cheats."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import factory
from factory.django import DjangoModelFactory

from apps.campaigns.models import Campaign, CommissionLevel, LandingCopy, RefereeReward, RewardTier
from apps.common.codes import new_invite_code, new_token
from apps.referrals.models import Participant
from apps.referrals.services import participant_join


class CampaignFactory(DjangoModelFactory):
    class Meta:
        model = Campaign

    slug = factory.Sequence(lambda n: f"campaign-{n}")
    name = factory.Sequence(lambda n: f"Campaign {n}")
    status = Campaign.Status.ACTIVE
    qualifying_event = Campaign.QualifyingEvent.SIGNUP


class RewardTierFactory(DjangoModelFactory):
    class Meta:
        model = RewardTier

    campaign = factory.SubFactory(CampaignFactory)
    threshold = 3
    kind = "coupon"
    amount = Decimal("50.00")
    currency = "CNY"
    description = factory.LazyAttribute(lambda o: f"{o.amount} {o.currency} coupon")


class RefereeRewardFactory(DjangoModelFactory):
    class Meta:
        model = RefereeReward

    campaign = factory.SubFactory(CampaignFactory)
    kind = "coupon"
    amount = Decimal("20.00")
    currency = "CNY"
    description = "20 CNY off"


class CommissionLevelFactory(DjangoModelFactory):
    class Meta:
        model = CommissionLevel

    campaign = factory.SubFactory(CampaignFactory)
    level = 1
    percent = Decimal("10.00")


class LandingCopyFactory(DjangoModelFactory):
    class Meta:
        model = LandingCopy

    campaign = factory.SubFactory(CampaignFactory)
    language = "en"
    headline = "Invite friends, earn rewards"
    body = "Share your link."
    reward_text = "You both get 20 CNY."


class ParticipantFactory(DjangoModelFactory):
    """A bare node (no referrer); use `join()` for one made the way the product makes them."""

    class Meta:
        model = Participant

    campaign = factory.SubFactory(CampaignFactory)
    email = factory.Sequence(lambda n: f"person{n}@example.com")
    email_normalized = factory.LazyAttribute(lambda o: o.email.lower())
    name = factory.Sequence(lambda n: f"Person {n}")
    code = factory.LazyFunction(new_invite_code)
    token = factory.LazyFunction(new_token)


def join(
    campaign: Campaign, name: str, referrer: Participant | None = None, **kwargs: Any
) -> Participant:
    """`name` joins `campaign` through the real service; email is <name>@example.com."""
    kwargs.setdefault("email", f"{name.lower()}@example.com")
    kwargs.setdefault("consent", True)
    participant, _ = participant_join(
        campaign=campaign, name=name.title(), referrer=referrer, require_open=False, **kwargs
    )
    return participant
