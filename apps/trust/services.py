"""Writes: the consent texts people agree to, fraud flags after joining, and a person's
review of them (PIPL art. 24: automated decisions keep their reasons and a person can
overturn them).

What a decision changes in the books goes through the reward engine's services: a
review conversion brings the referrer's tiers and the referee's own reward in line
(`referral_standing_changed`), and held-for-review rewards are approved or rejected with
the reason (`rewards_approve`, `rewards_reject`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from apps.campaigns.models import Campaign
from apps.referrals.models import FraudFlag, Participant
from apps.rewards.lifecycle import rewards_approve, rewards_reject
from apps.rewards.models import (
    UNPAID_STATES,
    Conversion,
    ConversionType,
    Reward,
    RewardReason,
    RewardState,
)
from apps.rewards.services import referral_standing_changed

from .models import ConsentText, FraudRule, RuleAction
from .rules import Finding, campaign_rules, flags_for

logger = logging.getLogger(__name__)

Status = Participant.Status
OVERTURN, UPHOLD = "overturned", "upheld"

# --- Consent -----------------------------------------------------------------------------

# (version, language, digest of the words) -> the version recorded: after the first join
# of a process, recording a consent costs nothing.
_consent_versions: dict[tuple[str, str, str], str] = {}


def consent_text_version(*, version: str, language: str, text: str) -> str:
    """Make sure the words shown are stored, and return the version to record with the
    join, so that each consent points to exactly what the person agreed to.

    The words of a (version, language) never change. Should the wording change while
    CONSENT_VERSION stays the same (someone forgot to bump it), the new words are stored
    under "<version>+<digest>" and a warning is logged, rather than pointing people at
    words they never saw.
    """
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    key = (version, language, digest)
    if key in _consent_versions:
        return _consent_versions[key]
    resolved = version
    for candidate in (version, f"{version}+{digest}"[:32]):
        row, _created = _get_or_create_consent(candidate, language, text)
        if row.text == text:
            resolved = candidate
            break
        logger.warning(
            "The consent text for version %s (%s) changed without a new CONSENT_VERSION; "
            "recording it as %s+%s.",
            version,
            language,
            version,
            digest,
        )
    _consent_versions[key] = resolved
    return resolved


def _get_or_create_consent(version: str, language: str, text: str) -> tuple[ConsentText, bool]:
    try:
        with transaction.atomic():
            return ConsentText.objects.get_or_create(
                version=version, language=language, defaults={"text": text}
            )
    except IntegrityError:  # two first joins at once: the other one wrote it
        return ConsentText.objects.get(version=version, language=language), False


# --- Flags after joining, and a person's review -----------------------------------------


@transaction.atomic
def participant_flag(*, participant_id: int, findings: Sequence[Finding], actor: str) -> bool:
    """Record findings of a rule that looked at a participant after they joined (the
    periodic rules). A code already on the participant is not raised again: if a person
    overturned it, their decision stands. The status only ever tightens (active ->
    flagged -> blocked); a person relaxes it. Returns whether a flag was written."""
    participant = (
        Participant.objects.select_for_update().select_related("campaign").get(pk=participant_id)
    )
    seen = set(participant.flags.values_list("code", flat=True))
    new = [f for f in findings if f.code not in seen and f.action != RuleAction.OFF]
    if not new:
        return False
    FraudFlag.objects.bulk_create(flags_for(participant, new))
    before = participant.status
    blocked = any(f.action == RuleAction.BLOCK for f in new)
    after = Status.BLOCKED if blocked or before == Status.BLOCKED else Status.FLAGGED
    if after != before:
        Participant.objects.filter(pk=participant.pk).update(status=after)
        participant.status = after
        reason = "; ".join(f"{f.code}: {f.reason}" for f in new)
        referral_standing_changed(participant=participant, actor=actor, reason=reason)
    return True


def participants_review(
    *, participant_ids: Sequence[int], decision: str, actor: str, note: str = ""
) -> int:
    """A person's decision on participants held by the fraud rules; returns how many
    changed. Each participant is one transaction.

    - `overturned`: the open flags are overturned and the participant counts again:
      rewards held for review because of them are approved (or held until their holding
      period ends), and their referrer's tiers and their own are re-evaluated.
    - `upheld`: the open flags are upheld and the participant is blocked: their unpaid
      rewards, and rewards held for review because of them, are rejected with the reason.
      A participant without open flags gets a `manual` flag, so the decision keeps its
      reason too.
    """
    if decision not in (OVERTURN, UPHOLD):
        raise ValueError(f"unknown decision {decision!r}")
    changed = 0
    for participant_id in participant_ids:
        changed += _review(participant_id, decision=decision, actor=actor, note=note.strip())
    return changed


@transaction.atomic
def _review(participant_id: int, *, decision: str, actor: str, note: str) -> bool:
    participant = (
        Participant.objects.select_for_update()
        .select_related("campaign")
        .filter(pk=participant_id)
        .first()
    )
    if participant is None:
        return False
    now = timezone.now()
    before = participant.status
    open_flags = FraudFlag.objects.filter(participant=participant, resolution="")
    codes = sorted(open_flags.values_list("code", flat=True))
    after = Status.ACTIVE if decision == OVERTURN else Status.BLOCKED
    if not codes and before == after:
        return False
    if decision == UPHOLD and not codes:
        FraudFlag.objects.update_or_create(
            participant=participant,
            code="manual",
            defaults={
                "score": 100,
                "reason": (note or "Blocked by an operator")[:300],
                "action": RuleAction.BLOCK,
                "evidence": {},
                "created_at": now,
                "resolution": "",
                "resolved_by": "",
                "resolved_at": None,
            },
        )
        codes = ["manual"]
        open_flags = FraudFlag.objects.filter(participant=participant, resolution="")
    open_flags.update(
        resolution=decision, resolved_by=actor[:150], resolved_at=now, resolution_note=note[:300]
    )
    if after != before:
        Participant.objects.filter(pk=participant.pk).update(status=after)
        participant.status = after
    what = ", ".join(codes) or "no open flags"
    held_for_them = Reward.objects.filter(
        Q(participant=participant) | Q(referee=participant, reason=RewardReason.REVIEW),
        state=RewardState.PENDING,
    )
    if decision == OVERTURN:
        reason = f"fraud review: {what} overturned" + (f" ({note})" if note else "")
        cleared = held_for_them.filter(participant__status=Status.ACTIVE)
        rewards_approve(
            reward_ids=list(cleared.values_list("pk", flat=True)), actor=actor, reason=reason
        )
    else:
        reason = f"fraud review: {what} upheld" + (f" ({note})" if note else "")
        unpaid = Reward.objects.filter(participant=participant, state__in=UNPAID_STATES)
        rejected = set(unpaid.values_list("pk", flat=True))
        rejected |= set(held_for_them.values_list("pk", flat=True))
        rewards_reject(reward_ids=sorted(rejected), actor=actor, reason=reason)
    if before != after:
        referral_standing_changed(participant=participant, actor=actor, reason=reason)
    return True


# --- The periodic rule: friends who never come back ---------------------------------------


def referral_quality_check(*, campaign_id: int, now: datetime | None = None) -> int:
    """Flag inviters of `campaign_id` whose friends mostly never come back: at least the
    rule's threshold of friends who joined more than its window ago with no verified
    sign-up and no purchase since, making at least its share of those friends. Returns
    how many inviters were flagged now.

    A campaign whose host never reports a verification or a purchase says nothing about
    who comes back, so it is skipped rather than flagging everyone.
    """
    now = now or timezone.now()
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None:
        return 0
    config = campaign_rules(campaign_id)[FraudRule.DEAD_REFERRALS]
    if config.action == RuleAction.OFF:
        return 0
    returning = (ConversionType.SIGNUP_VERIFIED, ConversionType.PURCHASE)
    if not Conversion.objects.filter(campaign_id=campaign_id, type__in=returning).exists():
        return 0
    came_back = Conversion.objects.filter(participant_id=OuterRef("pk"), type__in=returning)
    already = FraudFlag.objects.filter(
        participant_id=OuterRef("referrer_id"), code=FraudRule.DEAD_REFERRALS
    )
    rows = (
        Participant.objects.filter(
            campaign_id=campaign_id,
            referrer__isnull=False,
            joined_at__lt=now - config.window,
        )
        .exclude(Exists(already))
        .values("referrer_id")
        .annotate(friends=Count("id"), dead=Count("id", filter=~Exists(came_back)))
        .filter(dead__gte=config.threshold)
        .order_by("referrer_id")
    )
    flagged = 0
    days = config.window.days
    for row in rows:
        share = row["dead"] / row["friends"]
        if share < config.min_share:
            continue
        finding = Finding(
            code=FraudRule.DEAD_REFERRALS,
            score=config.score,
            reason=(
                f"{row['dead']} of {row['friends']} invited friends never came back "
                f"(no verified sign-up or purchase) {days} days after joining"
            ),
            action=config.action,
            evidence={
                "friends": row["friends"],
                "never_came_back": row["dead"],
                "share": round(share, 3),
                "days": days,
            },
        )
        flagged += participant_flag(
            participant_id=row["referrer_id"], findings=[finding], actor="fraud rules"
        )
    return flagged
