"""Fixtures for portal-against-cloud tests: settings pointed at the cloud, tasks run in-process.

The cloud is CODESQUARE_TEST_CLOUD's target (devcloud by default, or the real one), except for
tests that take the ``devcloud`` fixture for what only devcloud offers (see ``PortalCloud``).

Tasks are run by django-tasks-db's own ``Worker.run_task`` in the test thread, in queue order,
sleeping only until the next delayed task (a wait for ACTIVE) is due; so a test sees the same
code path as ``manage.py db_worker`` without a second process (one test starts the real one).
"""

from __future__ import annotations

import contextlib
import itertools
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone, translation
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult

from portal import cloud, services
from portal.models import Instance, Operation, Soldier, VmTemplate
from portal.openstack import OpenStackClient
from portal.openstack.transport import Exchange, observe_exchanges
from portal.operations import engine
from tests.cloud_targets import CloudTarget
from tests.conftest import ROOT, clean_env, run_manage, wait_for_condition

_names = itertools.count(1)


def unique(prefix: str) -> str:
    """A name no other test uses (the cloud is shared by the session, a real one by several)."""
    return f"{prefix}{next(_names)}-{secrets.token_hex(3)}"


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    """Assertions read English messages; one test checks the Korean default on its own."""
    with translation.override("en"):
        yield


@dataclass(frozen=True)
class PortalCloud:
    """The cloud the portal talks to in a test: the CODESQUARE_TEST_CLOUD target, or devcloud.

    A test that takes the ``devcloud`` fixture (fault injection, failed builds, the server-side
    request log) talks to that devcloud and runs on the devcloud target only; every other test
    talks to ``cloud_target`` and runs on all targets.
    """

    kind: str
    clouds_yaml: Path
    cloud_name: str
    running_devcloud: Any = None

    @property
    def faults(self) -> Any:
        """devcloud's control endpoint; only devcloud-only tests may reach for it."""
        assert self.running_devcloud is not None, "take the devcloud fixture to inject faults"
        return self.running_devcloud.faults


@pytest.fixture
def target_cloud(request: pytest.FixtureRequest, cloud_target: CloudTarget) -> PortalCloud:
    """Where the portal points; a module may override it (the call-count tests do)."""
    if "devcloud" in request.fixturenames:
        running = request.getfixturevalue("devcloud")
        return PortalCloud("devcloud", running.clouds_yaml, "devcloud", running)
    return PortalCloud(
        cloud_target.kind,
        cloud_target.clouds_yaml,
        cloud_target.cloud_name,
        cloud_target.extra.get("devcloud"),
    )


@pytest.fixture
def portal_cloud(
    target_cloud: PortalCloud, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PortalCloud]:
    """Point the portal's client at the test's cloud, with short waits and retries."""
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(target_cloud.clouds_yaml))
    settings.OPENSTACK_CLOUD = target_cloud.cloud_name
    settings.OPENSTACK_NETWORK_MODE = "project"
    settings.OPENSTACK_EXTERNAL_NETWORK = "public"
    settings.OPERATION_POLL_SECONDS = 0.1 if target_cloud.kind == "devcloud" else 0.5
    settings.OPERATION_RETRY_BASE_SECONDS = 0.05
    settings.OPERATION_RETRY_MAX_SECONDS = 0.2
    settings.OPERATION_MAX_RETRIES = 3
    cloud.reset_client()
    if target_cloud.running_devcloud is not None:
        target_cloud.faults.reset()
        target_cloud.faults.clear_requests()
    yield target_cloud
    if target_cloud.running_devcloud is not None:
        target_cloud.faults.reset()
    cloud.reset_client()


class CloudCalls:
    """The cloud calls this process made while recording, counted on the client's side."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    def matching(self, method: str, path: str) -> list[Exchange]:
        """The exchanges of ``method`` whose URL path matches the regular expression."""
        return [e for e in self.exchanges if e.method == method and re.search(path, e.path)]

    def mutations(self) -> list[Exchange]:
        """The calls that change the cloud (a login is a POST but changes nothing)."""
        return [
            e
            for e in self.exchanges
            if e.method in ("POST", "PUT", "PATCH", "DELETE")
            and not e.path.endswith("/auth/tokens")
        ]


@contextlib.contextmanager
def recorded_calls() -> Iterator[CloudCalls]:
    """Record the cloud calls made inside; the same count against devcloud or a real cloud."""
    calls = CloudCalls()
    with observe_exchanges(calls.exchanges.append):
        yield calls


@pytest.fixture
def admin(portal_cloud: Any) -> OpenStackClient:
    """The portal's own (admin) client, to look at the cloud the way an operator would."""
    return cloud.get_client()


