"""The personal page /p/<token>/: the participant's invite link, share targets, progress
and rewards, and the two requests it takes (no more messages, my data). Its QR codes and
poster are in images.py; the token in the address is the key to all of them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.timezone import localtime
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from apps.common.codes import is_token
from apps.common.money import format_amount
from apps.referrals.models import Participant
from apps.referrals.selectors import (
    participant_by_token,
    participant_progress,
    referral_first_names,
)
from apps.referrals.services import participant_withdraw_consent
from apps.rewards.models import Reward
from apps.rewards.selectors import participant_rewards, reward_totals
from apps.trust.privacy import TooManyExports, data_export_request, is_erased

from .errors import error_page
from .views import HttpResponseSeeOther, invite_url

REFERRALS_SHOWN = 100


def participant_or_404(token: str) -> Participant:
    """The participant whose personal page `token` opens, or a 404."""
    participant = participant_by_token(token) if is_token(token) else None
    if participant is None:
        raise Http404("unknown token")
    return participant


def _share_links(url: str, text: str, subject: str) -> list[tuple[str, str, bool]]:
    """(label, href, opens a web page) of the share targets that take a link in their
    address. WeChat has none: it shares through the QR code and the poster."""
    message = f"{text} {url}"
    return [
        ("WhatsApp", "https://wa.me/?" + urlencode({"text": message}), True),
        ("Telegram", "https://t.me/share/url?" + urlencode({"url": url, "text": text}), True),
        ("LINE", "https://line.me/R/share?" + urlencode({"text": message}), True),
        ("X", "https://x.com/intent/post?" + urlencode({"text": text, "url": url}), True),
        (_("Email"), f"mailto:?subject={quote(subject)}&body={quote(message)}", False),
        # "sms:?&body=" is the form both iOS and Android read.
        (_("SMS"), f"sms:?&body={quote(message)}", False),
    ]


@never_cache
@require_safe
def personal_page(request: HttpRequest, token: str) -> HttpResponse:
    participant = participant_or_404(token)
    campaign = participant.campaign
    copy = campaign.landing_copy(request.LANGUAGE_CODE)
    headline = copy.headline if copy else campaign.name
    url = invite_url(participant)
    share_text = _("Join me: %(headline)s") % {"headline": headline}
    progress: dict[str, Any] = participant_progress(participant)
    names = referral_first_names(participant, limit=REFERRALS_SHOWN)
    referral_count = participant.referrals.count() if len(names) == REFERRALS_SHOWN else len(names)
    rewards = participant_rewards(participant)
    context = {
        "participant": participant,
        "campaign": campaign,
        "copy": copy,
        "headline": headline,
        "rewards": [_reward_row(r) for r in rewards],
        "reward_totals": [
            format_amount(total, currency) + " " + currency
            for currency, total in sorted(reward_totals(participant=participant).items())
            if total
        ],
        "invite_url": url,
        "share_text": share_text,
        "share_links": _share_links(url, share_text, headline),
        "progress": progress,
        "next_tier": progress["next_tier"],
        "tiers": list(campaign.tiers.all()),
        "referral_names": names,
        "referral_count": referral_count,
        "more_referrals": referral_count - len(names),
        "is_open": campaign.is_open(),
        "done": request.GET.get("done", ""),
    }
    response = render(request, "landing/personal.html", context)
    # The address is the participant's key to this page: keep it out of search engines.
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _reward_row(reward: Reward) -> dict[str, str]:
    """A reward as its owner sees it: what for, how much, and where it stands."""
    if reward.description:
        what = reward.description
    elif reward.source == Reward.Source.TIER:
        what = _("Reward for %(count)s friends") % {"count": reward.tier_threshold}
    elif reward.source == Reward.Source.COMMISSION:
        what = _("Share of a friend's order")
    else:
        what = _("Welcome reward")
    if reward.adjusts_id is not None:
        what = _("Correction: %(what)s") % {"what": what}
    state = {
        Reward.State.PENDING: _("Being checked"),
        Reward.State.HELD: _("Confirmed after %(date)s")
        % {"date": date_format(localtime(reward.due_at), "SHORT_DATE_FORMAT")}
        if reward.due_at
        else _("Being checked"),
        Reward.State.APPROVED: _("Approved"),
        Reward.State.PAID: _("Paid"),
        Reward.State.REVERSED: _("Cancelled"),
        Reward.State.REJECTED: _("Not granted"),
    }[Reward.State(reward.state)]
    amount = format_amount(reward.amount, reward.currency) + " " + reward.currency
    return {"what": what, "amount": amount if reward.amount else "", "state": state}


@require_POST
def withdraw_consent(request: HttpRequest, token: str) -> HttpResponse:
    """The person wants no more messages (CSRF-protected form on the personal page)."""
    participant = participant_or_404(token)
    participant_withdraw_consent(participant=participant)
    return HttpResponseSeeOther(reverse("landing:personal", args=[token]) + "?done=withdrawn")


@require_POST
def request_data_export(request: HttpRequest, token: str) -> HttpResponse:
    """Send the person everything held about them, by email, to their own address: the
    page's token proves they are the person, the address that it goes only to them."""
    participant = participant_or_404(token)
    if is_erased(participant):
        raise Http404("erased")
    try:
        data_export_request(participant=participant)
    except TooManyExports:
        response = error_page(
            request,
            status=429,
            title=_("Already on its way"),
            message=_(
                "You asked for your data a short while ago: please look in your mailbox "
                "(and its spam folder). You can ask again tomorrow."
            ),
        )
        response["Retry-After"] = str(24 * 3600)
        return response
    return HttpResponseSeeOther(reverse("landing:personal", args=[token]) + "?done=export")
