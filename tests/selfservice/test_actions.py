"""Actions on my VM: a confirmation page, then one service call that records one Operation."""

from __future__ import annotations

from typing import Any

import pytest

from portal.models import FloatingIP, Instance, Operation
from portal.openstack import NotFound, OpenStackClient
from tests.integration.conftest import Cast, recorded_calls
from tests.selfservice.conftest import CloudSoldier

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.cloud,
    pytest.mark.needs("identity", "network", "image", "compute"),
]


def act(client: Any, instance: Instance, slug: str) -> str:
    """POST the action's confirmation form; the page (with its message) it leads to."""
    response = client.post(f"/vm/{instance.pk}/{slug}/")
    assert response.status_code == 302
    assert response["Location"] == "/"
    return str(client.get("/").content.decode())


def ops(instance: Instance) -> list[Operation]:
    return list(Operation.objects.filter(instance=instance).order_by("pk"))


def test_the_confirmation_page_acts_on_nothing(
    soldier_a: CloudSoldier, running_vm: Instance
) -> None:
    before = len(ops(running_vm))
    with recorded_calls() as calls:
        response = soldier_a.client.get(f"/vm/{running_vm.pk}/stop/")
    assert response.status_code == 200
    text = response.content.decode()
    assert "Stop this VM?" in text
    assert "Whatever is not saved inside it is lost" in text
    assert "Yes, Stop" in text
    assert calls.exchanges == []
    assert len(ops(running_vm)) == before


def test_stop_start_and_restart_each_record_one_operation_and_reach_the_cloud(
    soldier_a: CloudSoldier, running_vm: Instance, tasks: Any, admin: OpenStackClient
) -> None:
    before = len(ops(running_vm))
    with recorded_calls() as calls:
        text = act(soldier_a.client, running_vm, "stop")
    assert calls.mutations() == []  # queued; the worker talks to the cloud
    assert "Stop: your request was sent." in text
    assert ">Queued<" in text
    assert len(ops(running_vm)) == before + 1
    assert ops(running_vm)[-1].requested_by == soldier_a.soldier.user
    with recorded_calls() as calls:
        tasks()
    assert len(calls.matching("POST", r"/servers/[^/]+/action$")) == 1
    assert admin.get_server(running_vm.server_id or "").status_raw == "SHUTOFF"
    text = soldier_a.client.get("/").content.decode()
    assert ">Stopped<" in text
    assert f'href="/vm/{running_vm.pk}/start/"' in text

    act(soldier_a.client, running_vm, "start")
    tasks()
    assert admin.get_server(running_vm.server_id or "").status_raw == "ACTIVE"

    act(soldier_a.client, running_vm, "reboot")
    tasks()
    act(soldier_a.client, running_vm, "hard-reboot")
    tasks()
    kinds = [(o.params.get("action"), o.state) for o in ops(running_vm)[before:]]
    assert kinds == [
        ("stop", "succeeded"),
        ("start", "succeeded"),
        ("reboot_soft", "succeeded"),
        ("reboot_hard", "succeeded"),
    ]


def test_an_action_the_state_forbids_is_refused_without_an_operation_or_a_cloud_call(
    soldier_a: CloudSoldier, running_vm: Instance
) -> None:
    before = len(ops(running_vm))
    with recorded_calls() as calls:
        text = act(soldier_a.client, running_vm, "start")
    assert calls.exchanges == []
    assert "Starting is not possible while the VM is ACTIVE." in text
    assert len(ops(running_vm)) == before


def test_a_second_action_while_one_is_running_is_refused(
    soldier_a: CloudSoldier, running_vm: Instance
) -> None:
    act(soldier_a.client, running_vm, "stop")
    before = len(ops(running_vm))
    with recorded_calls() as calls:
        text = act(soldier_a.client, running_vm, "reboot")
    assert calls.exchanges == []
    assert "already has an operation in progress" in text
    assert len(ops(running_vm)) == before


def test_start_on_a_vm_whose_guest_shut_itself_down_is_a_hard_restart(
    soldier_a: CloudSoldier, running_vm: Instance, tasks: Any
) -> None:
    # Nova still says ACTIVE, the guest is off (the periodic sync has not run yet).
    Instance.objects.filter(pk=running_vm.pk).update(power_state=4)
    text = soldier_a.client.get("/").content.decode()
    assert "Off (guest shut down)" in text
    assert f'href="/vm/{running_vm.pk}/start/"' in text
    confirm = soldier_a.client.get(f"/vm/{running_vm.pk}/start/").content.decode()
    assert "starts it with a hard restart" in confirm
    act(soldier_a.client, running_vm, "start")
    op = ops(running_vm)[-1]
    assert op.params["action"] == "reboot_hard"
    tasks()
    op.refresh_from_db()
    assert op.state == Operation.State.SUCCEEDED


