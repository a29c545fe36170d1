"""/metrics follows the portal's work: pages, operations, the queue, cloud calls, reconcile.

The operations run through the real engine and task path (``run_tasks``) against the cloud;
one test runs them in a real ``db_worker`` process and scrapes from another, which is what
the metrics' multiprocess mode is for.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from portal import cloud, services
from portal.models import Instance, Operation
from portal.openstack import errors
from tests.integration.conftest import (
    Cast,
    PortalCloud,
    Site,
    active_vm,
    finished,
    launch_code,
    unique,
)
from tests.scrape import Samples, parse, scrape, value

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.cloud,
    pytest.mark.needs("identity", "compute", "network", "image"),
]

COUNT = "portal_http_request_duration_seconds_count"
CLOUD_COUNT = "portal_cloud_request_duration_seconds_count"
ERRORS = "portal_cloud_request_errors_total"
CLOUD_SUM = "portal_cloud_request_duration_seconds_sum"
FINISHED = "portal_operations_finished_total"
DEPTH = "portal_operation_queue_depth"
OLDEST = "portal_operation_queue_oldest_age_seconds"
POLLS = "portal_poll_answers_total"
RECONCILED = "portal_reconcile_last_success_timestamp_seconds"


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def soldier_browser(cast: Cast) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(cast.soldier.user, backend="portal.selfservice.auth.KeystoneBackend")
    return client


@pytest.fixture(autouse=True)
def _static_files_without_a_manifest(settings: Any) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    # The polls' "unchanged" answer as deployed (tests/selfservice/conftest.py says why a
    # per-process cache is enough here: the worker runs in this process).
    settings.POLL_FAST_PATH = True
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"


def test_a_page_a_poll_and_a_power_operation_move_their_numbers(
    cast: Cast, tasks: Any, client: Client
) -> None:
    instance = active_vm(cast, tasks)
    soldier = soldier_browser(cast)
    before = scrape(client)

    # The soldier's card, polled by htmx: once with news, once with the status it already shows.
    card_url = f"/vm/{instance.pk}/card/"
    news = soldier.get(card_url, {"seen": "building"}, HTTP_HX_REQUEST="true")
    assert news.status_code == 200
    shown = re.search(r'name="seen" value="([^"]*)"', news.content.decode())
    assert shown is not None
    nothing_new = soldier.get(card_url, {"seen": shown.group(1)}, HTTP_HX_REQUEST="true")
    assert nothing_new.status_code == 204

    # A stop, queued and not yet run: the queue shows it, and how long it has waited.
    op = services.instance_power(instance=instance, action=Instance.Action.STOP)
    oldest = (
        Operation.objects.filter(state=Operation.State.QUEUED)
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    assert oldest is not None
    asked = timezone.now()
    queued = scrape(client)
    answered = timezone.now()
    assert moved(before, queued, DEPTH) == 1
    assert (
        (asked - oldest).total_seconds()
        <= value(queued, OLDEST)
        <= (answered - oldest).total_seconds()
    )

    tasks()
    assert finished(op).state == Operation.State.SUCCEEDED
    after = scrape(client)

    assert moved(before, after, COUNT, view="selfservice:vm_card", method="GET", status="2xx") == 2
    assert moved(before, after, POLLS, view="selfservice:vm_card", answer="changed") == 1
    assert moved(before, after, POLLS, view="selfservice:vm_card", answer="unchanged") == 1
    assert moved(before, after, FINISHED, kind="power", outcome="succeeded") == 1
    assert moved(before, after, FINISHED, kind="power", outcome="failed") == 0
    # The stop and the wait for SHUTOFF are compute calls, timed.
    assert moved(before, after, CLOUD_COUNT, service="compute") >= 2
    assert moved(before, after, CLOUD_SUM, service="compute") > 0
    assert value(after, DEPTH) == value(before, DEPTH)
    assert value(after, OLDEST) == 0


def test_a_reconcile_sets_the_last_success_time(
    portal_cloud: PortalCloud, tasks: Any, client: Client
) -> None:
    before = scrape(client)

    op = services.cloud_reconcile()
    tasks()
    op = finished(op)
    after = scrape(client)

    assert op.state == Operation.State.SUCCEEDED
    assert op.finished_at is not None
    assert value(after, RECONCILED) == op.finished_at.timestamp() > value(before, RECONCILED)
    assert moved(before, after, FINISHED, kind="reconcile", outcome="succeeded") == 1


def test_cloud_errors_are_counted_by_service_and_kind(
    devcloud: Any, portal_cloud: PortalCloud, client: Client
) -> None:
    before = scrape(client)
    portal_cloud.faults.add(method="GET", path="/v2.0/networks$", status=503, count=1)
    portal_cloud.faults.add(method="GET", path="/servers/detail$", status=409, count=1)

    admin = cloud.get_client()
    admin.list_networks()  # the 503 is retried, the second answer is the list
    with pytest.raises(errors.Conflict):
        admin.list_servers(all_projects=True)
    after = scrape(client)

    assert moved(before, after, ERRORS, service="network", error="5xx") == 1
    assert moved(before, after, ERRORS, service="compute", error="4xx") == 1
    assert moved(before, after, CLOUD_COUNT, service="network") >= 2


def test_a_worker_process_counts_where_another_process_scrapes(site: Site) -> None:
    op_id = int(site.shell(launch_code(unique("met"))))
    scrape_code = (
        "from portal import metrics\nprint(metrics.render()[0].decode().replace('\\n', '|'))\n"
    )
    queued = parse(site.shell(scrape_code).replace("|", "\n"))
    assert value(queued, DEPTH) == 1
    assert value(queued, OLDEST) > 0

    site.start_worker()
    assert site.wait_for(op_id, lambda state, step: state in ("succeeded", "failed"))[0] == (
        "succeeded"
    )
    after = parse(site.shell(scrape_code).replace("|", "\n"))

    # Counted by the db_worker process, read by this separate one.
    assert value(after, FINISHED, kind="launch", outcome="succeeded") == 1
    assert value(after, CLOUD_COUNT, service="compute") >= 1
    assert value(after, CLOUD_COUNT, service="network") >= 1
    assert value(after, CLOUD_COUNT, service="identity") >= 1
    assert value(after, DEPTH) == 0
