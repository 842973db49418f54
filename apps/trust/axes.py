"""django-axes hooks: what its log lines say about a client."""

from __future__ import annotations

from typing import Any

from apps.common.ip import ip_hash


def client_str(
    username: str | None,
    ip_address: str | None,
    user_agent: str | None,
    path_info: Any,
    request: Any = None,
) -> str:
    """How a failed or locked-out admin login is described in the log: the username
    tried and the keyed hash of the address (the raw address is never written down)."""
    path = path_info[0] if isinstance(path_info, tuple) else path_info
    return f"{{username: {username!r}, ip_hash: {ip_hash(ip_address or '')!r}, path: {path!r}}}"
