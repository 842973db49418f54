"""The words of messages: placeholders, the default texts, checking and filling them in.

Texts use Python's brace syntax with plain names only ("Hi {name}"). Filling in is a
lookup of each name in a dictionary of strings, never `str.format`: no attribute or
index access, no format specs, nothing an operator's text could use to reach into the
program. Which names a kind may use is fixed here, and a text that names any other is
refused when it is saved, with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from string import Formatter

from django.core.exceptions import ValidationError
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from .models import MessageKind

# Placeholders every kind may use, with what they become (shown to the operator).
COMMON: dict[str, Promise] = {
    "name": _("the participant's name"),
    "campaign": _("the campaign's headline"),
    "invite_link": _("the participant's invite link"),
    "personal_link": _("the participant's own page"),
    "qr_link": _("the QR code of the invite link (an image)"),
    "poster_link": _("the share poster (an image)"),
    "next_tier": _("the next reward still ahead"),
    "friends_to_next_tier": _("how many more qualified friends it takes"),
    "unsubscribe_link": _("the link that stops these emails"),
}
# Placeholders only some kinds can fill in.
SPECIFIC: dict[str, dict[str, Promise]] = {
    MessageKind.VERIFY: {"verify_link": _("the link that confirms the address")},
    MessageKind.FRIEND_JOINED: {"friend": _("the friend's first name")},
    MessageKind.FRIEND_QUALIFIED: {"friend": _("the friend's first name")},
    MessageKind.REWARD_UNLOCKED: {"reward": _("the reward")},
    MessageKind.REWARD_APPROVED: {"reward": _("the reward")},
    MessageKind.ONE_AWAY: {},
    MessageKind.WELCOME: {},
}
# Placeholders a kind's body cannot do without.
REQUIRED: dict[str, tuple[str, ...]] = {MessageKind.VERIFY: ("verify_link",)}


def placeholders(kind: str) -> dict[str, Promise]:
    return {**COMMON, **SPECIFIC.get(kind, {})}


@dataclass(frozen=True)
class DefaultText:
    subject: Promise
    body: Promise


DEFAULTS: dict[str, DefaultText] = {
    MessageKind.VERIFY: DefaultText(
        subject=_("Confirm your email address for {campaign}"),
        body=_(
            "Hi {name},\n\n"
            "Please confirm your email address to take part in {campaign}. Open this "
            "link:\n\n"
            "{verify_link}\n\n"
            "The link works for a few days. If it has expired, your page sends you a new "
            "one: {personal_link}\n\n"
            "If you did not sign up, ignore this email: nothing happens without the "
            "confirmation."
        ),
    ),
    MessageKind.WELCOME: DefaultText(
        subject=_("Welcome to {campaign}: your invite link"),
        body=_(
            "Hi {name},\n\n"
            "Welcome to {campaign}! Here is your personal invite link. Share it with "
            "friends:\n\n"
            "{invite_link}\n\n"
            "Your QR code: {qr_link}\n"
            "A poster to share in chats and Moments: {poster_link}\n\n"
            "Follow your progress and rewards on your page: {personal_link}"
        ),
    ),
    MessageKind.FRIEND_JOINED: DefaultText(
        subject=_("{friend} joined through your link"),
        body=_(
            "Hi {name},\n\n"
            "Good news: {friend} just joined {campaign} through your invite link.\n\n"
            "Keep sharing: {invite_link}\n"
            "Your progress: {personal_link}"
        ),
    ),
    MessageKind.FRIEND_QUALIFIED: DefaultText(
        subject=_("{friend} now counts toward your rewards"),
        body=_(
            "Hi {name},\n\n"
            "{friend} has completed the step that counts, so they now count toward your "
            "rewards in {campaign}.\n\n"
            "See your progress: {personal_link}"
        ),
    ),
    MessageKind.REWARD_UNLOCKED: DefaultText(
        subject=_("You unlocked a reward: {reward}"),
        body=_(
            "Hi {name},\n\n"
            "Thanks to your friends you have unlocked a reward in {campaign}: {reward}.\n\n"
            "See your rewards: {personal_link}"
        ),
    ),
    MessageKind.REWARD_APPROVED: DefaultText(
        subject=_("Your reward is confirmed: {reward}"),
        body=_(
            "Hi {name},\n\n"
            "Your reward in {campaign} is confirmed and now yours: {reward}.\n\n"
            "See your rewards: {personal_link}"
        ),
    ),
    MessageKind.ONE_AWAY: DefaultText(
        subject=_("One more friend to unlock {next_tier}"),
        body=_(
            "Hi {name},\n\n"
            "You are one qualified friend away from {next_tier} in {campaign}. Share your "
            "link once more:\n\n"
            "{invite_link}\n\n"
            "Your page: {personal_link}"
        ),
    ),
}


def _problems(kind: str, text: str) -> list[str]:
    """What is wrong with the placeholders of `text` for `kind`, in words."""
    allowed = placeholders(kind)
    problems: list[str] = []
    try:
        fields = [
            (name, spec, conversion)
            for _literal, name, spec, conversion in Formatter().parse(text)
            if name is not None
        ]
    except ValueError:
        return [
            str(
                _(
                    "A brace is not closed or not opened. Placeholders look like {name}; "
                    "write {{ or }} for a brace itself."
                )
            )
        ]
    for name, spec, conversion in fields:
        shown = "{" + name + ("!" + conversion if conversion else "") + (":" + spec if spec else "")
        shown += "}"
        if not name:
            problems.append(
                str(_("Empty braces {} are not a placeholder; write {{}} for braces themselves."))
            )
        elif spec or conversion or not name.isidentifier():
            problems.append(
                str(
                    _(
                        "%(placeholder)s is not allowed: placeholders are plain names such "
                        "as {name}."
                    )
                )
                % {"placeholder": shown}
            )
        elif name not in allowed:
            problems.append(
                str(_("Unknown placeholder %(placeholder)s. This message can use: %(allowed)s."))
                % {"placeholder": shown, "allowed": ", ".join("{" + n + "}" for n in allowed)}
            )
    return list(dict.fromkeys(problems))


def validate(*, kind: str, subject: str, body: str) -> None:
    """Raise ValidationError, per field, when a text would not fill in cleanly."""
    errors: dict[str, list[str]] = {}
    subject_problems = _problems(kind, subject)
    if "\n" in subject or "\r" in subject:
        subject_problems.append(str(_("The subject must be one line.")))
    if subject_problems:
        errors["subject"] = subject_problems
    body_problems = _problems(kind, body)
    if not body_problems:
        named = {name for _literal, name, _spec, _conv in Formatter().parse(body) if name}
        for name in REQUIRED.get(kind, ()):
            if name not in named:
                body_problems.append(
                    str(_("This message must contain %(placeholder)s."))
                    % {"placeholder": "{" + name + "}"}
                )
    if body_problems:
        errors["body"] = body_problems
    if errors:
        raise ValidationError(errors)


def fill(text: str, values: Mapping[str, str]) -> str:
    """`text` with each known placeholder replaced by its value.

    Texts are checked when saved; one that is not valid any more (a placeholder was
    retired since) keeps the unknown braces as written rather than fail to send.
    """
    try:
        parts = list(Formatter().parse(text))
    except ValueError:
        return text
    out: list[str] = []
    for literal, name, spec, conversion in parts:
        out.append(literal)
        if name is None:
            continue
        if name in values and not spec and not conversion:
            out.append(values[name])
        else:
            out.append(
                "{"
                + name
                + ("!" + conversion if conversion else "")
                + (":" + spec if spec else "")
                + "}"
            )
    return "".join(out)


def one_line(text: str) -> str:
    """A subject line: whitespace (newlines included) collapsed, so no value can add a
    header."""
    return " ".join(text.split())[:200]
