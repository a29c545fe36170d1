"""Cost does not grow with N: console pages make no cloud call, and as many SQL queries at 10
VMs as at 200 (the status decoder, the last operation and the links are loaded in bulk).

The lists' rows are made by ``portal.admin.result_rows`` and the status page's by
``status_page.status_row``, both from only the columns they show: the tests below also hold
those rows to the admin's own, and the columns to what the status decoder reads.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.templatetags import admin_list
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from portal import services
from portal.admin import result_rows
from portal.admin.status_page import ROW_FIELDS
from portal.models import Batch, Drift, FloatingIP, Instance, Operation, Project, Soldier
from portal.status import MERGED_STATUS_FIELDS, STATUS_KEYS, Audience, merged_status
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


def test_the_vm_and_soldier_lists_the_status_page_and_its_poll_cost_the_same_at_5_and_30_vms(
    operator: Client,
) -> None:
    """Every row is on each page at both sizes, so one query per row would show as 25 more."""
    pages = {
        "VM list": (reverse("admin:portal_instance_changelist"), {}),
        "soldier list": (reverse("admin:portal_soldier_changelist"), {}),
        "status page": (reverse("admin:portal_status"), {}),
        # Some VMs are building: the live part answers (200, not htmx's 286 "stop polling").
        "status poll": (reverse("admin:portal_status"), {"HX-Request": "true"}),
    }
    found: dict[tuple[str, int], tuple[int, int]] = {}
    for n in (5, 30):
        Instance.objects.all().delete()
        Operation.objects.all().delete()
        FloatingIP.objects.all().delete()
        populate(n)
        vms = list(Instance.objects.values_list("name", flat=True))
        soldiers = list(Soldier.objects.values_list("name", flat=True))
        assert len(vms) == n
        for page, (url, headers) in pages.items():
            operator.get(url, headers=headers)  # warm caches (content types, translations)
            with recorded_calls() as calls, CaptureQueriesContext(connection) as queries:
                response = operator.get(url, headers=headers)
            assert response.status_code == 200, page
            html = response.content.decode()
            shown = soldiers if page == "soldier list" else vms
            assert all(name in html for name in shown), page  # every row is on the page
            found[page, n] = len(queries), len(calls.exchanges)
    for page in pages:
        assert found[page, 5] == found[page, 30], (page, found[page, 5], found[page, 30])
        assert found[page, 5][1] == 0, page


@pytest.mark.parametrize(
    ("model", "query"),
    [
        (Instance, ""),
        (Instance, "?o=3.-1&has_drift=no&power_state__exact=1"),
        (Instance, "?q=vm"),
        (Soldier, ""),
        (Soldier, "?o=-2&state__exact=pending"),
        (FloatingIP, ""),
    ],
)
def test_the_console_rows_are_the_admins_own_rows(
    model: Any, query: str, operator_user: Any
) -> None:
    """``result_rows`` only works out each column once: every cell is what the admin makes."""
    populate(12)
    model_admin = admin.site._registry[model]
    request = RequestFactory().get(
        reverse(f"admin:portal_{model._meta.model_name}_changelist") + query
    )
    request.user = operator_user
    changelist = model_admin.get_changelist_instance(request)
    assert changelist.result_count > 0
    assert result_rows._plan(changelist) is not None  # the fast rows, not the fallback
    # A fast row is one item, its cells side by side: the template writes them so anyway.
    fast = ["".join(row) for row in result_rows.results(changelist)]
    assert fast == ["".join(row) for row in admin_list.results(changelist)]
    if model is not FloatingIP:  # a list with actions: operators get the checkbox column
        assert fast[0].startswith('<td class="action-checkbox">')


def test_the_row_checkbox_is_the_admins_widget(operator_user: Any) -> None:
    populate(2)
    model_admin = admin.site._registry[Instance]
    for vm in Instance.objects.all():
        assert model_admin.action_checkbox(vm) == admin.ModelAdmin.action_checkbox(model_admin, vm)


def test_a_vm_loaded_with_the_status_fields_only_decodes_without_a_query() -> None:
    """The lists and the status page load only these columns: the decoder must need no other."""
    populate(10)
    Instance.objects.filter(status="ERROR").update(fault="No valid host was found")
    Instance.objects.filter(status="SHUTOFF").update(status="SHELVED")  # words from raw values
    full = {
        vm.pk: merged_status(vm, audience=Audience.STAFF)
        for vm in Instance.objects.select_related("pending_operation")
    }
    for fields in (MERGED_STATUS_FIELDS, ROW_FIELDS):
        lean = list(Instance.objects.select_related("pending_operation").only(*fields))
        keys = set()
        with CaptureQueriesContext(connection) as queries:
            for vm in lean:
                for audience in Audience:
                    decoded = merged_status(vm, audience=audience)
                    keys.add(decoded.key)
                    if audience is Audience.STAFF:
                        assert decoded.label == full[vm.pk].label
                        assert decoded.explanation == full[vm.pk].explanation
        assert len(queries) == 0, [q["sql"] for q in queries]
        assert {"building", "error", "unknown", "running", "guest_off"} <= keys


def test_the_status_filter_finds_exactly_the_vms_the_decoder_names() -> None:
    """The list filter decodes groups of alike VMs, not each VM: it must pick the same VMs."""
    populate(20)
    Instance.objects.filter(
        pk__in=Instance.objects.filter(status="ACTIVE").values("pk")[:2]
    ).update(deleted_outside_portal=True)
    Instance.objects.filter(status="SHUTOFF").update(power_state=None, last_error="")
    # No status from the cloud: a failed action if the portal has an error for it, else unknown.
    blank = list(Instance.objects.filter(status="SHUTOFF").values_list("pk", flat=True)[:2])
    Instance.objects.filter(pk=blank[0]).update(status="", last_error="boom")
    Instance.objects.filter(pk=blank[1]).update(status="", last_error="")
    queued = Instance.objects.filter(status="ERROR").first()
    assert queued is not None
    op = Operation.objects.create(kind=Operation.Kind.POWER, instance=queued)
    Instance.objects.filter(pk=queued.pk).update(pending_action="stop", pending_operation=op)
    vms = list(Instance.objects.select_related("pending_operation"))
    seen = set()
    for key, _label in STATUS_KEYS:
        expected = {vm.pk for vm in vms if merged_status(vm, audience=Audience.STAFF).key == key}
        found = set(
            services.instances_with_status(Instance.objects.all(), key).values_list("pk", flat=True)
        )
        assert found == expected, key
        seen |= found
    assert seen == {vm.pk for vm in vms}
    assert {"failed", "unknown", "gone", "queued", "stopped"} <= {
        merged_status(vm).key for vm in vms
    }
