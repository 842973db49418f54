"""The participant's images: the QR codes of their invite link and their share poster.

Drawing one takes milliseconds of CPU, so each is kept: QR codes in this process's memory
and in Django's cache, posters in the cache; and each is sent with an ETag, so a browser
that has it gets a 304.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.utils import translation
from django.utils.cache import get_conditional_response
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

from apps.common.codes import is_token
from apps.common.qr import qr_png, qr_svg
from apps.referrals.models import Participant
from apps.referrals.selectors import participant_code_by_token

from .personal import participant_or_404
from .poster import current_font_source, render_poster
from .views import invite_url

logger = logging.getLogger(__name__)

IMAGE_CACHE_SECONDS = 7 * 24 * 3600
# Bump when the look of QR codes or posters changes, so caches and ETags move on.
IMAGE_VERSION = "2"

# Rendered QR codes, remembered by each process for INVITE_CACHE_SECONDS: digest ->
# (expiry on the monotonic clock, bytes), at most QR_MEMORY_BYTES in all (the oldest go
# first). In front of Django's cache, so that a popular code costs neither a query nor
# a round trip to the cache.
_qr_memory: dict[str, tuple[float, bytes]] = {}
_qr_memory_lock = threading.Lock()
_qr_memory_bytes = 0
QR_MEMORY_BYTES = 32 * 1024 * 1024


def _cached(cache_key: str, draw: Callable[[], bytes]) -> bytes:
    """The image from Django's cache, or drawn and kept there. The cache only saves
    drawing it again: when the cache is down, draw it."""
    try:
        body = cache.get(cache_key)
    except Exception as exc:  # any cache backend's own error type
        logger.warning("image cache unavailable: %s", exc)
        body = None
    if body is None:
        body = draw()
        try:
            cache.set(cache_key, body, IMAGE_CACHE_SECONDS)
        except Exception as exc:
            logger.warning("image cache unavailable: %s", exc)
    return bytes(body)


def _not_modified(request: HttpRequest, digest: str) -> HttpResponseBase | None:
    """A 304 when the browser already has the image of this digest."""
    etag = f'"{digest}"'
    response = get_conditional_response(request, etag=etag)
    if response is not None:
        response["ETag"] = etag
    return response


def _image_response(body: bytes, digest: str, content_type: str, *, public: bool) -> HttpResponse:
    response = HttpResponse(body, content_type=content_type)
    response["ETag"] = f'"{digest}"'
    # The QR code holds only the invite link, which is public by design; the poster
    # also shows the person's name, so only their own browser keeps it. (The whole
    # header of a new response: what patch_cache_control would write, without parsing.)
    response["Cache-Control"] = f"{'public' if public else 'private'}, max-age=3600"
    return response


# --- QR codes ----------------------------------------------------------------------------


def _qr_digest(kind: str, token: str) -> str:
    """Everything a QR code is drawn from: the page token (one per invite code; both are
    replaced together when a person is erased), SITE_URL and the look (IMAGE_VERSION).
    Hashed: a token opens a personal page, so it is never a cache key in the clear."""
    return hashlib.sha256(
        f"{IMAGE_VERSION}\n{kind}\n{settings.SITE_URL}\n{token}".encode()
    ).hexdigest()[:32]


def _qr_remember(digest: str, body: bytes) -> None:
    global _qr_memory_bytes
    ttl = settings.FISSION["INVITE_CACHE_SECONDS"]
    if not ttl or len(body) > QR_MEMORY_BYTES:
        return
    with _qr_memory_lock:
        old = _qr_memory.pop(digest, None)
        _qr_memory_bytes -= len(old[1]) if old else 0
        while _qr_memory and _qr_memory_bytes + len(body) > QR_MEMORY_BYTES:
            _qr_memory_bytes -= len(_qr_memory.pop(next(iter(_qr_memory)))[1])
        _qr_memory[digest] = (time.monotonic() + ttl, body)
        _qr_memory_bytes += len(body)


def qr_memory_forget(digests: list[str] | None = None) -> None:
    """Forget QR codes this process remembers: those of `digests`, or all (tests)."""
    global _qr_memory_bytes
    with _qr_memory_lock:
        for digest in list(_qr_memory) if digests is None else digests:
            old = _qr_memory.pop(digest, None)
            _qr_memory_bytes -= len(old[1]) if old else 0


def _qr_code(
    request: HttpRequest, token: str, *, kind: str, content_type: str, draw: Callable[[str], bytes]
) -> HttpResponseBase:
    """A QR code of the participant's invite link: from this process's memory, else from
    Django's cache, else drawn (one query for the code) and kept in both. The ETag is
    answered only after that, so that an erased person's old token is a 404."""
    if not is_token(token):
        raise Http404("unknown token")
    digest = _qr_digest(kind, token)
    remembered = _qr_memory.get(digest)
    if remembered is not None and remembered[0] > time.monotonic():
        body = remembered[1]
    else:

        def draw_link() -> bytes:
            code = participant_code_by_token(token)
            if code is None:
                raise Http404("unknown token")
            return draw(f"{settings.SITE_URL}/r/{code}")

        body = _cached(f"fission:image:qr:{digest}", draw_link)
        _qr_remember(digest, body)
    not_modified = _not_modified(request, digest)
    if not_modified is not None:
        return not_modified
    return _image_response(body, digest, content_type, public=True)


