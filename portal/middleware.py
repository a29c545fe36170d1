"""Middleware of the portal's own."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from portal import views


class HealthCheckMiddleware:
    """Answer ``/healthz`` before anything looks at the ``Host`` header.

    Load balancers probe by address (``Host: 10.0.0.5``), which ``ALLOWED_HOSTS`` rightly
    refuses for every page; the probe is answered first, and it says nothing internal.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info == "/healthz":
            return views.healthz(request)
        return self.get_response(request)
