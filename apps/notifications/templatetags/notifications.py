"""`{% verification_notice participant %}`: the personal page's "check your inbox" box,
shown until the participant confirms the address a verification email was sent to."""

from __future__ import annotations

from typing import Any

from django import template

from apps.referrals.models import Participant

from ..selectors import awaiting_verification

register = template.Library()


def masked(email: str) -> str:
    """Enough of the address to recognise it, not enough to learn it from the page (whose
    address anyone holding the link can open): "a***@example.com"."""
    local, _at, domain = email.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


@register.inclusion_tag("notifications/verification_notice.html", takes_context=True)
def verification_notice(context: dict[str, Any], participant: Participant) -> dict[str, Any]:
    if not awaiting_verification(participant):
        return {"show": False}
    return {
        "show": True,
        "participant": participant,
        "masked_email": masked(participant.email),
        "no_consent": participant.consent_withdrawn_at is not None,
        "csrf_token": context.get("csrf_token", ""),
    }
