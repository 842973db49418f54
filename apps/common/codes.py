"""Invite codes and secret tokens, from `secrets`.

Codes are typed by hand from posters and read aloud, so the alphabet leaves out the
look-alikes 0/o, 1/l/i. Eight characters of 31 give 8.5e11 codes: collisions are rare
and the caller retries on the unique constraint.
"""

from __future__ import annotations

import re
import secrets

CODE_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
CODE_RE = re.compile(rf"^[{CODE_ALPHABET}]{{4,32}}$")
# 24 random bytes: 192 bits, well above the 128 a personal-page token needs.
TOKEN_BYTES = 24
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{32}$")


def new_invite_code(length: int = 8) -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def is_invite_code(value: str) -> bool:
    return bool(CODE_RE.match(value))


def is_token(value: str) -> bool:
    return bool(TOKEN_RE.match(value))
