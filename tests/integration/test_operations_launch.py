"""Launching: one server, one portal floating IP, whatever goes wrong (any cloud target)."""

from typing import Any

import pytest
from django_tasks_db.models import DBTaskResult

from portal import services
from portal.models import FloatingIP, Instance, Operation, PowerState, Soldier
from portal.openstack import OpenStackClient
from portal.operations import registry
from tests.integration.conftest import (
    ONE_VM,
    Cast,
    PortalCloud,
    finished,
    inventory,
    recorded_calls,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.cloud,
    pytest.mark.needs("identity", "compute", "network", "image"),
]

LAUNCH_STEPS = registry.kind_of(Operation.Kind.LAUNCH).step_names


def launch(cast: Cast, **kwargs: Any) -> tuple[Instance, Operation]:
    instance = services.instance_launch(
        soldier=cast.soldier, template=cast.template, requested_by=cast.staff, **kwargs
    )
    return instance, instance.operations.get()


def test_launch_onboards_builds_the_server_in_the_soldiers_project_and_binds_a_floating_ip(
    cast: Cast, admin: OpenStackClient, tasks: Any
) -> None:
    instance, op = launch(cast)
    assert instance.pending_action == Instance.Action.LAUNCH
    tasks()

    op = finished(op)
    assert op.state == Operation.State.SUCCEEDED, op.message_text
    instance.refresh_from_db()
    soldier = Soldier.objects.get(pk=cast.soldier.pk)
    assert soldier.state == Soldier.State.ACTIVE
    assert inventory(admin, soldier) == ONE_VM

    server = admin.get_server(instance.server_id or "")
    assert server.project_id == soldier.project.keystone_id
    assert server.metadata[services.REQUEST_TAG_KEY] == str(instance.request_tag)
    assert instance.status == "ACTIVE"
    assert instance.power_state == PowerState.RUNNING
    assert instance.launched_at is not None
    assert instance.launched_at.utcoffset() is not None
    assert instance.pending_action == ""
    assert instance.fixed_ip
    assert instance.port_id
    assert instance.last_synced_at

    fip = FloatingIP.objects.get(instance=instance)
    assert fip.created_by_portal
    cloud_fip = admin.get_floating_ip(fip.neutron_id)
    assert cloud_fip.port_id == instance.port_id
    assert cloud_fip.project_id == soldier.project.keystone_id
    assert instance.floating_ip == cloud_fip.floating_ip_address


def test_waiting_for_active_is_spread_over_several_short_task_runs(cast: Cast, tasks: Any) -> None:
    _, op = launch(cast)
    tasks()

    op = finished(op)
    assert op.state == Operation.State.SUCCEEDED
    runs = [r for r in DBTaskResult.objects.all() if r.args_kwargs["args"] == [op.pk]]
    # Waiting for onboarding and for the 0.2 s build is re-checked by later runs instead of
    # one run sleeping through it; every run finished on its own.
    assert len(runs) >= 3
    assert op.attempts == len(runs)
    assert all(r.status == "SUCCESSFUL" for r in runs)


@pytest.mark.parametrize("stop_before", LAUNCH_STEPS[1:])
def test_launch_interrupted_before_each_step_resumes_to_exactly_one_of_everything(
    cast: Cast, admin: OpenStackClient, tasks: Any, interrupt_before: Any, stop_before: str
) -> None:
    interrupt_before(stop_before)
    instance, op = launch(cast)
    tasks()
    op = finished(op)
    assert op.state == Operation.State.FAILED
    assert op.step == stop_before
    assert "internal error" in op.message_text or "내부 오류" in op.message_text

    services.operation_retry(operation=op, requested_by=cast.staff)
    tasks()

    op = finished(op)
    assert op.state == Operation.State.SUCCEEDED, op.message_text
    assert inventory(admin, cast.soldier) == ONE_VM
    instance.refresh_from_db()
    assert instance.status == "ACTIVE"
    assert FloatingIP.objects.filter(instance=instance, created_by_portal=True).count() == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/servers$"), ("POST", "/v2.0/floatingips$"), ("PUT", "/roles/")],
)
def test_launch_whose_create_answer_was_lost_finds_what_it_made_instead_of_a_second_one(
    devcloud: Any,
    cast: Cast,
    admin: OpenStackClient,
    tasks: Any,
    portal_cloud: PortalCloud,
    method: str,
    path: str,
) -> None:
    portal_cloud.faults.add(method=method, path=path, status=502, count=1, after=True)
    instance, op = launch(cast)
    tasks()

    op = finished(op)
    assert op.state == Operation.State.SUCCEEDED, op.message_text
    assert inventory(admin, cast.soldier) == ONE_VM
    assert FloatingIP.objects.get(instance=instance).created_by_portal


