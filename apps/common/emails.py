"""Email normalisation for duplicate and self-referral checks.

What the person typed is kept as they typed it; the normalised form only decides whether
two addresses reach the same mailbox: lower case, plus-tags dropped, dots dropped and
googlemail folded into gmail for Google's mailboxes, IDN domains in their ASCII form.

Domains go through UTS #46 mapping and IDNA 2008 (the `idna` package), not Python's
built-in IDNA 2003 codec: that codec maps "faß.de" to "fass.de", which since 2010 is
another registered domain than "faß.de" (xn--fa-hia.de), so two different mailboxes
would look like one. The mapping also folds what phones type in Chinese and Japanese
input modes: full-width letters and the ideographic full stop ("例え。jp").
"""

from __future__ import annotations

import idna
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

_GOOGLE = {"gmail.com", "googlemail.com"}


def ascii_domain(domain: str) -> str:
    """`domain` in lower-case ASCII (punycode for IDN labels), without a trailing root
    dot; ValueError when it cannot be a domain name."""
    try:
        mapped = idna.uts46_remap(domain.strip(), std3_rules=False, transitional=False)
        mapped = mapped.rstrip(".")
        return idna.encode(mapped, uts46=False).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError) as exc:
        raise ValueError(f"{domain!r} is not a valid domain") from exc


def normalize_email(address: str) -> str:
    """The canonical mailbox of `address`; ValueError when it is not an address."""
    address = address.strip()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"{address!r} is not an email address")
    domain = ascii_domain(domain)
    try:
        validate_email(f"{local}@{domain}")
    except ValidationError as exc:
        raise ValueError(f"{address!r} is not an email address") from exc
    local = local.lower().split("+", 1)[0]
    if domain in _GOOGLE:
        local = local.replace(".", "")
        domain = "gmail.com"
    if not local:
        raise ValueError(f"{address!r} has an empty mailbox name")
    return f"{local}@{domain}"


def email_domain(normalized: str) -> str:
    """The domain part of a normalised address."""
    return normalized.rpartition("@")[2]