def run_tasks(*, timeout: float = 240.0, max_tasks: int = 10_000) -> int:
    """Run queued tasks until none is left (waiting for delayed ones); returns how many ran.

    The timeout only guards against a hang: a real cloud on a loaded machine can take minutes
    to build what devcloud builds in a second.
    """
    worker = Worker(
        queue_names=["default"],
        interval=0,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id="pytest",
        excluded_queue_names=[],
    )
    deadline = time.monotonic() + timeout
    ran = 0
    while ran < max_tasks:
        task = DBTaskResult.objects.ready().first()
        if task is not None:
            task.claim(worker.worker_id)
            worker.run_task(task)
            ran += 1
            continue
        later = DBTaskResult.objects.filter(status="READY").order_by("run_after").first()
        if later is None:
            return ran
        if time.monotonic() > deadline:
            raise AssertionError(f"tasks still queued after {timeout}s")
        delay = (later.run_after - timezone.now()).total_seconds()
        time.sleep(min(max(delay, 0.01), 0.5))
    return ran


@pytest.fixture
def tasks() -> Callable[..., int]:
    return run_tasks


@dataclass
class Cast:
    """The people of a test: a staff user and a fresh soldier with a template to use."""

    staff: Any
    soldier: Soldier
    template: VmTemplate


def make_soldier(username: str | None = None, **fields: Any) -> Soldier:
    username = username or unique("sol")
    user = get_user_model().objects.create_user(username=username)
    soldier = services.soldier_create(user=user, service_number=f"SN-{username}", name=username)
    for key, value in fields.items():
        setattr(soldier, key, value)
    if fields:
        soldier.save()
    return soldier


@pytest.fixture
def cast(portal_cloud: PortalCloud) -> Cast:
    staff = get_user_model().objects.create_user(username=unique("staff"), is_staff=True)
    template = services.vm_template_from_cloud(name=unique("tpl"))
    return Cast(staff=staff, soldier=make_soldier(), template=template)


def active_vm(cast: Cast, tasks: Any) -> Instance:
    """The cast soldier's VM from the cast template, launched by the worker and ACTIVE."""
    instance = services.instance_launch(soldier=cast.soldier, template=cast.template)
    tasks()
    instance.refresh_from_db()
    assert instance.status == "ACTIVE", instance.last_error
    return instance


def finished(op: Operation) -> Operation:
    op.refresh_from_db()
    return op


def requests_matching(devcloud: Any, method: str, path: str) -> list[dict[str, Any]]:
    """devcloud's log entries for ``method`` whose path matches the regular expression."""
    return [
        e
        for e in devcloud.faults.requests()
        if e["method"] == method and re.search(path, e["path"])
    ]


class Interrupted(Exception):
    """Raised at a step boundary to stand for a crash between two steps."""


@pytest.fixture
def interrupt_before() -> Iterator[Callable[[str], None]]:
    """``interrupt_before("server")``: the next operation to reach that step raises, once."""
    armed: dict[str, bool] = {}

    def receiver(sender: Any, operation: Operation, step: str, **kwargs: Any) -> None:
        if armed.pop(step, False):
            raise Interrupted(step)

    engine.step_reached.connect(receiver, dispatch_uid="tests.interrupt_before")

    def arm(step: str) -> None:
        armed[step] = True

    yield arm
    engine.step_reached.disconnect(dispatch_uid="tests.interrupt_before")


