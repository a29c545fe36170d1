"""Discharge: VMs deleted leak-proof, the user disabled, the owned network torn down in order."""

from datetime import timedelta
from typing import Any

import pytest

from portal import services
from portal.models import Operation, ProjectNetwork, Soldier, seoul_today
from portal.openstack import NotFound, OpenStackClient
from tests.integration.conftest import Cast, finished, recorded_calls

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.cloud,
    pytest.mark.needs("identity", "compute", "network", "image"),
]


def test_the_scheduler_discharges_a_soldier_whose_date_has_passed(
    cast: Cast, admin: OpenStackClient, tasks: Any
) -> None:
    soldier = cast.soldier
    first = services.instance_launch(soldier=soldier, template=cast.template)
    tasks()
    second = services.instance_launch(
        soldier=soldier, template=cast.template, name="second", second_vm=True
    )
    tasks()
    soldier.refresh_from_db()
    soldier.discharge_on = seoul_today() - timedelta(days=1)
    soldier.save()
    own = ProjectNetwork.objects.get(project__soldier=soldier)
    with recorded_calls() as calls:
        report = services.scheduler_tick()
        assert report.discharges_started == 1
        tasks()

    op = Operation.objects.get(soldier=soldier, kind=Operation.Kind.DISCHARGE)
    assert finished(op).state == Operation.State.SUCCEEDED, op.message_text
    soldier.refresh_from_db()
    assert soldier.state == Soldier.State.DISABLED
    assert not admin.get_user(soldier.keystone_user_id).enabled
    for instance in (first, second):
        instance.refresh_from_db()
        assert instance.status == "DELETED"
    project_id = soldier.project.keystone_id
    assert admin.list_servers(all_projects=True, project_id=project_id) == []
    assert admin.list_floating_ips(project_id=project_id) == []
    for getter, resource_id in (
        (admin.get_router, own.router_id),
        (admin.get_network, own.network_id),
    ):
        with pytest.raises(NotFound):
            getter(resource_id)

    # Interfaces, router, subnet, network: the only order Neutron accepts.
    teardown = [
        e.path
        for e in calls.exchanges
        if ("/v2.0/routers" in e.path and e.method in ("PUT", "DELETE"))
        or (e.method == "DELETE" and ("/v2.0/subnets/" in e.path or "/v2.0/networks/" in e.path))
    ]
    assert [p.rsplit("/", 2)[-1] if "interface" in p else p.split("/")[-2] for p in teardown] == [
        "remove_router_interface",
        "routers",
        "subnets",
        "networks",
    ]
    # A second tick finds nothing more to do.
    assert services.scheduler_tick().discharges_started == 0


def test_a_postponed_discharge_waits_and_the_soldier_sees_a_warning(
    cast: Cast, tasks: Any, settings: Any
) -> None:
    settings.DISCHARGE_WARNING_DAYS = 7
    soldier = cast.soldier
    soldier.discharge_on = seoul_today() - timedelta(days=1)
    soldier.state = Soldier.State.ACTIVE
    soldier.save()
    services.soldier_discharge_postpone(
        soldier=soldier, until=seoul_today() + timedelta(days=3), requested_by=cast.staff
    )
    soldier.refresh_from_db()
    assert soldier.discharge_warning
    assert soldier.days_until_discharge == 3

    assert services.scheduler_tick().discharges_started == 0
    assert not Operation.objects.filter(kind=Operation.Kind.DISCHARGE).exists()


def test_postponing_into_the_past_is_refused(cast: Cast) -> None:
    with pytest.raises(services.OperationRefused):
        services.soldier_discharge_postpone(
            soldier=cast.soldier, until=seoul_today() - timedelta(days=1)
        )


def test_discharge_waits_for_a_vm_busy_with_another_action(cast: Cast, tasks: Any) -> None:
    soldier = cast.soldier
    instance = services.instance_launch(soldier=soldier, template=cast.template)
    tasks()
    instance.refresh_from_db()
    services.instance_power(instance=instance, action=instance.Action.STOP)
    with recorded_calls() as calls:
        op = services.soldier_discharge(soldier=soldier, requested_by=cast.staff)
        tasks()

    assert finished(op).state == Operation.State.SUCCEEDED, op.message_text
    instance.refresh_from_db()
    assert instance.status == "DELETED"
    assert len(calls.matching("DELETE", "/servers/")) >= 1
