"""Invite codes, secret tokens and random ids, from the operating system's randomness.

Codes are typed by hand from posters and read aloud, so the alphabet leaves out the
look-alikes 0/o, 1/l/i. Eight characters of 31 give 8.5e11 codes: collisions are rare
and the caller retries on the unique constraint.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import threading
import uuid

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


# --- Random ids on the invite redirect ---------------------------------------------------
# Every invite click makes two random ids (its buffer id, and a new visitor's cookie id).
# `secrets` asks the kernel once per id, a system call that costs more than the rest of
# making the id; these read POOL_BYTES of the same randomness at a time, per thread, and
# hand each byte out once. A forked child starts with empty pools, so that it never hands
# out its parent's bytes.
POOL_BYTES = 4096


class _Pool(threading.local):
    data = b""
    offset = 0
    generation = -1


_pool = _Pool()
_generation = 0


def _after_fork() -> None:
    global _generation
    _generation += 1


os.register_at_fork(after_in_child=_after_fork)


def random_bytes(count: int) -> bytes:
    """`count` bytes from os.urandom, as `secrets.token_bytes`."""
    if count > POOL_BYTES:
        return os.urandom(count)
    pool = _pool
    start = pool.offset
    if pool.generation != _generation or start + count > len(pool.data):
        pool.data, pool.generation, start = os.urandom(POOL_BYTES), _generation, 0
    pool.offset = start + count
    return pool.data[start : start + count]


def random_urlsafe(count: int) -> str:
    """`count` random bytes in URL-safe base64, as `secrets.token_urlsafe(count)`."""
    return base64.urlsafe_b64encode(random_bytes(count)).rstrip(b"=").decode("ascii")


def random_uuid() -> uuid.UUID:
    """A random (version 4) UUID, as `uuid.uuid4()`."""
    return uuid.UUID(bytes=random_bytes(16), version=4)