def test_a_crashed_vm_is_offered_a_hard_restart(
    soldier_a: CloudSoldier, running_vm: Instance
) -> None:
    Instance.objects.filter(pk=running_vm.pk).update(power_state=6)
    text = soldier_a.client.get("/").content.decode()
    assert ">Crashed<" in text
    assert "Restart it with a hard reboot." in text
    assert f'href="/vm/{running_vm.pk}/hard-reboot/"' in text
    assert f'href="/vm/{running_vm.pk}/stop/"' not in text


def test_an_unknown_action_is_a_404(soldier_a: CloudSoldier, running_vm: Instance) -> None:
    assert soldier_a.client.get(f"/vm/{running_vm.pk}/explode/").status_code == 404
    assert soldier_a.client.post(f"/vm/{running_vm.pk}/explode/").status_code == 404


def test_requesting_a_vm_asks_first_then_queues_one_launch(
    soldier_a: CloudSoldier, cast: Cast, tasks: Any
) -> None:
    with recorded_calls() as calls:
        confirm = soldier_a.client.get(f"/request/{cast.template.pk}/")
    assert confirm.status_code == 200
    assert "Yes, request it" in confirm.content.decode()
    assert not Instance.objects.filter(owner=soldier_a.soldier).exists()
    response = soldier_a.client.post(f"/request/{cast.template.pk}/")
    assert response["Location"] == "/"
    assert calls.mutations() == []
    instance = Instance.objects.get(owner=soldier_a.soldier)
    assert instance.template == cast.template
    assert [o.kind for o in ops(instance)] == [Operation.Kind.LAUNCH]
    assert "Your VM is on its way" in soldier_a.client.get("/").content.decode()
    tasks()
    instance.refresh_from_db()
    assert instance.status == "ACTIVE"


def test_a_request_over_the_live_vm_limit_is_refused(
    soldier_a: CloudSoldier, running_vm: Instance, cast: Cast, settings: Any
) -> None:
    assert settings.SELFSERVICE_LIVE_VM_LIMIT == 1
    text = soldier_a.client.get("/").content.decode()
    assert "Request another VM" not in text  # not offered at the limit
    with recorded_calls() as calls:
        response = soldier_a.client.post(f"/request/{cast.template.pk}/")
    assert calls.exchanges == []
    text = soldier_a.client.get(response["Location"]).content.decode()
    assert "You already have 1 VM(s) and the limit is 1." in text
    assert Instance.objects.filter(owner=soldier_a.soldier).count() == 1
    assert Operation.objects.filter(soldier=soldier_a.soldier, kind="launch").count() == 1

    settings.SELFSERVICE_LIVE_VM_LIMIT = 2
    assert "Request another VM" in soldier_a.client.get("/").content.decode()


def test_an_inactive_template_cannot_be_requested(soldier_a: CloudSoldier, cast: Cast) -> None:
    cast.template.is_active = False
    cast.template.save()
    assert soldier_a.client.get(f"/request/{cast.template.pk}/").status_code == 404
    assert soldier_a.client.post(f"/request/{cast.template.pk}/").status_code == 404
    assert not Instance.objects.filter(owner=soldier_a.soldier).exists()


def test_soldiers_may_not_delete_their_vm_unless_the_setting_allows_it(
    soldier_a: CloudSoldier, running_vm: Instance
) -> None:
    before = len(ops(running_vm))
    with recorded_calls() as calls:
        text = act(soldier_a.client, running_vm, "delete")
    assert calls.exchanges == []
    assert "Deleting your own VM is turned off here" in text
    assert len(ops(running_vm)) == before


def test_with_the_setting_on_a_soldier_deletes_their_vm_and_its_floating_ip(
    soldier_a: CloudSoldier, running_vm: Instance, tasks: Any, settings: Any, admin: OpenStackClient
) -> None:
    settings.SELFSERVICE_SOLDIER_DELETE = True
    fip = FloatingIP.objects.get(instance=running_vm, created_by_portal=True)
    text = soldier_a.client.get("/").content.decode()
    assert f'href="/vm/{running_vm.pk}/delete/"' in text
    confirm = soldier_a.client.get(f"/vm/{running_vm.pk}/delete/").content.decode()
    assert f"then its public address {running_vm.floating_ip} is released" in confirm
    act(soldier_a.client, running_vm, "delete")
    assert ops(running_vm)[-1].kind == Operation.Kind.DELETE
    tasks()
    with pytest.raises(NotFound):
        admin.get_server(running_vm.server_id or "")
    with pytest.raises(NotFound):
        admin.get_floating_ip(fip.neutron_id)
    text = soldier_a.client.get("/").content.decode()
    assert running_vm.name not in text
    assert "You have no VM yet" in text