@require_safe
def qr_code_svg(request: HttpRequest, token: str) -> HttpResponseBase:
    return _qr_code(request, token, kind="qr.svg", content_type="image/svg+xml", draw=qr_svg)


@require_safe
def qr_code_png(request: HttpRequest, token: str) -> HttpResponseBase:
    return _qr_code(request, token, kind="qr.png", content_type="image/png", draw=qr_png)


# --- The poster --------------------------------------------------------------------------


def _poster_texts(participant: Participant, language: str) -> dict[str, str]:
    """What the poster shows, in the active language (gettext) and `language`'s copy."""
    campaign = participant.campaign
    copy = campaign.landing_copy(language)
    return {
        "headline": copy.headline if copy else campaign.name,
        "name_line": _("%(name)s invites you") % {"name": participant.name}
        if participant.name
        else _("You are invited"),
        "url": invite_url(participant),
        "reward": copy.reward_text if copy else "",
        "caption": _("Scan to join"),
    }


def _poster_key(texts: dict[str, str]) -> tuple[str, str]:
    """(ETag digest, cache key) of the poster drawn from `texts`: everything it is drawn
    from, so the same text means the same bytes, and a change of SITE_URL, copy, name or
    font makes a new poster, never a stale one."""
    identity = "\n".join(["poster.png", repr(current_font_source()), *texts.values()])
    digest = hashlib.sha256(f"{IMAGE_VERSION}\n{identity}".encode()).hexdigest()[:32]
    return digest, f"fission:image:{digest}"


@require_safe
def poster(request: HttpRequest, token: str) -> HttpResponseBase:
    participant = participant_or_404(token)
    texts = _poster_texts(participant, request.LANGUAGE_CODE)
    digest, cache_key = _poster_key(texts)
    not_modified = _not_modified(request, digest)
    if not_modified is not None:
        return not_modified  # without drawing or fetching it
    body = _cached(cache_key, lambda: render_poster(**texts))
    return _image_response(body, digest, "image/png", public=False)


def forget_cached_images(participant: Participant) -> None:
    """Drop the participant's posters (which show their name) from the image cache, in
    every language, and their QR codes: called before their personal data is erased."""
    keys = []
    for language, _name in settings.LANGUAGES:
        with translation.override(language):
            keys.append(_poster_key(_poster_texts(participant, language))[1])
    # The QR codes hold no personal data, but the old link must lead nowhere: forgotten
    # here and in the cache at once, in other processes within INVITE_CACHE_SECONDS.
    digests = [_qr_digest(kind, participant.token) for kind in ("qr.svg", "qr.png")]
    keys += [f"fission:image:qr:{digest}" for digest in digests]
    qr_memory_forget(digests)
    cache.delete_many(keys)
