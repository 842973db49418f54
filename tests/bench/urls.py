"""Fission's URLs plus the baselines of the HTTP benchmarks, served by the same gunicorn
behind the same middleware, so that a ratio measures Fission's own work on a request."""

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import include, path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


def bare(request: HttpRequest) -> HttpResponse:
    """A bare Django view: no query, no template."""
    return HttpResponseRedirect("/c/bench/") if "redirect" in request.GET else HttpResponse(b"ok")


class MinimalPost(APIView):
    """A minimal authenticated POST: the API's own key authentication and JSON parsing,
    then a 201 with nothing stored."""

    def post(self, request: Request) -> Response:
        return Response({"received": len(request.data)}, status=201)


urlpatterns = [
    path("bench/bare", bare),
    path("bench/post", MinimalPost.as_view()),
    path("", include("config.urls")),
]
