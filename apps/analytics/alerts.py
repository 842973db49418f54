"""Reads and words of K-drop alerts: who gets them, what they say, what to try."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from .models import KAlert
from .selectors import Figures

PERMISSION = "analytics.receive_k_alerts"


def fallen_factor(current: Figures, previous: Figures) -> str:
    """Which of i or c fell more, relative to the week before ("" without a week before).

    K = i × c, so the factor with the larger relative fall is the one to act on: sharing
    (i) or the landing page and the offer (c).
    """
    if previous.participants == 0:
        return KAlert.Factor.UNKNOWN
    invite = _change(current.i, previous.i)
    conversion = _change(current.c, previous.c)
    return KAlert.Factor.INVITE if invite <= conversion else KAlert.Factor.CONVERSION


def _change(now: float, before: float) -> float:
    if before == 0:
        return 0.0 if now == 0 else math.inf
    return (now - before) / before


def alert_recipients() -> list[str]:
    """Active staff with the "receive K-factor alert emails" permission (superusers
    included), plus the addresses of K_ALERT_EMAILS; each address once."""
    users = (
        get_user_model()
        .objects.with_perm(PERMISSION, is_active=True, include_superusers=True)
        .filter(is_staff=True)
        .exclude(email="")
        .values_list("email", flat=True)
    )
    addresses = [*users, *settings.FISSION["K_ALERT_EMAILS"]]
    return list(dict.fromkeys(a.strip() for a in addresses if a.strip()))


def open_alerts(campaign_ids: Iterable[int] | None = None) -> QuerySet[KAlert]:
    alerts = KAlert.objects.filter(resolved_at__isnull=True).select_related("campaign")
    if campaign_ids is not None:
        alerts = alerts.filter(campaign_id__in=list(campaign_ids))
    return alerts.order_by("campaign__name")


@dataclass(frozen=True)
class AlertText:
    headline: str
    detail: str
    suggestion: str


def suggestion(factor: str) -> str:
    if factor == KAlert.Factor.CONVERSION:
        return _(
            "Conversion (c) fell: friends still arrive but fewer of them join. Try a richer "
            "reward for the invited friend (or make it double-sided), a shorter join form, "
            "or a clearer offer at the top of the landing page."
        )
    if factor == KAlert.Factor.INVITE:
        return _(
            "The invite rate (i) fell: participants share less. Try an easier share path "
            "(one tap, a ready-made poster, the QR code), a reminder to share, or a new "
            "channel such as WeChat groups, WhatsApp or a QR code in store."
        )
    return _(
        "There is no earlier week to compare. If few friends arrive, make sharing easier or "
        "open a new channel; if they arrive but do not join, try a richer reward."
    )


def alert_text(alert: KAlert) -> AlertText:
    campaign = alert.campaign.name
    if alert.reason == KAlert.Reason.THRESHOLD:
        headline = _(
            "%(campaign)s: the 7-day K-factor is %(k).2f, below the alert threshold %(t).2f."
        ) % {"campaign": campaign, "k": alert.k, "t": float(alert.threshold or 0)}
    else:
        headline = _(
            "%(campaign)s: the 7-day K-factor fell to %(k).2f from %(prev).2f the week before "
            "(more than %(limit).0f %%)."
        ) % {
            "campaign": campaign,
            "k": alert.k,
            "prev": alert.previous_k or 0,
            "limit": float(alert.drop_fraction or 0) * 100,
        }
    if alert.previous_k is None:
        detail = _("Invite rate i = %(i).2f, conversion c = %(c).1f %%.") % {
            "i": alert.i,
            "c": alert.c * 100,
        }
    else:
        detail = _(
            "Invite rate i: %(pi).2f → %(i).2f; conversion c: %(pc).1f %% → %(c).1f %% "
            "(the week before → the last 7 days)."
        ) % {
            "pi": alert.previous_i or 0,
            "i": alert.i,
            "pc": (alert.previous_c or 0) * 100,
            "c": alert.c * 100,
        }
    return AlertText(headline=headline, detail=detail, suggestion=suggestion(alert.factor))