def inventory(admin: OpenStackClient, soldier: Soldier) -> dict[str, int]:
    """How many of each thing the cloud holds for this soldier, counted over HTTP."""
    name = soldier.keystone_user_name
    project_name = f"cs-{name}"
    projects = admin.list_projects(name=project_name)
    counts = {
        "users": len(admin.list_users(name=name)),
        "projects": len(projects),
        "servers": 0,
        "floating_ips": 0,
        "networks": 0,
        "subnets": 0,
        "routers": 0,
        "router_interfaces": 0,
    }
    if len(projects) != 1:
        return counts
    project_id = projects[0].id
    servers = admin.list_servers(all_projects=True, project_id=project_id)
    counts["servers"] = len([s for s in servers if s.status_raw != "DELETED"])
    counts["floating_ips"] = len(admin.list_floating_ips(project_id=project_id))
    networks = admin.list_networks(name=f"{project_name}-net", project_id=project_id)
    counts["networks"] = len(networks)
    for network in networks:
        counts["subnets"] += len(admin.list_subnets(network_id=network.id))
    routers = admin.list_routers(name=f"{project_name}-router", project_id=project_id)
    counts["routers"] = len(routers)
    for router in routers:
        counts["router_interfaces"] += sum(
            1
            for p in admin.list_ports(device_id=router.id)
            if p.device_owner == "network:router_interface"
        )
    return counts


ONE_VM = {
    "users": 1,
    "projects": 1,
    "servers": 1,
    "floating_ips": 1,
    "networks": 1,
    "subnets": 1,
    "routers": 1,
    "router_interfaces": 1,
}
ONBOARDED = {**ONE_VM, "servers": 0, "floating_ips": 0}


class Site:
    """A portal installation in a temporary directory, talking to the test's cloud."""

    def __init__(self, tmp_path: Path, target: PortalCloud) -> None:
        self.db_path = tmp_path / "portal.sqlite3"
        self.env = clean_env(
            VAR_DIR=str(tmp_path),
            DATABASE_URL=f"sqlite:///{self.db_path}",
            SECRET_KEY="worker-test-" + "z8Kq" * 10,
            DEBUG="false",
            SECURE_HTTPS="false",
            ALLOWED_HOSTS="localhost",
            OS_CLIENT_CONFIG_FILE=str(target.clouds_yaml),
            OS_CLOUD=target.cloud_name,
            OPERATION_POLL_SECONDS="0.2",
            OPERATION_LEASE_SECONDS="2",
            # The site stands for bin/run's own devcloud (or the project's test cloud).
            CODESQUARE_DEMO_DATA="true",
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

    def wait_until_lease_lapsed(self, op_id: int) -> None:
        """Until the clock is past the operation's worker lease (as the scheduler reads it)."""
        lease = self.lease_expires_at(op_id)
        assert lease is not None, f"operation {op_id} holds no lease"
        wait_for_condition(
            lambda: timezone.now() > (self.lease_expires_at(op_id) or lease),
            what=f"the lease of operation {op_id} to lapse",
        )

    def lease_expires_at(self, op_id: int) -> datetime | None:
        with sqlite3.connect(self.db_path, timeout=20) as db:
            row = db.execute(
                "select lease_expires_at from portal_operation where id = ?", (op_id,)
            ).fetchone()
        # Django keeps UTC without an offset in SQLite.
        return datetime.fromisoformat(row[0]).replace(tzinfo=UTC) if row and row[0] else None

    def wait_for(self, op_id: int, predicate: Any, timeout: float = 240) -> tuple[str, str]:
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


@pytest.fixture(scope="session")
def migrated_site_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once per session: every site starts from a copy of it (a
    ``manage.py migrate`` per test is a Django start and every migration, seconds each)."""
    where = tmp_path_factory.mktemp("site-template")
    path = where / "portal.sqlite3"
    migrated = run_manage(
        "migrate",
        "--noinput",
        env=clean_env(
            VAR_DIR=str(where),
            DATABASE_URL=f"sqlite:///{path}",
            SECRET_KEY="template-" + "z8Kq" * 10,
            DEBUG="false",
            ALLOWED_HOSTS="localhost",
        ),
    )
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    return path


@pytest.fixture
def site(tmp_path: Path, portal_cloud: PortalCloud, migrated_site_database: Path) -> Iterator[Site]:
    site = Site(tmp_path, portal_cloud)
    # The backup API copies a consistent database whatever journal mode the file is in.
    with (
        contextlib.closing(sqlite3.connect(migrated_site_database)) as template,
        contextlib.closing(sqlite3.connect(site.db_path)) as copy,
    ):
        template.backup(copy)
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
