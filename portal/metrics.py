"""The portal's Prometheus metrics: what every process counts, and what the database says.

Web workers, task workers and the scheduler each write their counts to files of their own in
``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode; the settings point it into
``VAR_DIR``); a scrape adds them up. Facts the database holds (the queue, the last reconcile)
are read from it at scrape time, so they are exact whichever process changed them.

README "Metrics" says what each one means.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError
from django.db.models import Count, Max, Min
from django.http import HttpRequest
from django.urls import Resolver404, resolve
from django.utils import timezone
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from portal.clientaddress import client_address
from portal.models import Operation
from portal.openstack.transport import Call, watch_calls

logger = logging.getLogger(__name__)

# Every metric must be a multiprocess one, or a process's counts would never reach a scrape.
# prometheus-client picks the kind when it is first imported, from the environment the settings
# prepare; if something imported it earlier, pick it now, before any metric exists.
if not getattr(values.ValueClass, "_multiprocess", False):
    values.ValueClass = values.MultiProcessValue()

# Kept out of the library's global registry: a scrape reads every process's files instead.
_NOT_REGISTERED = None

HTTP_REQUEST_SECONDS = Histogram(
    "portal_http_request_duration_seconds",
    "Time to answer a request, by view (URL name), method and status class.",
    ["view", "method", "status"],
    registry=_NOT_REGISTERED,
)
POLL_ANSWERS = Counter(
    "portal_poll_answers",
    "Answers to htmx polls: whether the polled part had changed since the poll before.",
    ["view", "answer"],
    registry=_NOT_REGISTERED,
)
OPERATIONS_FINISHED = Counter(
    "portal_operations_finished",
    "Operations that ended, by kind and outcome (succeeded, failed, cancelled, refused).",
    ["kind", "outcome"],
    registry=_NOT_REGISTERED,
)
CLOUD_REQUEST_SECONDS = Histogram(
    "portal_cloud_request_duration_seconds",
    "Time of one HTTP exchange with the cloud, by service (failed exchanges included).",
    ["service"],
    registry=_NOT_REGISTERED,
)
CLOUD_REQUEST_ERRORS = Counter(
    "portal_cloud_request_errors",
    "Exchanges with the cloud that failed, by service and error (4xx, 5xx, timeout, connection).",
    ["service", "error"],
    registry=_NOT_REGISTERED,
)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def metrics_dir() -> Path:
    return Path(settings.PROMETHEUS_MULTIPROC_DIR)


def install() -> None:
    """Make the files' directory and count this process's cloud calls (``PortalConfig.ready``)."""
    path = metrics_dir()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR") != str(path):
        raise ImproperlyConfigured(
            "PROMETHEUS_MULTIPROC_DIR changed after the settings were read; set it before start"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImproperlyConfigured(f"cannot make the metrics directory {path}: {exc}") from exc
    watch_calls(record_cloud_call)


# --- what a process counts -------------------------------------------------------------------


def record_cloud_call(call: Call) -> None:
    CLOUD_REQUEST_SECONDS.labels(call.service).observe(call.seconds)
    if call.outcome not in ("2xx", "3xx"):
        CLOUD_REQUEST_ERRORS.labels(call.service, call.outcome).inc()


def record_operation_finished(kind: str, outcome: str, count: int = 1) -> None:
    OPERATIONS_FINISHED.labels(kind, outcome).inc(count)


def record_poll_answer(view: str, *, changed: bool) -> None:
    POLL_ANSWERS.labels(view, "changed" if changed else "unchanged").inc()


def view_label(request: HttpRequest) -> str:
    """The URL name that answered (never the path: the label's values must stay few)."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        # Answered before URL resolution: /healthz and /metrics by their middleware, static
        # files by whitenoise, a refused host by CommonMiddleware.
        if request.path_info.startswith("/" + settings.STATIC_URL.lstrip("/")):
            return "static"
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return "unmatched"
    return match.view_name


def record_request(request: HttpRequest, status: int, seconds: float) -> None:
    method = request.method if request.method in _METHODS else "other"
    HTTP_REQUEST_SECONDS.labels(view_label(request), method, f"{status // 100}xx").observe(seconds)


# --- who may scrape ---------------------------------------------------------------------------


def _allowed_address(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in ipaddress.ip_network(net, strict=False) for net in _allowed_networks())


def _allowed_networks() -> list[str]:
    return list(settings.METRICS_ALLOWED_NETWORKS)


def _bearer_token(request: HttpRequest) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def scrape_allowed(request: HttpRequest) -> bool:
    """From an allowed network, or with ``Authorization: Bearer <METRICS_TOKEN>``."""
    expected = settings.METRICS_TOKEN
    given = _bearer_token(request)
    if expected and given and hmac.compare_digest(given.encode(), expected.encode()):
        return True
    return _allowed_address(client_address(request))


# --- a scrape ---------------------------------------------------------------------------------


class DatabaseCollector(Collector):
    """The queue and the last reconcile, read from the database at each scrape."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "portal_metrics_database_up",
            "1 when the scrape could read the database (the gauges below come from it).",
        )
        try:
            families = list(self._from_database())
        except DatabaseError as exc:
            logger.warning("metrics: database unreadable: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _from_database(self) -> Iterable[Metric]:
        from django_tasks_db.models import DBTaskResult

        now = timezone.now()
        queued = Operation.objects.filter(state=Operation.State.QUEUED).aggregate(
            depth=Count("id"), oldest=Min("created_at")
        )
        running = Operation.objects.filter(state=Operation.State.RUNNING).count()
        last = Operation.objects.filter(
            kind=Operation.Kind.RECONCILE, state=Operation.State.SUCCEEDED
        ).aggregate(at=Max("finished_at"))["at"]
        ready_tasks = DBTaskResult.objects.ready().count()

        gauge = GaugeMetricFamily(
            "portal_operation_queue_depth", "Operations queued that no worker has started."
        )
        gauge.add_metric([], queued["depth"])
        yield gauge
        oldest = queued["oldest"]
        gauge = GaugeMetricFamily(
            "portal_operation_queue_oldest_age_seconds",
            "How long the oldest queued operation has waited (0 when none waits).",
        )
        gauge.add_metric([], (now - oldest).total_seconds() if oldest else 0.0)
        yield gauge
        gauge = GaugeMetricFamily(
            "portal_operations_running", "Operations a worker has started and not ended."
        )
        gauge.add_metric([], running)
        yield gauge
        gauge = GaugeMetricFamily(
            "portal_tasks_ready",
            "Task-queue rows due to run now and not yet taken by a worker (db_worker backlog).",
        )
        gauge.add_metric([], ready_tasks)
        yield gauge
        gauge = GaugeMetricFamily(
            "portal_reconcile_last_success_timestamp_seconds",
            "When the last reconcile with the cloud succeeded (Unix time; 0: never).",
        )
        gauge.add_metric([], last.timestamp() if last else 0.0)
        yield gauge


def render() -> tuple[bytes, str]:
    """A scrape: every process's counts added up, and the database's facts."""
    registry = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(registry, path=str(metrics_dir()))
    registry.register(DatabaseCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST
