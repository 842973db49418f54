"""Email normalisation for duplicate and self-referral checks.

What the person typed is kept as they typed it; the normalised form only decides whether
two addresses reach the same mailbox: lower case, plus-tags dropped, dots dropped and
googlemail folded into gmail for Google's mailboxes, IDN domains in their ASCII form.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

_GOOGLE = {"gmail.com", "googlemail.com"}


def normalize_email(address: str) -> str:
    """The canonical mailbox of `address`; ValueError when it is not an address."""
    address = address.strip()
    try:
        validate_email(address)
    except ValidationError as exc:
        raise ValueError(f"{address!r} is not an email address") from exc
    local, _, domain = address.rpartition("@")
    domain = domain.rstrip(".").lower()
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError(f"{address!r} has an invalid domain") from exc
    local = local.lower().split("+", 1)[0]
    if domain in _GOOGLE:
        local = local.replace(".", "")
        domain = "gmail.com"
    if not local:
        raise ValueError(f"{address!r} has an empty mailbox name")
    return f"{local}@{domain}"
