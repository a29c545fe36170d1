"""Deleting: nothing left behind, nothing the portal does not own touched (any cloud target)."""

from typing import Any

import pytest

from portal import services
from portal.models import FloatingIP, Operation
from portal.openstack import NotFound, OpenStackClient
from portal.operations import registry
from tests.conftest import wait_for_condition
from tests.integration.conftest import (
    ONBOARDED,
    Cast,
    PortalCloud,
    active_vm,
    finished,
    inventory,
    recorded_calls,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.cloud,
    pytest.mark.needs("identity", "compute", "network", "image"),
]

DELETE_STEPS = registry.kind_of(Operation.Kind.DELETE).step_names


def test_delete_deletes_the_server_then_releases_the_portal_floating_ip_and_marks_it(
    cast: Cast, admin: OpenStackClient, tasks: Any
) -> None:
    instance = active_vm(cast, tasks)
    fip = FloatingIP.objects.get(instance=instance)

    with recorded_calls() as calls:
        op = services.instance_delete(instance=instance, requested_by=cast.staff)
        tasks()

    op = finished(op)
    assert op.state == Operation.State.SUCCEEDED, op.message_text
    instance.refresh_from_db()
    assert instance.status == "DELETED"
    assert instance.terminated_at is not None
    assert instance.pending_action == ""
    assert not instance.deleted_outside_portal
    fip.refresh_from_db()
    assert fip.released_at is not None
    with pytest.raises(NotFound):
        admin.get_floating_ip(fip.neutron_id)

    def server_gone() -> bool:
        # A real Nova shows the server as DELETED for a moment before its 404 (the operation
        # ends at either); the test waits for the 404 rather than racing it.
        try:
            admin.get_server(instance.server_id or "")
        except NotFound:
            return True
        return False

    wait_for_condition(server_gone, timeout=120, interval=0.5, what="Nova's 404 for the server")
    assert inventory(admin, cast.soldier) == ONBOARDED
    # The server goes first: the floating IP is released only once Nova accepted the delete,
    # so a refused delete leaves the VM reachable (issue 18, F13).
    mutations = [(e.method, e.path) for e in calls.mutations()]
    assert [m for m, _ in mutations] == ["DELETE", "DELETE"]
    assert "/servers/" in mutations[0][1]
    assert "/floatingips/" in mutations[1][1]


def test_a_hand_made_floating_ip_survives_the_deletion_of_its_server(
    cast: Cast, admin: OpenStackClient, tasks: Any, interrupt_before: Any
) -> None:
    # Someone binds their own floating IP to the VM's port before the portal gets to it.
    interrupt_before("floating_ip")
    instance = services.instance_launch(soldier=cast.soldier, template=cast.template)
    tasks()
    instance.refresh_from_db()
    project_client = admin.for_project(instance.project.keystone_id)
    public = admin.list_networks(name="public")[0]
    by_hand = project_client.create_floating_ip(
        floating_network_id=public.id, port_id=instance.port_id, description="mine"
    )
    services.operation_retry(operation=instance.operations.get())
    tasks()
    instance.refresh_from_db()
    assert instance.status == "ACTIVE"
    record = FloatingIP.objects.get(neutron_id=by_hand.id)
    assert not record.created_by_portal
    assert instance.floating_ip == by_hand.floating_ip_address

    op = services.instance_delete(instance=instance)
    tasks()

    assert finished(op).state == Operation.State.SUCCEEDED
    survivor = admin.get_floating_ip(by_hand.id)
    assert survivor.floating_ip_address == by_hand.floating_ip_address
    assert survivor.port_id is None
    record.refresh_from_db()
    assert record.released_at is None


@pytest.mark.parametrize("stop_before", DELETE_STEPS[1:])
def test_delete_interrupted_before_each_step_still_leaves_nothing_behind(
    cast: Cast, admin: OpenStackClient, tasks: Any, interrupt_before: Any, stop_before: str
) -> None:
    instance = active_vm(cast, tasks)
    interrupt_before(stop_before)
    op = services.instance_delete(instance=instance)
    tasks()
    op = finished(op)
    assert op.state == Operation.State.FAILED
    instance.refresh_from_db()
    assert instance.pending_action == ""

    services.operation_retry(operation=op)
    tasks()

    assert finished(op).state == Operation.State.SUCCEEDED
    assert inventory(admin, cast.soldier) == ONBOARDED


def test_deleting_a_vm_whose_launch_failed_before_the_server_existed(
    cast: Cast, admin: OpenStackClient, tasks: Any, interrupt_before: Any
) -> None:
    interrupt_before("server")
    instance = services.instance_launch(soldier=cast.soldier, template=cast.template)
    tasks()
    op = services.instance_delete(instance=instance)
    tasks()
    assert finished(op).state == Operation.State.SUCCEEDED
    instance.refresh_from_db()
    assert instance.status == "DELETED"
    assert inventory(admin, cast.soldier) == ONBOARDED


def test_a_deleted_vm_cannot_be_deleted_again(cast: Cast, tasks: Any) -> None:
    instance = active_vm(cast, tasks)
    services.instance_delete(instance=instance)
    tasks()
    instance.refresh_from_db()
    with pytest.raises(services.OperationRefused, match="already deleted"):
        services.instance_delete(instance=instance)


@pytest.mark.usefixtures("devcloud")
def test_a_refused_server_delete_leaves_the_vm_reachable_at_its_floating_ip(
    cast: Cast, admin: OpenStackClient, tasks: Any, portal_cloud: PortalCloud
) -> None:
    instance = active_vm(cast, tasks)
    address = instance.floating_ip
    fip = FloatingIP.objects.get(instance=instance)
    portal_cloud.faults.add(
        method="DELETE", path=rf"/servers/{instance.server_id}$", status=403, count=1
    )
    op = services.instance_delete(instance=instance, requested_by=cast.staff)
    tasks()

    op = finished(op)
    assert op.state == Operation.State.FAILED
    assert op.step == "delete_server"
    instance.refresh_from_db()
    assert (instance.status, instance.floating_ip) == ("ACTIVE", address)
    fip.refresh_from_db()
    assert fip.released_at is None
    bound = admin.get_floating_ip(fip.neutron_id)
    assert bound.port_id == instance.port_id

    # The retry resumes at the server delete, then releases the address: nothing left behind.
    services.operation_retry(operation=op)
    tasks()
    assert finished(op).state == Operation.State.SUCCEEDED, op.message_text
    fip.refresh_from_db()
    assert fip.released_at is not None
    with pytest.raises(NotFound):
        admin.get_floating_ip(fip.neutron_id)
    assert inventory(admin, cast.soldier) == ONBOARDED
