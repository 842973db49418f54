"""The public pages: the invite redirect, the landing page and joining (the personal page
is in personal.py, its QR codes and poster in images.py).

Thin views: the rules are in the services (joining, recording a click) and the reads in
the selectors; these only turn requests into their arguments and results into pages.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
)
from django.shortcuts import render
from django.urls import get_script_prefix, reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe
from django_ratelimit.core import get_usage

from apps.campaigns.models import Campaign
from apps.campaigns.selectors import campaign_get
from apps.common.codes import is_invite_code
from apps.common.errors import FissionError, NotFound
from apps.common.ip import client_ip, ip_hash
from apps.common.useragents import ua_class
from apps.notifications.services import notify_joined
from apps.referrals.models import Participant
from apps.referrals.selectors import (
    campaign_is_public,
    invite_target,
    inviter_in_campaign,
)
from apps.referrals.services import (
    ParticipantBlocked,
    click_record,
    participant_join,
)
from apps.trust.services import consent_text_version

from . import cookies
from .errors import rate_limited
from .forms import JoinForm

logger = logging.getLogger(__name__)

CHANNEL_MAX = 20
_NOT_CHANNEL = re.compile(r"[^a-z0-9_-]")


class HttpResponseSeeOther(HttpResponseRedirect):
    status_code = 303


def _channel(value: str) -> str:
    """The link's channel (?s=whatsapp): short, lower case, letters, digits, - and _."""
    return _NOT_CHANNEL.sub("", value[:64].lower())[:CHANNEL_MAX]


def invite_url(participant: Participant) -> str:
    return f"{settings.SITE_URL}/r/{participant.code}"


# --- /r/<code> ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _campaign_path(prefix: str, slug: str) -> str:
    """The campaign page's path: `prefix` (the script prefix reverse() uses) is part of
    the key, so that the remembered paths are right under any mount point."""
    return reverse("landing:campaign", args=[slug])


@require_safe
def invite(request: HttpRequest, code: str) -> HttpResponseBase:
    """Record the click and send the visitor to the campaign's page.

    The hottest path: one indexed lookup (none while the code is remembered) and one
    INSERT (or one push onto the click buffer). The redirect goes to a path built from
    the campaign's slug alone, never to anything the query string says.
    """
    code = code.lower()
    target = invite_target(code) if is_invite_code(code) else None
    if target is None:
        raise Http404("unknown invite code")
    response = HttpResponseRedirect(_campaign_path(get_script_prefix(), target.campaign_slug))
    # Caches between the visitor and us must not answer for us: every click counts.
    response["Cache-Control"] = "no-store, private"

    user_agent = request.META.get("HTTP_USER_AGENT", "")
    kind = ua_class(user_agent)
    # Link previews fetch the link to draw a card; a HEAD never shows a page to a person.
    bot = request.method == "HEAD" or kind == "bot"
    channel = _channel(request.GET.get("s", ""))
    visitor = "" if bot else cookies.ensure_visitor_id(request, response)
    try:
        click_record(
            campaign_id=target.campaign_id,
            participant_id=target.participant_id,
            channel=channel,
            visitor_id=visitor,
            ip_hash=ip_hash(client_ip(request)),
            ua_class=kind,
            is_bot=bot,
        )
    except Exception:  # the visitor still gets the page; the log says what was lost
        logger.exception("could not record a click on invite code %s", code)
    if not bot:
        cookies.set_attribution(
            response,
            campaign_id=target.campaign_id,
            code=code,
            channel=channel,
            window_days=target.attribution_window_days,
        )
    return response


# --- /c/<slug>/ and /c/<slug>/join --------------------------------------------------------


def _campaign(slug: str) -> Campaign:
    try:
        return campaign_get(slug)
    except NotFound:
        raise Http404("unknown campaign") from None


def _inviter(
    request: HttpRequest, campaign: Campaign, explicit_code: str
) -> tuple[Participant | None, str]:
    """Who invited this visitor, and through which channel.

    A code in the page's address (?ref=) wins; otherwise the last invite link clicked
    for this campaign within its attribution window (the cookie). Codes of other
    campaigns and unknown codes are ignored: the visitor cannot fix them. A campaign
    that is over or still a draft names nobody, as its invite links lead nowhere.
    """
    if not campaign_is_public(status=campaign.status, ends_at=campaign.ends_at):
        return None, ""
    explicit_code = explicit_code.strip().lower()
    if explicit_code and is_invite_code(explicit_code):
        inviter = inviter_in_campaign(campaign, explicit_code)
        if inviter is not None:
            return inviter, ""
    attribution = cookies.read_attribution(
        request, campaign_id=campaign.pk, window_days=campaign.attribution_window_days
    )
    if attribution is not None and is_invite_code(attribution.code):
        inviter = inviter_in_campaign(campaign, attribution.code)
        if inviter is not None:
            return inviter, attribution.channel
    return None, ""


