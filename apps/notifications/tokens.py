"""Signed links in emails: confirming an address (expires) and unsubscribing (does not).

Both are signed with SECRET_KEY (and still read with SECRET_KEY_FALLBACKS during a key
rotation), each with its own salt, so that neither can be made from the other or from
a cookie. They hold a participant id, which is not a secret; the signature is what
makes a link work.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core import signing

from apps.referrals.models import Participant

VERIFY_SALT = "fission.notifications.verify"
UNSUBSCRIBE_SALT = "fission.notifications.unsubscribe"


def email_tag(participant: Participant) -> str:
    """A short digest of the address a verification link was sent to: the link confirms
    that address only (it stops working if the address is changed or erased)."""
    return hashlib.sha256(participant.email_normalized.encode()).hexdigest()[:12]


def verify_token(participant: Participant) -> str:
    return signing.dumps({"p": participant.pk, "e": email_tag(participant)}, salt=VERIFY_SALT)


@dataclass(frozen=True)
class VerifyLink:
    participant_id: int
    email_tag: str
    expired: bool


def verify_token_read(token: str) -> VerifyLink | None:
    """What a verification link says, or None when it was not made here (tampered,
    cut short). An expired link is still read, so that its page can say so."""
    max_age = settings.FISSION["VERIFY_LINK_MAX_AGE_HOURS"] * 3600
    expired = False
    try:
        data: Any = signing.loads(token, salt=VERIFY_SALT, max_age=max_age)
    except signing.SignatureExpired:
        expired = True
        try:
            data = signing.loads(token, salt=VERIFY_SALT)
        except signing.BadSignature:
            return None
    except (signing.BadSignature, ValueError):
        return None
    if not (isinstance(data, dict) and isinstance(data.get("p"), int)):
        return None
    return VerifyLink(participant_id=data["p"], email_tag=str(data.get("e", "")), expired=expired)


def unsubscribe_token(participant: Participant) -> str:
    return signing.Signer(salt=UNSUBSCRIBE_SALT).sign(str(participant.pk))


def unsubscribe_token_read(token: str) -> int | None:
    """The participant an unsubscribe link is for, or None when it was not made here.
    It never expires: an email read a year later must still be able to stop the next."""
    try:
        value = signing.Signer(salt=UNSUBSCRIBE_SALT).unsign(token)
    except signing.BadSignature:
        return None
    return int(value) if value.isdigit() else None
