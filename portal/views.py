import logging

from django.db import DatabaseError, connection
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from portal import metrics as portal_metrics

logger = logging.getLogger(__name__)


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness and readiness: 200 when the database answers a query, 503 otherwise."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        logger.warning("healthz: database unreachable: %s", exc.__class__.__name__)
        return JsonResponse({"status": "error", "database": "unreachable"}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})


@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """The Prometheus scrape; a client that may not scrape is told there is nothing here."""
    if not portal_metrics.scrape_allowed(request):
        raise Http404
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    body, content_type = portal_metrics.render()
    return HttpResponse(body, content_type=content_type)
