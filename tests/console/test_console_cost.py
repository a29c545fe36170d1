"""Cost does not grow with N: console pages make no cloud call, and as many SQL queries at 10
VMs as at 200 (the status decoder, the last operation and the links are loaded in bulk)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from portal.models import Batch, Drift, FloatingIP, Instance, Operation, Project, Soldier
from tests.console.conftest import logged_in
from tests.integration.conftest import make_soldier, recorded_calls, unique

pytestmark = pytest.mark.django_db

STATES = [
    ("ACTIVE", 1, "", ""),
    ("SHUTOFF", 4, "", ""),
    ("BUILD", 0, "spawning", "launch"),
    ("ACTIVE", 4, "", ""),
    ("ERROR", 0, "", ""),
]


def populate(n: int) -> Batch:
    """``n`` VMs over n/2 soldiers, each VM with operations, a floating IP, some with drift."""
    batch = Batch.objects.create(kind="start", total=n)
    now = timezone.now()
    soldiers: list[Soldier] = []
    for i in range(max(1, n // 2)):
        soldier = make_soldier(unit=f"{i % 3 + 1}사단", discharge_on=now.date() + timedelta(days=i))
        Project.objects.create(soldier=soldier, name=f"cs-{soldier.keystone_user_name}")
        soldiers.append(soldier)
    for i in range(n):
        status, power, task, action = STATES[i % len(STATES)]
        owner = soldiers[i % len(soldiers)]
        instance = Instance.objects.create(
            project=owner.project,
            owner=owner,
            name=unique("vm"),
            server_id=unique("srv"),
            status=status,
            vm_state=status.lower(),
            task_state=task,
            power_state=power,
            pending_action=action,
            host=f"compute{i % 2 + 1}",
            fixed_ip=f"10.0.{i // 250}.{i % 250}",
            floating_ip=f"172.24.{i // 250}.{i % 250}",
            launched_at=now,
            launched_at_raw=now.strftime("%Y-%m-%dT%H:%M:%S.%f"),
            running_since=now if power == 1 else None,
            last_error="boom" if i % 7 == 0 else "",
        )
        for state in (Operation.State.SUCCEEDED, Operation.State.FAILED):
            op = Operation.objects.create(
                kind=Operation.Kind.POWER,
                state=state,
                instance=instance,
                soldier=owner,
                batch=batch,
                message="The power action finished.",
                request_ids=[f"req-{i}-{state}"],
            )
        if action:
            Instance.objects.filter(pk=instance.pk).update(pending_operation=op)
        FloatingIP.objects.create(
            neutron_id=unique("fip"), address=instance.floating_ip, instance=instance
        )
        if i % 4 == 0:
            Drift.objects.create(
                kind=Drift.Kind.DELETED_OUTSIDE, resource_id=instance.server_id or ""
            )
    return batch


def pages(batch: Batch) -> dict[str, str]:
    instance = Instance.objects.order_by("pk").first()
    soldier = Soldier.objects.order_by("pk").first()
    assert instance is not None
    assert soldier is not None
    return {
        "instance list": reverse("admin:portal_instance_changelist"),
        "instance list, status filter": reverse("admin:portal_instance_changelist")
        + "?merged_status=running",
        "instance list, other filters": reverse("admin:portal_instance_changelist")
        + "?has_drift=yes&failed_ops=yes&discharge_within=30",
        "instance list with facets": reverse("admin:portal_instance_changelist") + "?_facets=1",
        "instance search": reverse("admin:portal_instance_changelist") + "?q=10.0",
        "soldier list": reverse("admin:portal_soldier_changelist"),
        "soldier list with facets": reverse("admin:portal_soldier_changelist") + "?_facets=1",
        "operation list": reverse("admin:portal_operation_changelist"),
        "drift page": reverse("admin:portal_drift_changelist"),
        "floating IP list": reverse("admin:portal_floatingip_changelist"),
        "index": reverse("admin:index"),
        "status page": reverse("admin:portal_status"),
        "instance detail": reverse("admin:portal_instance_change", args=[instance.pk]),
        "soldier detail": reverse("admin:portal_soldier_change", args=[soldier.pk]),
    }


def measure(client: Client, url: str) -> tuple[int, int]:
    client.get(url)  # warm caches (content types, translations, the session)
    with recorded_calls() as calls, CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(queries), len(calls.exchanges)


def counts_at(n: int, client_for: Callable[[], Client]) -> dict[str, tuple[int, int]]:
    Instance.objects.all().delete()
    batch = populate(n)
    client = client_for()
    return {name: measure(client, url) for name, url in pages(batch).items()}


def test_pages_make_no_cloud_call_and_the_same_queries_at_10_and_200_vms(
    operator_user: Any,
) -> None:
    def client_for() -> Client:
        return logged_in(operator_user)

    small = counts_at(10, client_for)
    Operation.objects.all().delete()
    FloatingIP.objects.all().delete()
    Drift.objects.all().delete()
    large = counts_at(200, client_for)
    for name in small:
        queries_10, calls_10 = small[name]
        queries_200, calls_200 = large[name]
        assert calls_10 == calls_200 == 0, name
        assert queries_10 == queries_200, (name, queries_10, queries_200)
    print({name: small[name][0] for name in small})  # the query counts, for the report


def test_the_batch_page_and_its_poll_cost_the_same_at_10_and_200_rows(
    operator: Client,
) -> None:
    found = []
    for n in (10, 200):
        batch = populate(n)
        url = reverse("admin:portal_batch_change", args=[batch.pk])
        page = measure(operator, url)
        with recorded_calls() as calls, CaptureQueriesContext(connection) as queries:
            poll = operator.get(url, HTTP_HX_REQUEST="true")
        assert poll.status_code in (200, 286)
        found.append((page, (len(queries), len(calls.exchanges))))
    (page_10, poll_10), (page_200, poll_200) = found
    assert page_10 == page_200
    assert poll_10 == poll_200
    assert page_10[1] == poll_10[1] == 0
