"""Issue 18: an account is shut first when staff disable or discharge it, whatever the VMs do;
a failed delete leaves the VM reachable; Nova's fault text is redacted (devcloud only)."""

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from portal import services
from portal.models import FloatingIP, Instance, Operation, ProjectNetwork, Soldier
from portal.openstack import OpenStackClient
from portal.operations import engine
from tests.integration.conftest import Cast, PortalCloud, active_vm, finished, inventory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.cloud,
    pytest.mark.usefixtures("devcloud"),
]


def soldier_browser(soldier: Soldier) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(soldier.user, backend="portal.selfservice.auth.KeystoneBackend")
    return client


def logged_out(client: Client) -> bool:
    answer = client.get("/")
    return answer.status_code == 302 and "/login/" in answer["Location"]


@pytest.fixture(autouse=True)
def _static_files_without_a_manifest(settings: Any) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


# --- point 2 (F1): the account is shut first, and stays shut when a VM delete fails -----------


@pytest.mark.parametrize("teardown", ["disable", "discharge"])
def test_a_failed_vm_delete_never_leaves_the_account_open(
    cast: Cast, admin: OpenStackClient, tasks: Any, portal_cloud: PortalCloud, teardown: str
) -> None:
    instance = active_vm(cast, tasks)
    soldier = Soldier.objects.get(pk=cast.soldier.pk)
    browser = soldier_browser(soldier)
    assert not logged_out(browser)
    # Nova refuses every delete of the VM (a locked server, a compute host down).
    portal_cloud.faults.add(
        method="DELETE", path=rf"/servers/{instance.server_id}$", status=403, message="locked"
    )
    start = services.soldier_disable if teardown == "disable" else services.soldier_discharge
    op = finished(start(soldier=soldier, requested_by=cast.staff))
    tasks()

    op = finished(op)
    assert op.state == Operation.State.FAILED
    assert "retry it" in op.message_text
    assert not admin.get_user(soldier.keystone_user_id).enabled
    assert logged_out(browser)
    # The VM still runs, reachable at its address, for staff to delete once Nova takes it.
    instance.refresh_from_db()
    assert instance.status == "ACTIVE"
    assert instance.floating_ip
    assert FloatingIP.objects.get(instance=instance).released_at is None

    portal_cloud.faults.reset()
    services.operation_retry(operation=op)
    tasks()
    op = finished(op)
    assert op.state == Operation.State.SUCCEEDED, op.message_text
    soldier.refresh_from_db()
    assert soldier.state == Soldier.State.DISABLED
    assert inventory(admin, soldier)["servers"] == 0
    assert inventory(admin, soldier)["floating_ips"] == 0


@pytest.mark.parametrize("teardown", ["disable", "discharge"])
def test_the_account_is_disabled_before_any_vm_is_deleted(
    cast: Cast, tasks: Any, portal_cloud: PortalCloud, teardown: str
) -> None:
    active_vm(cast, tasks)
    portal_cloud.faults.clear_requests()
    start = services.soldier_disable if teardown == "disable" else services.soldier_discharge
    op = start(soldier=cast.soldier, requested_by=cast.staff)
    tasks()

    assert finished(op).state == Operation.State.SUCCEEDED, op.message_text
    order = [
        "user" if "/v3/users/" in e["path"] else "server"
        for e in portal_cloud.faults.requests()
        if (e["method"] == "PATCH" and "/v3/users/" in e["path"])
        or (e["method"] == "DELETE" and "/servers/" in e["path"])
    ]
    assert order == ["user", "server"]


# --- point 2 (F2): no launch while a disable runs; a VM that appears anyway is deleted -------


def test_a_launch_for_a_soldier_being_disabled_is_refused(cast: Cast, tasks: Any) -> None:
    active_vm(cast, tasks)
    services.soldier_disable(soldier=cast.soldier, requested_by=cast.staff)
    with pytest.raises(services.OperationRefused, match="being disabled"):
        services.instance_launch(soldier=cast.soldier, template=cast.template)


