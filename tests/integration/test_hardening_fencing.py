"""Fencing: one worker at a time runs an operation's step (issue 9, point 3).

Every write of a running operation is conditional on its claim token; a worker that lost its
claim stops before its next cloud call; the lease is renewed while a long call runs. The
process tests run real ``db_worker`` processes with a lease of one second.
"""

import json
import signal
import sqlite3
import time
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from portal.models import Batch, Operation
from portal.openstack import OpenStackClient
from portal.operations import engine
from tests.conftest import wait_for_condition
from tests.integration.conftest import PortalCloud, Site, launch_code, requests_matching, unique

LAUNCH_KINDS = {"kind": Operation.Kind.LAUNCH, "step": "server"}


@pytest.mark.django_db(transaction=True)
def test_a_worker_whose_lease_lapsed_can_neither_write_nor_requeue_nor_finish() -> None:
    batch = Batch.objects.create(kind="launch", total=1)
    op = Operation.objects.create(kind=Operation.Kind.RECONCILE, lock_key="t", batch=batch)
    first = engine._claim(op.pk)
    assert first is not None
    stale = Operation.objects.get(pk=op.pk)
    # Its lease lapses; another worker takes the operation over.
    Operation.objects.filter(pk=op.pk).update(lease_expires_at=timezone.now() - timedelta(1))
    second = engine._claim(op.pk)
    assert second is not None
    assert second != first
    successor = Operation.objects.get(pk=op.pk)

    stale.progress = {"from": "the stale worker"}
    with pytest.raises(engine.ClaimLost):
        engine.save_fields(stale, "progress")
    with pytest.raises(engine.ClaimLost), engine.fenced(stale):
        pass
    with pytest.raises(engine.ClaimLost):
        engine.enqueue(stale, delay=5)
    assert not engine.finish(stale, Operation.State.FAILED, "stale")

    current = Operation.objects.get(pk=op.pk)
    assert current.claim == second
    assert current.lease_expires_at == successor.lease_expires_at
    assert current.state == Operation.State.RUNNING
    assert current.progress == {}
    assert Batch.objects.get(pk=batch.pk).failed == 0
    # The worker that holds it writes and ends it as usual.
    engine.save_fields(successor, "progress")
    assert engine.finish(successor, Operation.State.SUCCEEDED)


def _servers(admin: OpenStackClient, username: str) -> list[Any]:
    projects = admin.list_projects(name=f"cs-{username}")
    if not projects:
        return []
    return [
        s
        for s in admin.list_servers(all_projects=True, project_id=projects[0].id)
        if s.status_raw != "DELETED"
    ]


def _task_results(site: Site) -> list[Any]:
    with sqlite3.connect(site.db_path, timeout=20) as db:
        rows = db.execute(
            "select return_value from django_tasks_database_dbtaskresult "
            "where status = 'SUCCESSFUL'"
        ).fetchall()
    return [json.loads(r[0]) if r[0] else None for r in rows]


@pytest.mark.cloud
@pytest.mark.usefixtures("devcloud")
def test_a_step_longer_than_the_lease_keeps_its_claim_so_no_second_worker_runs_it(
    site: Site, admin: OpenStackClient, portal_cloud: PortalCloud
) -> None:
    site.env["OPERATION_LEASE_SECONDS"] = "1"
    username = unique("slow")
    op_id = int(site.shell(launch_code(username)))
    # The create is held eight leases long before devcloud acts on it (long enough that the
    # scheduler below looks while it is still in flight, however slowly its process starts).
    portal_cloud.faults.add(
        method="POST", path=r"/compute/v2\.1/servers$", status=None, latency=8.0, count=1
    )
    site.start_worker()
    site.wait_for(op_id, lambda state, step: step == "server")
    # Past the lease the step started with: only renewal keeps it.
    first = site.lease_expires_at(op_id)
    assert first is not None
    wait_for_condition(
        lambda: timezone.now() > first and (site.lease_expires_at(op_id) or first) > first,
        what="the step's first lease to pass, renewed",
    )

    assert "resumed=0" in site.manage("cloud_schedule", "--once")
    site.start_worker()  # a second worker, ready for anything left lying
    state, _step = site.wait_for(op_id, lambda state, step: state in ("succeeded", "failed"))

    assert state == "succeeded"
    assert len(_servers(admin, username)) == 1
    assert len(requests_matching(portal_cloud, "POST", r"/v2\.1/servers$")) == 1


@pytest.mark.cloud
@pytest.mark.usefixtures("devcloud")
def test_a_worker_paused_past_its_lease_wakes_and_stops_without_touching_the_cloud(
    site: Site, admin: OpenStackClient, portal_cloud: PortalCloud
) -> None:
    site.env["OPERATION_LEASE_SECONDS"] = "1"
    username = unique("paused")
    op_id = int(site.shell(launch_code(username)))
    # Hold the server step's first call (the look-up by tag) so the worker is inside it.
    portal_cloud.faults.add(
        method="GET", path=r"/compute/v2\.1/servers/detail$", status=None, latency=0.5, count=1
    )
    first = site.start_worker()
    site.wait_for(op_id, lambda state, step: step == "server")
    first.send_signal(signal.SIGSTOP)  # frozen: no heartbeat, no progress
    try:
        site.wait_until_lease_lapsed(op_id)  # its lease lapses
        assert "resumed=1" in site.manage("cloud_schedule", "--once")
        site.start_worker()
        state, _ = site.wait_for(op_id, lambda state, step: state in ("succeeded", "failed"))
        assert state == "succeeded"
    finally:
        first.send_signal(signal.SIGCONT)
    # It wakes holding a look-up that found no server: it must not create one now.
    deadline = time.monotonic() + 30
    while "lost" not in _task_results(site) and time.monotonic() < deadline:
        time.sleep(0.1)

    assert "lost" in _task_results(site)
    assert len(_servers(admin, username)) == 1
    assert len(requests_matching(portal_cloud, "POST", r"/v2\.1/servers$")) == 1
    assert site.operation(op_id) == ("succeeded", "")