def test_a_build_that_fails_ends_the_operation_failed_with_the_clouds_reason(
    devcloud: Any, cast: Cast, tasks: Any, portal_cloud: PortalCloud
) -> None:
    portal_cloud.faults.fail_builds(1)
    instance, op = launch(cast)
    tasks()

    op = finished(op)
    assert op.state == Operation.State.FAILED
    assert op.step == "wait_active"
    instance.refresh_from_db()
    assert instance.status == "ERROR"
    assert instance.pending_action == ""
    assert instance.last_error == op.message_text


def test_a_build_slower_than_the_deadline_fails_with_an_actionable_message(
    cast: Cast, tasks: Any, settings: Any
) -> None:
    services.soldier_onboard(soldier=cast.soldier)
    tasks()
    settings.OPERATION_LAUNCH_TIMEOUT_SECONDS = 0
    _, op = launch(cast)
    tasks()

    op = finished(op)
    assert op.state == Operation.State.FAILED
    assert op.step == "wait_active"
    assert "wait_active" in op.message_text


def test_staff_can_place_a_vm_on_a_chosen_compute_host(
    cast: Cast, admin: OpenStackClient, tasks: Any
) -> None:
    hosts = [s.host for s in admin.list_compute_services()]
    chosen = hosts[-1]
    instance, op = launch(cast, host=chosen)
    tasks()

    assert finished(op).state == Operation.State.SUCCEEDED, finished(op).message_text
    instance.refresh_from_db()
    assert instance.host == chosen
    assert admin.get_server(instance.server_id or "").host == chosen


def test_every_cloud_call_of_a_launch_is_scoped_and_counted(cast: Cast, tasks: Any) -> None:
    services.soldier_onboard(soldier=cast.soldier)
    tasks()
    with recorded_calls() as calls:
        _, op = launch(cast)
        tasks()
    assert finished(op).state == Operation.State.SUCCEEDED
    # Onboarding steps already done cost no calls; exactly one create of each resource.
    assert len(calls.matching("POST", "/servers$")) == 1
    assert len(calls.matching("POST", "/v2.0/floatingips$")) == 1
    assert not calls.matching("POST", "/v3/users$")


def test_the_floating_ip_is_read_from_neutron_not_from_novas_lagging_addresses(
    cast: Cast, admin: OpenStackClient, tasks: Any
) -> None:
    # Nova lists a new floating IP in the server's addresses only once Neutron's
    # network-changed event has refreshed its cache (about a second on a real cloud, devcloud's
    # --address-refresh-seconds too); the launch's last sync reads the server within that second.
    instance, op = launch(cast)
    tasks()

    assert finished(op).state == Operation.State.SUCCEEDED, finished(op).message_text
    instance.refresh_from_db()
    fip = FloatingIP.objects.get(instance=instance)
    assert instance.floating_ip == fip.address != ""
    assert [f.floating_ip_address for f in admin.list_floating_ips(port_id=instance.port_id)] == [
        instance.floating_ip
    ]
    # A power action's syncs and a reconcile pass keep it too, whatever Nova shows by then.
    stop = services.instance_power(instance=instance, action=Instance.Action.STOP)
    tasks()
    assert finished(stop).state == Operation.State.SUCCEEDED
    services.cloud_reconcile(run_now=True)
    instance.refresh_from_db()
    assert instance.floating_ip == fip.address
