"""The real ``manage.py db_worker`` in its own process: it runs operations, and when it is killed
mid-operation the scheduler hands the operation to a new worker, which finishes it exactly once.

These tests run every Django process as a subprocess on a SQLite file of their own, the way the
README's run command does; the test reads that file directly to follow the operation.
"""

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portal.models import Soldier
from portal.openstack import OpenStackClient
from tests.conftest import ROOT, clean_env, run_manage
from tests.integration.conftest import ONBOARDED, ONE_VM, inventory, unique

pytestmark = [pytest.mark.cloud]


class Site:
    """A portal installation in a temporary directory, talking to the session's devcloud."""

    def __init__(self, tmp_path: Path, devcloud: Any) -> None:
        self.db_path = tmp_path / "portal.sqlite3"
        self.env = clean_env(
            VAR_DIR=str(tmp_path),
            DATABASE_URL=f"sqlite:///{self.db_path}",
            SECRET_KEY="worker-test-" + "z8Kq" * 10,
            DEBUG="false",
            SECURE_HTTPS="false",
            ALLOWED_HOSTS="localhost",
            OS_CLIENT_CONFIG_FILE=str(devcloud.clouds_yaml),
            OS_CLOUD="devcloud",
            OPERATION_POLL_SECONDS="0.2",
            OPERATION_LEASE_SECONDS="2",
        )
        self.workers: list[subprocess.Popen[str]] = []

    def manage(self, *args: str) -> str:
        result = run_manage(*args, env=self.env)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    def shell(self, code: str) -> str:
        """Run Python in the site; returns the last line it printed."""
        return self.manage("shell", "--no-imports", "-c", code).strip().splitlines()[-1]

    def start_worker(self) -> subprocess.Popen[str]:
        worker = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "manage.py"),
                "db_worker",
                "--interval",
                "0.1",
                "--no-startup-delay",
                "--no-reload",
            ],
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.workers.append(worker)
        return worker

    def operation(self, op_id: int) -> tuple[str, str]:
        with sqlite3.connect(self.db_path, timeout=20) as db:
            row = db.execute(
                "select state, step from portal_operation where id = ?", (op_id,)
            ).fetchone()
        return (str(row[0]), str(row[1])) if row else ("", "")

    def wait_for(self, op_id: int, predicate: Any, timeout: float = 60) -> tuple[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.operation(op_id)
            if predicate(*state):
                return state
            time.sleep(0.05)
        raise AssertionError(f"operation {op_id} stuck at {self.operation(op_id)}")

    def stop(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()


@pytest.fixture
def site(tmp_path: Path, portal_cloud: Any) -> Iterator[Site]:
    site = Site(tmp_path, portal_cloud)
    site.manage("migrate", "--noinput")
    yield site
    site.stop()


def launch_code(username: str) -> str:
    return (
        "from django.contrib.auth import get_user_model\n"
        "from portal import services\n"
        f"user = get_user_model().objects.create_user(username={username!r})\n"
        f"soldier = services.soldier_create(user=user, service_number={username!r}, "
        f"name={username!r})\n"
        "template = services.vm_template_from_cloud(name='standard')\n"
        "instance = services.instance_launch(soldier=soldier, template=template)\n"
        "print(instance.operations.get().pk)\n"
    )


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
    site: Site, admin: OpenStackClient, portal_cloud: Any
) -> None:
    username = unique("kil")
    op_id = int(site.shell(launch_code(username)))
    # Hold the floating-IP create in flight long enough to kill the worker inside it.
    portal_cloud.faults.add(
        method="POST", path="/v2.0/floatingips$", status=None, latency=3.0, count=1
    )
    worker = site.start_worker()
    site.wait_for(op_id, lambda state, step: step == "floating_ip")
    time.sleep(0.5)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert site.operation(op_id) == ("running", "floating_ip")

    # The lease (2 s here) runs out; the scheduler notices and queues the operation again.
    time.sleep(2.5)
    assert "resumed=1" in site.manage("cloud_schedule", "--once")
    site.start_worker()
    assert site.wait_for(op_id, lambda state, step: state in ("succeeded", "failed"))[0] == (
        "succeeded"
    )
    assert inventory(admin, Soldier(keystone_user_name=username)) == ONE_VM
