from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from .models import ApiKey, hash_key


class ApiClient:
    """The authenticated caller: a host application, not a person."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key

    def __str__(self) -> str:
        return f"api:{self.api_key.name}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[ApiClient, ApiKey] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization must be 'Bearer <key>'.")
        try:
            key = header[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed("The API key is not valid.") from None
        api_key = ApiKey.objects.filter(key_hash=hash_key(key), revoked_at__isnull=True).first()
        if api_key is None:
            raise exceptions.AuthenticationFailed("The API key is not valid or was revoked.")
        return ApiClient(api_key), api_key

    def authenticate_header(self, request: Any) -> str:
        return self.keyword
