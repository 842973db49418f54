"""Putting a message together: its language, its words, the values of its placeholders,
and the email with its plain-text and HTML parts and unsubscribe headers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.html import escape, format_html, linebreaks
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from apps.campaigns.models import Campaign, RewardKind
from apps.common.money import format_amount
from apps.referrals.models import Participant
from apps.referrals.selectors import participant_progress

from .models import Message, MessageKind, MessageText
from .texts import DEFAULTS, fill, one_line
from .tokens import unsubscribe_token, verify_token

LANGUAGES = {code for code, _name in settings.LANGUAGES}
# Links in the body: ASCII URL characters only, so that a link written right after
# Chinese punctuation ("链接：https://…") or before it ("…/p/x/。") is found whole.
URL = re.compile(r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
# Kinds whose HTML part shows the QR code of the invite link under the words.
WITH_QR = {MessageKind.WELCOME, MessageKind.ONE_AWAY}


@dataclass(frozen=True)
class Composed:
    subject: str
    text: str
    html: str
    unsubscribe_url: str


def message_language(participant: Participant) -> str:
    """The language a participant is written to in: the one they joined in, else the
    campaign's (its landing copy in the site's language, else its only one), else the
    site's."""
    if participant.language in LANGUAGES:
        return participant.language
    copy = participant.campaign.landing_copy(None)
    if copy is not None and copy.language in LANGUAGES:
        return copy.language
    return settings.LANGUAGE_CODE


def words(campaign: Campaign, kind: str, language: str) -> tuple[str, str]:
    """(subject, body) as written: the operator's text in `language`, else the default
    in that language. Call inside translation.override(language)."""
    text = (
        MessageText.objects.filter(
            message__campaign=campaign, message__kind=kind, language=language
        )
        .only("subject", "body")
        .first()
    )
    if text is not None:
        return text.subject, text.body
    default = DEFAULTS[kind]
    return str(default.subject), str(default.body)


def reward_words(*, description: str, kind: str, amount: Decimal, currency: str) -> str:
    """A reward as a person reads it: its description, else its amount, else its kind."""
    if description:
        return description
    if amount:
        return f"{format_amount(amount, currency)} {currency}"
    return str(RewardKind(kind).label) if kind in RewardKind.values else _("a reward")


def body_html(text: str) -> SafeString:
    """The operator's plain text as HTML: escaped, links made clickable, blank lines
    between paragraphs. Nothing in the text is ever read as HTML."""
    parts: list[str] = []
    position = 0
    for match in URL.finditer(text):
        url = match.group(0).rstrip(".,;:!?)'")
        parts.append(escape(text[position : match.start()]))
        parts.append(format_html('<a href="{}">{}</a>', url, url))
        position = match.start() + len(url)
    parts.append(escape(text[position:]))
    return mark_safe(linebreaks("".join(parts)))  # noqa: S308 (every part escaped above)


def _url(name: str, *args: object) -> str:
    return f"{settings.SITE_URL}{reverse(name, args=args)}"


def _tier_words(campaign: Campaign, threshold: int | None) -> str:
    tier = next((t for t in campaign.tiers.all() if t.threshold == threshold), None)
    if tier is None:
        return ""
    return reward_words(
        description=tier.description, kind=tier.kind, amount=tier.amount, currency=tier.currency
    )


def participant_values(participant: Participant, language: str) -> dict[str, str]:
    """The placeholders every kind can use, for `participant`, in `language`."""
    campaign = participant.campaign
    copy = campaign.landing_copy(language)
    progress = participant_progress(participant)
    upcoming = progress["next_tier"]
    next_tier = ""
    remaining = ""
    if isinstance(upcoming, dict):
        next_tier = _tier_words(campaign, upcoming["threshold"])
        remaining = str(upcoming["remaining"])
    return {
        "name": participant.name or pgettext("greeting without a name", "there"),
        "campaign": copy.headline if copy else campaign.name,
        "invite_link": _url("landing:invite", participant.code),
        "personal_link": _url("landing:personal", participant.token),
        "qr_link": _url("landing:qr-png", participant.token),
        "poster_link": _url("landing:poster", participant.token),
        "next_tier": next_tier,
        "friends_to_next_tier": remaining,
        "unsubscribe_link": _url("notifications:unsubscribe", unsubscribe_token(participant)),
    }


