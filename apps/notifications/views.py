"""The pages behind the links in emails: confirm an address, ask for a new link, unsubscribe.

Thin views: the tokens say who, the services do the rest. Every bad link gets a
friendly page and changes nothing.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_ratelimit.core import get_usage

from apps.common.codes import is_token
from apps.common.ip import client_ip
from apps.landing.errors import error_page
from apps.referrals.models import Participant
from apps.referrals.selectors import participant_by_token
from apps.referrals.services import participant_withdraw_consent

from .services import ResendOutcome, verification_resend
from .tokens import email_tag, unsubscribe_token_read, verify_token_read
from .verification import email_verify


def _page(
    request: HttpRequest, template: str, context: dict[str, object], status: int = 200
) -> HttpResponse:
    response = render(request, template, context, status=status)
    # These addresses carry a key; keep them out of search engines.
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _personal_url(participant: Participant) -> str:
    return reverse("landing:personal", args=[participant.token])


# --- /verify/<token>/ ----------------------------------------------------------------


def _broken_link(request: HttpRequest) -> HttpResponse:
    return error_page(
        request,
        status=400,
        title=_("This link does not work"),
        message=_(
            "The link is incomplete or has been changed. Open it again from the newest "
            "email we sent you, or ask for a new one on your page."
        ),
    )


@never_cache
@require_GET  # not HEAD: a link checker that only peeks must not confirm anything
def verify(request: HttpRequest, token: str) -> HttpResponse:
    link = verify_token_read(token)
    participant = (
        Participant.objects.select_related("campaign").filter(pk=link.participant_id).first()
        if link is not None
        else None
    )
    if link is None or participant is None or link.email_tag != email_tag(participant):
        return _broken_link(request)
    context = {"participant": participant, "personal_url": _personal_url(participant)}
    if participant.verified_at is not None:
        return _page(request, "notifications/verified.html", {**context, "already": True})
    if link.expired:
        return _page(request, "notifications/link_expired.html", context, status=400)
    verified = email_verify(participant=participant)
    return _page(request, "notifications/verified.html", {**context, "already": not verified})


# --- /p/<token>/verify/resend --------------------------------------------------------


def _limited(request: HttpRequest, participant: Participant) -> int | None:
    """Seconds to wait when this request is over a limit: per participant, per email
    address (across campaigns) and per client address; None otherwise."""
    limits = settings.FISSION
    keys = [
        (f"participant:{participant.pk}", limits["VERIFY_RESEND_RATE_LIMIT"]),
        (f"email:{participant.email_normalized}", limits["VERIFY_RESEND_RATE_LIMIT"]),
        (f"ip:{_network(client_ip(request))}", limits["VERIFY_RESEND_IP_RATE_LIMIT"]),
    ]
    wait = None
    for key, rate in keys:
        usage = get_usage(
            request,
            group="notifications.resend",
            key=lambda _group, _request, key=key: key,
            rate=rate,
            method="POST",
            increment=True,
        )
        if usage is not None and usage["should_limit"]:
            wait = max(wait or 0, int(usage["time_left"]))
    return wait


def _network(ip: str) -> str:
    """IPv6 addresses are limited per /64, one subscriber's block."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return "unknown"
    if address.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False).network_address)
    return ip


@never_cache
@require_POST
def resend(request: HttpRequest, token: str) -> HttpResponse:
    participant = participant_by_token(token) if is_token(token) else None
    if participant is None:
        raise Http404("unknown token")
    wait = _limited(request, participant)
    if wait is not None:
        response = error_page(
            request,
            status=429,
            title=_("Too many tries"),
            message=_(
                "You asked for several new links in a short time. Please check your inbox "
                "(and the spam folder) and wait a little before asking again."
            ),
        )
        response["Retry-After"] = str(max(1, wait))
        return response
    outcome = verification_resend(participant=participant)
    context = {
        "participant": participant,
        "personal_url": _personal_url(participant),
        "outcome": str(outcome),
    }
    status = 429 if outcome == ResendOutcome.TOO_MANY else 200
    return _page(request, "notifications/resent.html", context, status=status)


# --- /unsubscribe/<token>/ -----------------------------------------------------------


# RFC 8058 one-click: the mail provider POSTs here with no CSRF token and no cookies. The
# signed token is what allows it, and all it can do is stop emails.
@csrf_exempt
@never_cache
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    participant_id = unsubscribe_token_read(token)
    participant = (
        Participant.objects.select_related("campaign").filter(pk=participant_id).first()
        if participant_id is not None
        else None
    )
    if participant is None:
        return error_page(
            request,
            status=400,
            title=_("This link does not work"),
            message=_(
                "The unsubscribe link is incomplete or has been changed. Open it again "
                "from the email, whole."
            ),
        )
    context = {"participant": participant, "personal_url": _personal_url(participant)}
    if request.method == "POST":
        participant_withdraw_consent(participant=participant)
        return _page(request, "notifications/unsubscribed.html", context)
    # GET only asks: link scanners and previews follow links, and must not unsubscribe.
    return _page(
        request,
        "notifications/unsubscribe.html",
        {**context, "already": participant.consent_withdrawn_at is not None},
    )
