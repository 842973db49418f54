"""Friendly error pages for people, the contract's JSON for API clients.

Each page says what happened and what to do, in the visitor's language, and never shows
a stack trace or the exception's text.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

logger = logging.getLogger(__name__)


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def _api_error(code: str, message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, "fields": {}}}, status=status)


def error_page(request: HttpRequest, *, status: int, title: str, message: str) -> HttpResponse:
    return render(
        request, "landing/error.html", {"title": title, "message": message}, status=status
    )


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return _api_error("not_found", "Not found.", 404)
    return error_page(
        request,
        status=404,
        title=_("Page not found"),
        message=_(
            "This link does not lead anywhere. If a friend sent it to you, check that it "
            "was copied whole, or ask them to send it again."
        ),
    )


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return _api_error("bad_request", "Bad request.", 400)
    return error_page(
        request,
        status=400,
        title=_("Something is wrong with this request"),
        message=_("Please go back and try again."),
    )


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return _api_error("permission_denied", "Permission denied.", 403)
    return error_page(
        request,
        status=403,
        title=_("Not allowed"),
        message=_("You cannot open this page."),
    )


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: usually a form left open too long, or cookies switched off."""
    logger.info("CSRF check failed on %s: %s", request.path, reason)
    return error_page(
        request,
        status=403,
        title=_("Please try again"),
        message=_(
            "The form could not be sent because it had expired or your browser blocked "
            "cookies. Go back, reload the page and send the form again."
        ),
    )


def rate_limited(request: HttpRequest, *, retry_after: int) -> HttpResponse:
    response = error_page(
        request,
        status=429,
        title=_("Too many tries"),
        message=_(
            "Many people have joined from your network in the last few minutes. Please "
            "wait a little and try again."
        ),
    )
    response["Retry-After"] = str(max(1, retry_after))
    return response


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return _api_error("server_error", "Something went wrong on our side.", 500)
    try:
        return error_page(
            request,
            status=500,
            title=_("Something went wrong"),
            message=_("Something went wrong on our side. Please try again in a moment."),
        )
    except Exception:  # the page itself failed: a plain answer rather than none
        logger.exception("the 500 page could not be rendered")
        return HttpResponse("Server error", status=500, content_type="text/plain")
