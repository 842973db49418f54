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


def api_key_rotate_signing_secret(*, api_key: ApiKey) -> str:
    """A new signing secret for the key's events; returns it (shown once). The previous
    one stays valid until `api_key_finish_rotation`, so the host can switch over."""
    from .signatures import new_secret

    api_key.previous_signing_secret = api_key.signing_secret
    api_key.signing_secret = new_secret()
    api_key.save(update_fields=["signing_secret", "previous_signing_secret"])
    return api_key.signing_secret


def api_key_finish_rotation(*, api_key: ApiKey) -> None:
    api_key.previous_signing_secret = ""
    api_key.save(update_fields=["previous_signing_secret"])
