"""Friendly error pages for people, the contract's JSON for API clients.

Each page says what happened and what to do, in the visitor's language, and never shows
a stack trace or the exception's text.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

logger = logging.getLogger(__name__)

# What a client is told to wait when the database is unreachable: long enough for a
# restart or a failover to finish, short enough that people do not give up.
RETRY_AFTER_SECONDS = 5
# A broken or closed connection, a server shutting down or refusing connections, a
# deadlock or serialisation failure: the request may succeed if sent again.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)


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
    if isinstance(exception, RequestDataTooBig):
        return too_large(request)
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


def too_large(request: HttpRequest) -> HttpResponse:
    """413: a body over DATA_UPLOAD_MAX_MEMORY_SIZE (no form of ours comes near it)."""
    if _is_api(request):
        return _api_error("too_large", "The request body is too large.", 413)
    return error_page(
        request,
        status=413,
        title=_("Too much data"),
        message=_(
            "What was sent is far larger than this form takes. Please go back and try again."
        ),
    )


def service_unavailable(request: HttpRequest) -> HttpResponse:
    """503 with Retry-After while the database cannot be reached. Nothing was stored by
    the failed request (its transaction was not committed), so sending it again is safe."""
    if _is_api(request):
        response: HttpResponse = _api_error(
            "unavailable", "The service is briefly unavailable; retry in a few seconds.", 503
        )
    else:
        try:
            response = error_page(
                request,
                status=503,
                title=_("Back in a moment"),
                message=_(
                    "We cannot save or show this just now. Nothing was lost: please try "
                    "again in a few seconds."
                ),
            )
        except Exception:  # the page itself failed: a plain answer rather than none
            logger.exception("the 503 page could not be rendered")
            response = HttpResponse(
                "Service unavailable, retry shortly", status=503, content_type="text/plain"
            )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class DatabaseUnavailableMiddleware:
    """A database that is down or restarting answers 503 with Retry-After (the friendly
    page, or the API's error JSON), never a 500 and a stack trace.

    Connections broken by the outage are discarded by Django at the end of the request
    (and CONN_HEALTH_CHECKS checks a kept one before reuse), so the first request after
    the database is back succeeds.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DATABASE_UNAVAILABLE):
            return None
        logger.warning("database unavailable on %s %s: %s", request.method, request.path, exception)
        return service_unavailable(request)


def server_error(request: HttpRequest) -> HttpResponse:
    # An error raised outside a view (in a middleware) reaches this handler rather than
    # the middleware above: a database outage is still a 503.
    if isinstance(sys.exc_info()[1], DATABASE_UNAVAILABLE):
        return service_unavailable(request)
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
