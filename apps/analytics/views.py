"""The operator's K-factor dashboard: an admin page per campaign (staff only)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_cache_control
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_safe

from apps.campaigns.models import Campaign

from . import charts
from .alerts import alert_text
from .dashboard import DashboardData, dashboard_data
from .outlook import PROJECTION_DAYS
from .selectors import leaderboard
from .tasks import snapshot_campaign

GENERATION_BARS = 40  # deeper generations are summed into the last bar
COHORT_ROWS = 90


def _percent(value: float) -> str:
    return f"{value * 100:.1f}".rstrip("0").rstrip(".") + "%"


def _charts(data: DashboardData) -> dict[str, charts.Chart]:
    report, trailing = data.report, data.trailing
    dates = [t.date for t in trailing]
    threshold = data.campaign.k_alert_threshold
    k_chart = charts.time_chart(
        _("K (the 7 days ending each day)"),
        dates,
        [("K", "line-k", [t.k if t.participants else None for t in trailing])],
        rules=[(float(threshold), _("alert threshold"), "rule-alert")] if threshold else [],
        width=960,
        height=220,
    )
    i_chart = charts.time_chart(
        _("Invite rate i: visitors per participant"),
        dates,
        [("i", "line-i", [t.i if t.participants else None for t in trailing])],
        width=charts.HALF,
        height=170,
    )
    c_chart = charts.time_chart(
        _("Conversion c: joins per visitor"),
        dates,
        [("c", "line-c", [t.c if t.visitors else None for t in trailing])],
        fmt=_percent,
        width=charts.HALF,
        height=170,
    )
    future = [data.through + timedelta(days=n) for n in range(1, PROJECTION_DAYS + 1)]
    # Nobody yet: no growth chart rather than a flat line at zero.
    actual: list[float | None] = [float(t.total) if report.participants else None for t in trailing]
    projected: list[float | None] = [None] * len(trailing)
    if data.projection is not None and trailing:
        # Beyond ten times today's total the projection would flatten the real curve
        # into the axis; the line stops there (the tile still gives the number).
        cap = 10 * max(trailing[-1].total, 10)
        projected[-1] = float(trailing[-1].total)
        projected += [value if value <= cap else None for _t, value in data.projection.days[1:]]
    else:
        projected += [None] * len(future)
    growth_chart = charts.time_chart(
        _("Participants: so far and the next %(days)d days") % {"days": PROJECTION_DAYS},
        dates + future,
        [
            (_("participants"), "line-actual", actual + [None] * len(future)),
            (_("projected"), "line-projected", projected),
        ],
        width=charts.HALF,
        height=240,
    )
    generations = report.generations
    bars = [
        (
            str(g.generation),
            float(g.size),
            _("generation %(n)d: %(size)s") % {"n": g.generation, "size": f"{g.size:,}"},
        )
        for g in generations[: GENERATION_BARS - 1]
    ]
    if len(generations) >= GENERATION_BARS:
        deep = generations[GENERATION_BARS - 1 :]
        bars.append(
            (
                f"{deep[0].generation}+",
                float(sum(g.size for g in deep)),
                _("generations %(first)d–%(last)d: %(size)s")
                % {
                    "first": deep[0].generation,
                    "last": deep[-1].generation,
                    "size": f"{sum(g.size for g in deep):,}",
                },
            )
        )
    return {
        "k": k_chart,
        "i": i_chart,
        "c": c_chart,
        "growth": growth_chart,
        "generations": charts.bar_chart(
            _("Participants by generation"), bars, width=charts.HALF, height=180
        ),
        "funnel": charts.funnel(
            _("Visitors → joins → qualified → rewarded"),
            [
                (_("visitors via invites"), report.visitors),
                (_("joined via an invite"), report.referred),
                (_("qualified"), data.qualified),
                (_("rewarded"), data.rewarded),
            ],
            width=charts.HALF,
        ),
    }


@require_http_methods(["GET", "POST"])
def campaign_dashboard(
    request: HttpRequest, campaign_id: int, model_admin: admin.ModelAdmin[Campaign]
) -> HttpResponse:
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None:
        raise Http404
    if not model_admin.has_view_permission(request, campaign):
        raise PermissionDenied
    url = reverse("admin:campaigns_campaign_dashboard", args=[campaign.pk])
    if request.method == "POST":
        # Recompute every day and the report now (the nightly run only refreshes the
        # last two weeks); on a worker when there is one.
        snapshot_campaign.delay(campaign.pk, timezone.localdate().isoformat(), True)
        messages.success(request, _("The figures are being recomputed."))
        return HttpResponseRedirect(url, status=303)
    data = dashboard_data(campaign)
    report = data.report
    open_alert = next((a for a in data.alerts if a.is_open), None)
    context: dict[str, Any] = {
        **model_admin.admin_site.each_context(request),
        "title": _("K-factor dashboard: %(campaign)s") % {"campaign": campaign.name},
        "opts": model_admin.model._meta,
        "campaign": campaign,
        "data": data,
        "report": report,
        "c_percent": report.c * 100,
        "charts": _charts(data),
        "cohorts": list(reversed(report.cohorts))[:COHORT_ROWS],
        "open_alert": open_alert,
        "open_alert_text": alert_text(open_alert) if open_alert else None,
        "past_alerts": [a for a in data.alerts if not a.is_open],
        "viral": data.viral.k >= 1,
        "last_week": data.trailing[-1] if data.trailing else None,
        "action_url": url,
    }
    return render(request, "analytics/dashboard.html", context)


LEADERBOARD_CACHE_SECONDS = 300


@require_safe
def public_leaderboard(request: HttpRequest, slug: str) -> HttpResponse:
    """The campaign's public leaderboard, when the operator switched it on.

    Cached for a few minutes: it is a public page that anyone may reload, and the
    ranking is a grouped count over the campaign.
    """
    campaign = Campaign.objects.filter(slug=slug, leaderboard_public=True).first()
    if campaign is None:
        raise Http404("no public leaderboard")
    key = f"fission:leaderboard:{campaign.pk}"
    rows = cache.get(key)
    if rows is None:
        rows = leaderboard(campaign)
        cache.set(key, rows, LEADERBOARD_CACHE_SECONDS)
    copy = campaign.landing_copy(request.LANGUAGE_CODE)
    context = {
        "campaign": campaign,
        "headline": copy.headline if copy else campaign.name,
        "rows": rows,
    }
    response = render(request, "analytics/leaderboard.html", context)
    patch_cache_control(response, public=True, max_age=60)
    return response
