"""Middleware of the portal's own."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from portal import metrics, views


class RequestMetricsMiddleware:
    """Time every request and count it under the view that answered (``portal.metrics``)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        metrics.record_request(request, response.status_code, time.perf_counter() - started)
        return response


class HealthCheckMiddleware:
    """Answer ``/healthz`` and ``/metrics`` before anything looks at the ``Host`` header.

    Load balancers probe and Prometheus scrapes by address (``Host: 10.0.0.5``), which
    ``ALLOWED_HOSTS`` rightly refuses for every page; these are answered first. The probe says
    nothing internal; the metrics are answered here only to a client allowed to scrape.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info == "/healthz":
            return views.healthz(request)
        if request.path_info == "/metrics" and metrics.scrape_allowed(request):
            return views.metrics(request)
        # Anyone else goes the way of every page: the same host check and the same 404.
        return self.get_response(request)