def _landing(
    request: HttpRequest,
    campaign: Campaign,
    form: JoinForm,
    *,
    explicit_code: str,
    status: int = 200,
) -> HttpResponse:
    inviter = _inviter(request, campaign, explicit_code)[0]
    form.link_errors()
    context = {
        "campaign": campaign,
        "copy": campaign.landing_copy(request.LANGUAGE_CODE),
        "tiers": list(campaign.tiers.all()),
        "inviter_name": inviter.first_name if inviter else "",
        "is_open": campaign.is_open(),
        "closed_reason": campaign.closed_reason(),
        "form": form,
    }
    return render(request, "landing/campaign.html", context, status=status)


@require_safe
def campaign_page(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = _campaign(slug)
    explicit_code = request.GET.get("ref", "")[:32]
    form = JoinForm(initial={"ref": explicit_code})
    response = _landing(request, campaign, form, explicit_code=explicit_code)
    cookies.ensure_visitor_id(request, response)
    return response


def _join_rate(group: str, request: HttpRequest) -> str:
    return str(settings.FISSION["JOIN_RATE_LIMIT"])


def _join_rate_key(group: str, request: HttpRequest) -> str:
    """Joins are counted per client address; IPv6 per /64, which is one subscriber."""
    ip = client_ip(request)
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return "unknown"
    if address.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False).network_address)
    return ip


# Service errors shown next to the field they concern, in the visitor's language.
_FIELD_MESSAGES: dict[str, Callable[[], str]] = {
    "email": lambda: _("Please enter a valid email address."),
    "name": lambda: _("Please shorten your name."),
    "consent": lambda: _("Please tick the box to agree before joining."),
}


def _join_usage(request: HttpRequest) -> dict[str, Any] | None:
    """Count this join against the client's limit; None when not limited.

    The counts live in the cache. With RATELIMIT_FAIL_OPEN django-ratelimit lets a join
    through when the cache answers without a count, but a cache that cannot be reached
    at all (Redis down) raises: that too lets the join through, rather than turning
    everyone away while the cache is back in a moment.
    """
    try:
        return get_usage(
            request,
            group="landing.join",
            key=_join_rate_key,
            rate=_join_rate,
            method="POST",
            increment=True,
        )
    except Exception as exc:  # any cache backend's own error type
        logger.warning("join rate limit not checked, the cache is unavailable: %s", exc)
        return None


@require_POST
def campaign_join(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = _campaign(slug)
    usage = _join_usage(request)
    if usage is not None and usage["should_limit"]:
        return rate_limited(request, retry_after=usage["time_left"])

    form = JoinForm(request.POST)
    explicit_code = str(request.POST.get("ref", ""))[:32]
    if not form.is_valid():
        return _landing(request, campaign, form, explicit_code=explicit_code, status=400)

    inviter, channel = _inviter(request, campaign, form.cleaned_data["ref"])
    # The exact words the person agreed to, stored once per version and language.
    consent_version = consent_text_version(
        version=settings.FISSION["CONSENT_VERSION"],
        language=request.LANGUAGE_CODE,
        text=str(form.fields["consent"].label),
    )
    try:
        participant, created = participant_join(
            campaign=campaign,
            email=form.cleaned_data["email"],
            name=form.cleaned_data["name"],
            referrer=inviter,
            consent=form.cleaned_data["consent"],
            consent_version=consent_version,
            channel=channel or "web",
            language=request.LANGUAGE_CODE,
            client_ip=client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
            visitor_id=cookies.visitor_id(request),
            # Someone who followed their own link is coming back to their own page.
            ignore_self_referral=True,
        )
    except FissionError as exc:
        # A closed campaign is said by the page itself (is_open is false); the rest is
        # attached to the fields it concerns.
        for field in exc.fields:
            if field in _FIELD_MESSAGES:
                form.add_error(field, _FIELD_MESSAGES[field]())
        if not exc.fields and campaign.is_open():
            form.add_error(None, _("We could not add you just now. Please try again."))
        status = exc.status if 400 <= exc.status < 600 else 400
        return _landing(request, campaign, form, explicit_code=explicit_code, status=status)
    if participant.status == Participant.Status.BLOCKED:
        # Refused, without saying by which rule (that would teach a cheat what to
        # change); the person is told how to ask a person to look at it.
        form.add_error(
            None,
            _(
                "We could not add you to this campaign. If you think this is a mistake, "
                "please contact the organiser: a person will look at it."
            ),
        )
        status = ParticipantBlocked.status
        return _landing(request, campaign, form, explicit_code=explicit_code, status=status)
    if created:
        # Double opt-in where the campaign qualifies on a verified sign-up, else a welcome.
        notify_joined(participant=participant, verify_email=True)
    return HttpResponseSeeOther(reverse("landing:personal", args=[participant.token]))