def test_a_launch_queued_before_a_disable_does_not_create_its_vm(cast: Cast, tasks: Any) -> None:
    active_vm(cast, tasks)
    late = services.instance_launch(
        soldier=cast.soldier, template=cast.template, name="late", second_vm=True
    )
    disable = services.soldier_disable(soldier=cast.soldier, requested_by=cast.staff)
    tasks()
    launch = finished(late.operations.get(kind=Operation.Kind.LAUNCH))
    assert launch.state == Operation.State.FAILED
    assert "being disabled" in launch.message_text
    assert finished(disable).state == Operation.State.SUCCEEDED, disable.message_text
    late.refresh_from_db()
    assert late.status == "DELETED"


@pytest.fixture
def when_step_reached() -> Iterator[Any]:
    """``when_step_reached("disable_wait_vms", action)``: run ``action`` once at that step."""
    armed: dict[str, Any] = {}

    def receiver(sender: Any, operation: Operation, step: str, **kwargs: Any) -> None:
        action = armed.pop(step, None)
        if action is not None:
            action(operation)

    engine.step_reached.connect(receiver, dispatch_uid="tests.when_step_reached")
    yield armed.__setitem__
    engine.step_reached.disconnect(dispatch_uid="tests.when_step_reached")


@pytest.mark.parametrize(
    ("teardown", "wait_step", "timeout_setting"),
    [
        ("disable", "disable_wait_vms", "OPERATION_POWER_TIMEOUT_SECONDS"),
        ("discharge", "wait_vms", "OPERATION_DISCHARGE_TIMEOUT_SECONDS"),
    ],
)
def test_a_vm_that_appears_during_a_teardown_is_deleted_not_waited_for(
    cast: Cast,
    admin: OpenStackClient,
    tasks: Any,
    settings: Any,
    when_step_reached: Any,
    teardown: str,
    wait_step: str,
    timeout_setting: str,
) -> None:
    setattr(settings, timeout_setting, 5)  # the bound on one step's wait
    first = active_vm(cast, tasks)
    soldier = Soldier.objects.get(pk=cast.soldier.pk)
    network = ProjectNetwork.objects.get(project__soldier=soldier)

    def a_vm_appears(op: Operation) -> None:
        # A launch that had passed every check before the disable began finishes now.
        project_client = admin.for_project(soldier.project.keystone_id)
        server_id = project_client.create_server(
            name="appeared",
            image_id=cast.template.image_id,
            flavor_id=cast.template.flavor_id,
            network_ids=[network.network_id],
        )
        Instance.objects.create(
            project=soldier.project,
            owner=soldier,
            name="appeared",
            template=cast.template,
            server_id=server_id,
            status="ACTIVE",
            second_vm=True,  # the soldier's first VM from this template is still live
        )

    when_step_reached(wait_step, a_vm_appears)
    start = services.soldier_disable if teardown == "disable" else services.soldier_discharge
    op = start(soldier=soldier, requested_by=cast.staff)
    tasks()

    assert finished(op).state == Operation.State.SUCCEEDED, op.message_text
    first.refresh_from_db()
    appeared = Instance.objects.get(name="appeared")
    assert (first.status, appeared.status) == ("DELETED", "DELETED")
    assert inventory(admin, soldier)["servers"] == 0


@pytest.mark.parametrize("teardown", ["disable", "discharge"])
def test_a_teardown_resumed_past_its_first_step_still_shuts_the_account(
    cast: Cast, admin: OpenStackClient, tasks: Any, teardown: str
) -> None:
    # Under way when the steps were reordered: saved at the VM deletes, the account still open.
    active_vm(cast, tasks)
    soldier = Soldier.objects.get(pk=cast.soldier.pk)
    browser = soldier_browser(soldier)
    start = services.soldier_disable if teardown == "disable" else services.soldier_discharge
    op = start(soldier=soldier, requested_by=cast.staff)
    Operation.objects.filter(pk=op.pk).update(step="delete_vms")
    tasks()

    assert finished(op).state == Operation.State.SUCCEEDED, op.message_text
    assert not admin.get_user(soldier.keystone_user_id).enabled
    assert logged_out(browser)