def message_values(message: Message) -> dict[str, str]:
    """Every placeholder of `message`, filled in from the database as it is now."""
    participant = message.participant
    values = participant_values(participant, message.language)
    if message.kind == MessageKind.VERIFY:
        values["verify_link"] = _url("notifications:verify", verify_token(participant))
    if message.friend is not None:
        values["friend"] = message.friend.first_name or pgettext(
            "friend without a name", "A friend"
        )
    if message.reward is not None:
        reward = message.reward
        values["reward"] = reward_words(
            description=reward.description,
            kind=reward.kind,
            amount=reward.amount,
            currency=reward.currency,
        )
    if message.kind == MessageKind.ONE_AWAY:
        values["next_tier"] = _tier_words(participant.campaign, message.tier_threshold)
        values["friends_to_next_tier"] = "1"
    return values


def compose(
    *,
    campaign: Campaign,
    kind: str,
    language: str,
    values: dict[str, str],
    qr_image: str | None = None,
) -> Composed:
    """The subject and both parts of a message. Call inside translation.override.
    `qr_image`: where the HTML part loads the QR code from (the preview's own)."""
    subject_text, body_text = words(campaign, kind, language)
    subject = one_line(fill(subject_text, values))
    body = fill(body_text, values).strip()
    footer = _("You get this email because you joined %(campaign)s.") % {
        "campaign": values.get("campaign", campaign.name)
    }
    stop = _("Stop these emails")
    unsubscribe_url = values.get("unsubscribe_link", "")
    text = f"{body}\n\n-- \n{footer}\n{stop}: {unsubscribe_url}\n"
    html = render_to_string(
        "notifications/email.html",
        {
            "language": language,
            "subject": subject,
            "campaign_title": values.get("campaign", campaign.name),
            "body_html": body_html(body),
            "qr_url": (qr_image or values.get("qr_link", "")) if kind in WITH_QR else "",
            "footer": footer,
            "stop": stop,
            "unsubscribe_url": unsubscribe_url,
        },
    )
    return Composed(subject=subject, text=text, html=html, unsubscribe_url=unsubscribe_url)


def compose_message(message: Message) -> Composed:
    with translation.override(message.language):
        return compose(
            campaign=message.participant.campaign,
            kind=message.kind,
            language=message.language,
            values=message_values(message),
        )


def sample_values(campaign: Campaign, kind: str, language: str) -> dict[str, str]:
    """Made-up values for the admin's preview. Call inside translation.override."""
    tiers = sorted(campaign.tiers.all(), key=lambda t: t.threshold)
    tier = tiers[0] if tiers else None
    tier_text = (
        reward_words(
            description=tier.description, kind=tier.kind, amount=tier.amount, currency=tier.currency
        )
        if tier
        else _("a 50 CNY coupon")
    )
    copy = campaign.landing_copy(language)
    site = settings.SITE_URL
    return {
        "name": "Alice",
        "campaign": copy.headline if copy else campaign.name,
        "invite_link": f"{site}/r/k7m2x9qa",
        "personal_link": f"{site}/p/preview/",
        "qr_link": f"{site}/p/preview/qr.png",
        "poster_link": f"{site}/p/preview/poster.png",
        "next_tier": tier_text,
        "friends_to_next_tier": "1" if kind == MessageKind.ONE_AWAY else "2",
        "unsubscribe_link": f"{site}/unsubscribe/preview/",
        "verify_link": f"{site}/verify/preview/",
        "friend": "Bob",
        "reward": tier_text,
    }


def email(message: Message, composed: Composed) -> EmailMultiAlternatives:
    """The email: plain text, an HTML alternative, and one-click unsubscribe (RFC 8058:
    the mail client POSTs to the link; providers show an "Unsubscribe" button for it)."""
    mail = EmailMultiAlternatives(
        subject=composed.subject,
        body=composed.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[message.participant.email],
        headers={
            "List-Unsubscribe": f"<{composed.unsubscribe_url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )
    mail.attach_alternative(composed.html, "text/html")
    return mail
