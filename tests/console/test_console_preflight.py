"""Launching from the console: the form's hosts come from the cloud, the preflight lists what
will not fit before anything is created, and staff launch the rows that fit."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from django.test import Client

from portal import services
from portal.models import Batch, Instance, Soldier
from portal.openstack import OpenStackClient
from portal.services.onboarding import external_network_id
from tests.console.support import act, messages_of, onboarded
from tests.integration.conftest import Cast, PortalCloud, make_soldier, recorded_calls

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.cloud,
    pytest.mark.needs("identity", "compute", "network", "image"),
]


def hidden_ids(html: str) -> list[str]:
    return re.findall(r'name="_selected_action" value="(\d+)"', html)


def set_quota(admin: OpenStackClient, soldier: Soldier, **limits: int) -> None:
    admin.transport.request(
        "compute",
        "PUT",
        f"/os-quota-sets/{soldier.project.keystone_id}",
        json={"quota_set": limits},
    )


def test_the_capacity_calls_read_quotas_free_addresses_and_placement(
    cast: Cast, tasks: Any, admin: OpenStackClient
) -> None:
    soldier = onboarded(tasks)
    quota = admin.get_compute_quota(soldier.project.keystone_id)
    assert quota.instances.in_use == 0
    assert quota.instances.limit > 0
    defaults = admin.get_compute_quota_defaults(soldier.project.keystone_id)
    assert defaults.cores.limit == quota.cores.limit
    availability = admin.get_network_ip_availability(external_network_id(admin))
    assert availability.total_ips >= availability.used_ips > 0
    assert availability.subnets
    if admin.has_service("placement"):
        providers = admin.list_resource_providers()
        assert providers
        inventories = admin.get_provider_inventories(providers[0].uuid)
        assert inventories["VCPU"].capacity >= inventories["VCPU"].total
        assert set(admin.get_provider_usages(providers[0].uuid)) >= {"VCPU"}
    assert not admin.has_service("no-such-service")


def test_the_launch_form_offers_the_clouds_compute_hosts(
    operator: Client, cast: Cast, admin: OpenStackClient
) -> None:
    soldier = make_soldier()
    page = act(operator, "soldier", "launch_vm", [soldier.pk]).content.decode()
    for service in admin.list_compute_services():
        assert f'<option value="{service.host}"' in page
    assert cast.template.name in page
    assert hidden_ids(page) == [str(soldier.pk)]
    assert not Instance.objects.exists()


def test_preflight_lists_rows_that_will_not_fit_and_launches_only_the_others(
    operator: Client, cast: Cast, tasks: Any, admin: OpenStackClient
) -> None:
    roomy, full, disabled = onboarded(tasks), onboarded(tasks), make_soldier()
    Soldier.objects.filter(pk=disabled.pk).update(state=Soldier.State.DISABLED)
    set_quota(admin, full, instances=1)
    host = admin.list_compute_services()[-1].host
    with recorded_calls() as calls:
        page = act(
            operator,
            "soldier",
            "launch_vm",
            [roomy.pk, full.pk, disabled.pk],
            step="preflight",
            template=cast.template.pk,
            count=2,
            host=host,
            second_vm="on",
        )
    html = page.content.decode()
    assert page.status_code == 200
    assert not calls.mutations()  # nothing is created by a preflight
    assert "2 rows will not fit" in html
    assert "project quota of instances: 0 of 1 used, 2 more needed" in html
    assert "the soldier is disabled" in html
    free = admin.get_network_ip_availability(external_network_id(admin)).free_ips
    assert f"<strong>{free}</strong>" in html
    assert host in html
    assert hidden_ids(html) == [str(roomy.pk)]  # the launch form carries the fitting row only
    assert "Launch 2 VMs for the rows that fit" in html

    response = act(
        operator,
        "soldier",
        "launch_vm",
        hidden_ids(html),
        step="launch",
        template=cast.template.pk,
        count=2,
        host=host,
        second_vm="on",
        launch_key=re.search(r'name="launch_key" value="([0-9a-f]{32})"', html)[1],  # type: ignore[index]
    )
    batch = Batch.objects.get()
    assert response["Location"].endswith(f"/batch/{batch.pk}/change/")
    tasks()
    vms = list(Instance.objects.filter(owner=roomy).order_by("name"))
    assert [vm.name[-2:] for vm in vms] == ["-1", "-2"]
    assert {vm.status for vm in vms} == {"ACTIVE"}
    assert {vm.host for vm in vms} == {host}
    assert not Instance.objects.filter(owner__in=[full, disabled]).exists()


def test_a_launch_the_quota_refuses_fails_with_the_clouds_quota_message(
    operator: Client, cast: Cast, tasks: Any, admin: OpenStackClient
) -> None:
    soldier = onboarded(tasks)
    set_quota(admin, soldier, instances=0)
    act(
        operator,
        "soldier",
        "launch_vm",
        [soldier.pk],
        step="launch",
        template=cast.template.pk,
        count=1,
        host="",
        launch_key=uuid.uuid4().hex,
    )
    tasks()
    instance = Instance.objects.get(owner=soldier)
    assert "quota is used up" in instance.last_error
    assert instance.server_id is None


def test_a_launch_for_a_disabled_soldier_is_refused_before_anything_is_created(
    operator: Client, cast: Cast
) -> None:
    soldier = make_soldier(state=Soldier.State.DISABLED)
    response = act(
        operator,
        "soldier",
        "launch_vm",
        [soldier.pk],
        step="launch",
        template=cast.template.pk,
        count=1,
        host="",
        launch_key=uuid.uuid4().hex,
        follow=True,
    )
    assert any("disabled (discharged) soldier cannot get a VM" in m for m in messages_of(response))
    assert not Instance.objects.exists()


def test_a_cloud_5xx_during_preflight_says_so_and_offers_no_launch(
    devcloud: Any, operator: Client, cast: Cast, tasks: Any, portal_cloud: PortalCloud
) -> None:
    soldier = onboarded(tasks)
    portal_cloud.faults.add(method="GET", path="/os-quota-sets/", status=503)
    page = act(
        operator,
        "soldier",
        "launch_vm",
        [soldier.pk],
        step="preflight",
        template=cast.template.pk,
        count=1,
        host="",
    ).content.decode()
    assert "The cloud could not answer the checks" in page
    assert "Nothing can be launched." in page
    assert 'name="step" value="launch"' not in page
    assert not Instance.objects.exists()


def test_an_invalid_form_is_shown_again_with_its_errors(operator: Client, cast: Cast) -> None:
    soldier = make_soldier()
    page = act(
        operator,
        "soldier",
        "launch_vm",
        [soldier.pk],
        step="preflight",
        template=cast.template.pk,
        count=99,
        host="no-such-host",
    ).content.decode()
    assert "errorlist" in page
    assert not Instance.objects.exists()


def test_the_preflight_of_a_soldier_not_onboarded_uses_the_default_quota(
    cast: Cast, admin: OpenStackClient
) -> None:
    soldier = make_soldier()
    result = services.launch_preflight(soldiers=[soldier], template=cast.template, count=1)
    assert not result.problems
    (row,) = result.rows
    assert row.fits
    assert row.quota is not None
    assert row.quota.instances.in_use == 0
