"""The two cookies of the invite flow, both signed and HttpOnly, holding ids, never secrets.

- The visitor cookie: a random id for one browser, so that visitors can be counted
  (K-factor) and joins from one browser seen (fraud rules). It lasts a year.
- The attribution cookie, one per campaign: the invite code last clicked and when (the
  signature's timestamp), with the link's channel. It lasts the campaign's attribution
  window, and is checked against the window again when read: the operator may have
  shortened it since. Each click overwrites it, so the last link clicked wins.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from http.cookies import Morsel, SimpleCookie
from typing import Any

from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.http import http_date

from apps.common.codes import random_urlsafe

VISITOR_COOKIE = "fission_vid"
VISITOR_SALT = "fission.visitor"
VISITOR_MAX_AGE = 365 * 24 * 3600
ATTRIBUTION_SALT = "fission.attribution"
DAY = 24 * 3600


def _set(response: HttpResponseBase, name: str, value: str, *, salt: str, max_age: int) -> None:
    """`response.set_signed_cookie`, with the signer made once per cookie and key, and the
    cookie's attributes set by `set_cookie` and formatted once a second (see _Cookie)."""
    template, attributes = _template(
        name, max_age, settings.SESSION_COOKIE_SECURE, int(time.time())
    )
    signer = _signer(name + salt, settings.SECRET_KEY, tuple(settings.SECRET_KEY_FALLBACKS))
    response.cookies[name] = _Cookie(template, attributes, signer.sign(value))


@functools.lru_cache(maxsize=256)  # this second's, two per campaign with clicks
def _template(name: str, max_age: int, secure: bool, now: int) -> tuple[Morsel[str], str]:
    """The cookie Django's `set_cookie` makes (Expires dated from max_age, as it does),
    with no value, and its Set-Cookie attributes as the header writes them."""
    response = HttpResponse()
    response.set_cookie(
        name,
        max_age=max_age,
        expires=http_date(now + max_age),
        httponly=True,
        samesite="Lax",  # sent on the top-level navigation from a chat app's link
        secure=secure,
    )
    morsel = response.cookies[name]
    return morsel, morsel.OutputString()[len(f"{morsel.key}={morsel.coded_value}") :]


class _Cookie(Morsel[str]):
    """A template's cookie with its value: the same attributes and the same header, but
    the attributes' part of the header is the template's, formatted once, where Morsel
    formats every attribute of every cookie again (two per invite click). Changing an
    attribute afterwards formats the header afresh."""

    _attributes: str | None = None

    def __init__(self, template: Morsel[str], attributes: str, value: str) -> None:
        # As Morsel.copy does; Morsel.__init__ would only set defaults the template's
        # attributes and `set` overwrite.
        dict.update(self, template)
        self.set(template.key, *_CODEC.value_encode(value))
        self._attributes = attributes

    def __setitem__(self, key: str, value: Any) -> None:
        self._attributes = None
        super().__setitem__(key, value)

    def setdefault(self, key: str, value: Any = None) -> Any:
        self._attributes = None
        return super().setdefault(key, value)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._attributes = None
        super().update(*args, **kwargs)

    def OutputString(self, attrs: Any = None) -> str:
        if attrs is None and self._attributes is not None:
            return f"{self.key}={self.coded_value}{self._attributes}"
        return super().OutputString(attrs)


_CODEC = SimpleCookie()


@functools.lru_cache(maxsize=1024)  # two per campaign with clicks
def _signer(salt: str, secret_key: str, fallbacks: tuple[str, ...]) -> signing.Signer:
    """Django's cookie signer for `salt`, made once per salt and key rather than on every
    invite click (its class is looked up by name each time). The same signatures as
    `set_signed_cookie`, so `get_signed_cookie` reads them; a new key makes a new signer."""
    return signing.get_cookie_signer(salt=salt)


def visitor_id(request: HttpRequest) -> str:
    """The visitor id of the browser, or "" if it has none (or a forged one)."""
    value = request.get_signed_cookie(VISITOR_COOKIE, default="", salt=VISITOR_SALT)
    return value if isinstance(value, str) else ""


def ensure_visitor_id(request: HttpRequest, response: HttpResponseBase) -> str:
    """The browser's visitor id, made and set on `response` when it has none."""
    current = visitor_id(request)
    if current:
        return current
    new = random_urlsafe(16)
    _set(response, VISITOR_COOKIE, new, salt=VISITOR_SALT, max_age=VISITOR_MAX_AGE)
    return new


def attribution_cookie_name(campaign_id: int) -> str:
    return f"fission_ref_{campaign_id}"


@dataclass(frozen=True)
class Attribution:
    code: str
    channel: str


def set_attribution(
    response: HttpResponseBase, *, campaign_id: int, code: str, channel: str, window_days: int
) -> None:
    # The code alphabet and the sanitised channel hold no ":", the signer's separator.
    _set(
        response,
        attribution_cookie_name(campaign_id),
        f"{code}:{channel}",
        salt=ATTRIBUTION_SALT,
        max_age=window_days * DAY,
    )


def read_attribution(
    request: HttpRequest, *, campaign_id: int, window_days: int
) -> Attribution | None:
    """The last invite link clicked for this campaign within its window, if any."""
    value = request.get_signed_cookie(
        attribution_cookie_name(campaign_id),
        default=None,
        salt=ATTRIBUTION_SALT,
        max_age=window_days * DAY,
    )
    if not value:
        return None
    code, _, channel = value.partition(":")
    return Attribution(code=code, channel=channel)
