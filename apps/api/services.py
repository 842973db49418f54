from __future__ import annotations

import secrets

from .models import ApiKey, hash_key

KEY_PREFIX = "fsn_"


def api_key_create(*, name: str) -> tuple[ApiKey, str]:
    """A new key; returns the row and the key itself, which is not stored anywhere."""
    name = name.strip()
    if not name:
        raise ValueError("an API key needs a name")
    key = KEY_PREFIX + secrets.token_urlsafe(24)
    api_key = ApiKey.objects.create(name=name[:100], prefix=key[:10], key_hash=hash_key(key))
    return api_key, key
