"""Fission's URLs plus the baselines of the HTTP benchmarks, served by the same gunicorn
behind the same middleware, so that a ratio measures Fission's own work on a request."""

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config import urls as fission


def bare(request: HttpRequest) -> HttpResponse:
    """A bare Django view: no query, no template."""
    return HttpResponseRedirect("/c/bench/") if "redirect" in request.GET else HttpResponse(b"ok")


class MinimalPost(APIView):
    """A minimal authenticated POST: the API's own key authentication and JSON parsing,
    then a 201 with nothing stored."""

    def post(self, request: Request) -> Response:
        return Response({"received": len(request.data)}, status=201)


# Fission's own patterns follow the baselines at the same depth as in production (not
# inside one more include), and its error pages are the same.
urlpatterns = [
    path("bench/bare", bare),
    path("bench/post", MinimalPost.as_view()),
    *fission.urlpatterns,
]
handler400 = fission.handler400
handler403 = fission.handler403
handler404 = fission.handler404
handler500 = fission.handler500
