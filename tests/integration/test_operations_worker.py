"""The real ``manage.py db_worker`` in its own process: it runs operations, and when it is killed
mid-operation the scheduler hands the operation to a new worker, which finishes it exactly once.

These tests run every Django process as a subprocess on a SQLite file of their own, the way the
README's run command does; the test reads that file directly to follow the operation.
"""

import signal
import sqlite3
from typing import Any

import pytest

from portal.models import Soldier
from portal.openstack import OpenStackClient
from tests.conftest import wait_for_condition
from tests.integration.conftest import (
    ONBOARDED,
    ONE_VM,
    PortalCloud,
    Site,
    inventory,
    launch_code,
    unique,
)

pytestmark = [pytest.mark.cloud, pytest.mark.needs("identity", "compute", "network", "image")]


def test_db_worker_runs_a_launch_and_a_delete_queued_by_another_process(
    site: Site, admin: OpenStackClient
) -> None:
    username = unique("wrk")
    op_id = int(site.shell(launch_code(username)))
    site.start_worker()
    assert site.wait_for(op_id, lambda state, step: state in ("succeeded", "failed"))[0] == (
        "succeeded"
    )
    soldier = Soldier(keystone_user_name=username)
    assert inventory(admin, soldier) == ONE_VM

    delete_id = int(
        site.shell(
            "from portal import services\nfrom portal.models import Instance\n"
            "print(services.instance_delete(instance=Instance.objects.get()).pk)\n"
        )
    )
    assert site.wait_for(delete_id, lambda state, step: state in ("succeeded", "failed"))[0] == (
        "succeeded"
    )
    assert inventory(admin, soldier) == ONBOARDED


def test_a_worker_killed_mid_launch_is_replaced_and_the_launch_ends_exactly_once(
    devcloud: Any, site: Site, admin: OpenStackClient, portal_cloud: PortalCloud
) -> None:
    username = unique("kil")
    op_id = int(site.shell(launch_code(username)))
    # Hold the floating-IP create in flight long enough to kill the worker inside it.
    portal_cloud.faults.add(
        method="POST", path="/v2.0/floatingips$", status=None, latency=3.0, count=1
    )
    worker = site.start_worker()
    site.wait_for(op_id, lambda state, step: step == "floating_ip")
    # devcloud drops a count=1 rule once it has matched: the create is then held in flight.
    wait_for_condition(lambda: not portal_cloud.faults.list_faults(), what="the held create")
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert site.operation(op_id) == ("running", "floating_ip")

    # The lease (2 s here) runs out; the scheduler notices and queues the operation again.
    site.wait_until_lease_lapsed(op_id)
    assert "resumed=1" in site.manage("cloud_schedule", "--once")
    site.start_worker()
    assert site.wait_for(op_id, lambda state, step: state in ("succeeded", "failed"))[0] == (
        "succeeded"
    )
    assert inventory(admin, Soldier(keystone_user_name=username)) == ONE_VM
    # The killed worker's task row no longer claims to be running once the scheduler has looked.
    site.manage("cloud_schedule", "--once")
    with sqlite3.connect(site.db_path) as db:
        running = db.execute(
            "select count(*) from django_tasks_database_dbtaskresult where status = 'RUNNING'"
        ).fetchone()[0]
    assert running == 0
