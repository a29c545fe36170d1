"""Power actions, and the one-operation-per-VM guard under concurrency (any cloud target)."""

import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from django.db import connection

from portal import services
from portal.models import Instance, Operation, PowerState
from tests.conftest import ROOT
from tests.integration.conftest import (
    Cast,
    PortalCloud,
    Site,
    active_vm,
    finished,
    launch_code,
    recorded_calls,
    requests_matching,
    unique,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.cloud,
    pytest.mark.needs("identity", "compute", "network", "image"),
]


def power(instance: Instance, action: Instance.Action, tasks: Any) -> Operation:
    op = services.instance_power(instance=instance, action=action)
    tasks()
    op = finished(op)
    instance.refresh_from_db()
    return op


def test_stop_start_and_reboots_drive_the_server_and_its_mirror(cast: Cast, tasks: Any) -> None:
    instance = active_vm(cast, tasks)

    op = power(instance, Instance.Action.STOP, tasks)
    assert op.state == Operation.State.SUCCEEDED, op.message_text
    assert (instance.status, instance.power_state) == ("SHUTOFF", PowerState.SHUTDOWN)

    op = power(instance, Instance.Action.START, tasks)
    assert op.state == Operation.State.SUCCEEDED, op.message_text
    assert (instance.status, instance.power_state) == ("ACTIVE", PowerState.RUNNING)

    for action in (Instance.Action.REBOOT_SOFT, Instance.Action.REBOOT_HARD):
        op = power(instance, action, tasks)
        assert op.state == Operation.State.SUCCEEDED, op.message_text
        assert instance.status == "ACTIVE"
        assert instance.pending_action == ""


def test_an_action_the_state_forbids_is_refused_without_calling_the_cloud(
    cast: Cast, tasks: Any
) -> None:
    instance = active_vm(cast, tasks)
    with (
        recorded_calls() as calls,
        pytest.raises(services.OperationRefused, match="not possible while the VM is ACTIVE"),
    ):
        services.instance_power(instance=instance, action=Instance.Action.START)
    assert calls.exchanges == []
    instance.refresh_from_db()
    assert instance.pending_action == ""
    assert not instance.operations.filter(kind=Operation.Kind.POWER).exists()


def test_a_conflict_from_the_cloud_fails_the_operation_with_its_message_and_request_id(
    devcloud: Any, cast: Cast, tasks: Any, portal_cloud: PortalCloud
) -> None:
    instance = active_vm(cast, tasks)
    portal_cloud.faults.add(
        method="POST", path="/action$", status=409, count=1, message="Cannot 'stop' instance"
    )
    op = power(instance, Instance.Action.STOP, tasks)
    assert op.state == Operation.State.FAILED
    assert "Cannot 'stop' instance" in op.message_text
    assert op.request_ids
    assert op.request_ids[0] in op.message_text
    assert instance.last_error == op.message_text
    assert len(requests_matching(portal_cloud, "POST", "/action$")) == 1


def test_two_threads_acting_on_one_vm_one_is_refused_and_makes_no_cloud_call(
    cast: Cast, tasks: Any
) -> None:
    instance = active_vm(cast, tasks)
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def act(action: Instance.Action) -> None:
        try:
            barrier.wait()
            mine = Instance.objects.get(pk=instance.pk)
            outcomes.append(services.instance_power(instance=mine, action=action))
        except services.OperationRefused as exc:
            outcomes.append(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=act, args=(Instance.Action.STOP,)),
        threading.Thread(target=act, args=(Instance.Action.REBOOT_HARD,)),
    ]
    with recorded_calls() as calls:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

    refused = [o for o in outcomes if isinstance(o, services.OperationRefused)]
    accepted = [o for o in outcomes if isinstance(o, Operation)]
    assert len(refused) == 1
    assert len(accepted) == 1
    assert "already has an operation in progress" in str(refused[0])
    assert calls.exchanges == []

    with recorded_calls() as calls:
        tasks()
    assert finished(accepted[0]).state == Operation.State.SUCCEEDED
    assert len(calls.matching("POST", "/action$")) == 1
    assert Operation.objects.filter(instance=instance, kind=Operation.Kind.POWER).count() == 1


def test_an_action_while_another_is_pending_is_refused(cast: Cast, tasks: Any) -> None:
    instance = active_vm(cast, tasks)
    services.instance_power(instance=instance, action=Instance.Action.STOP)
    with pytest.raises(services.OperationRefused, match="Stopping"):
        services.instance_delete(instance=instance)
    tasks()
    instance.refresh_from_db()
    assert services.instance_delete(instance=instance).kind == Operation.Kind.DELETE


RACE = """
import time
from portal import services
from portal.models import Instance
instance = Instance.objects.get()
time.sleep(max(0.0, {start} - time.time()))
try:
    op = services.instance_power(instance=instance, action={action!r})
    print("accepted", op.pk)
except services.OperationRefused as exc:
    print("refused", exc)
"""


def test_two_processes_acting_on_one_vm_at_once_one_is_refused_and_makes_no_cloud_call(
    devcloud: Any, site: Site, portal_cloud: PortalCloud
) -> None:
    # Other processes make the calls, so only the cloud's own request log can count them.
    op_id = int(site.shell(launch_code(unique("race"))))
    worker = site.start_worker()
    site.wait_for(op_id, lambda state, step: state == "succeeded")
    worker.terminate()
    worker.wait(timeout=10)
    portal_cloud.faults.clear_requests()

    start = time.time() + 3  # both processes are up and waiting by then
    racers = [
        subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "manage.py"),
                "shell",
                "--no-imports",
                "-c",
                RACE.format(start=start, action=action),
            ],
            env=site.env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for action in ("stop", "reboot_hard")
    ]
    answers = [r.communicate(timeout=60)[0].strip().splitlines()[-1] for r in racers]

    assert sorted(a.split()[0] for a in answers) == ["accepted", "refused"], answers
    assert any("in progress" in a or "진행 중" in a for a in answers)
    assert portal_cloud.faults.requests() == []
    accepted = int(next(a for a in answers if a.startswith("accepted")).split()[1])
    site.start_worker()
    assert site.wait_for(accepted, lambda state, step: state in ("succeeded", "failed")) == (
        "succeeded",
        "",
    )
    assert len(requests_matching(portal_cloud, "POST", "/action$")) == 1
