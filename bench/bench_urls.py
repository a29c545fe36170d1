"""The portal's URLs plus ``/bench/bare``: a Django view that does nothing (the baseline)."""

from django.http import HttpRequest, HttpResponse
from django.urls import include, path


def bare(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    path("bench/bare", bare),
    path("", include("codesquare.urls")),
]
