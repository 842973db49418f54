"""django-axes hooks: the authentication backend, and what its log lines say about a
client."""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest

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


class LockoutBackend(AxesStandaloneBackend, ModelBackend):
    """Django's model backend behind django-axes's lockout check, as one backend.

    axes's own AxesBackend only checks (its authenticate never signs anyone in, expecting
    a ModelBackend after it); two backends would make every "who has this permission"
    query (User.objects.with_perm, the K-alert recipients) name one. This one refuses a
    locked-out client (AxesBackendPermissionDenied), then authenticates as Django does.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        # Raises AxesBackendPermissionDenied for a locked-out client; Django's
        # authenticate() turns that into a failed login, and the middleware into the
        # lockout page.
        AxesStandaloneBackend.authenticate(
            self, request, username=username, password=password, **kwargs
        )
        return ModelBackend.authenticate(
            self, request, username=username, password=password, **kwargs
        )
