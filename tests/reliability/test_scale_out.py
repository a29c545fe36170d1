"""Scale-out: several web and worker processes on one database run a 300-VM launch and delete.

Run: ``DATABASE_URL=postgres://… bin/test tests/reliability/test_scale_out.py``. PostgreSQL
only (marker ``postgresql``): on SQLite it is deselected and the session header says so, since
what it backs, the README's "running on several machines", needs PostgreSQL; CI runs it in its
PostgreSQL pass. (The single-machine SQLite shape, web and workers on one file, is what the
fault matrix runs.)

The shape: devcloud with 300 onboarded soldiers (VMs on the cloud's shared network, so that
onboarding them stays cheap), two gunicorn instances, the scheduler, and
first one ``db_worker`` (the baseline), then three with one of them SIGKILLed mid-launch. Staff
log in to the first web instance and start "Launch VMs…" for all 300 soldiers, then "Delete
VMs…" for all 300 VMs on the second, while both pages of the batch are polled on both
instances. Proved afterwards, from devcloud's request log and the task table:

- every cloud write happened exactly once: one server create and one floating-IP create per
  launch, one floating-IP delete and one server delete per delete, nothing else;
- no operation's tasks overlapped in time (a task of the killed worker ends at the kill), and
  every cloud write falls inside exactly one task of its own operation: no step ran on two
  workers at once;
- every operation ended, succeeded, counted once in its batch; no orphan, no duplicate.
"""

from __future__ import annotations

import itertools
import json
import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from django.core.management import call_command
from django.db import connection
from django_tasks_db.models import DBTaskResult
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from portal.models import Batch, FloatingIP, Instance, Operation
from portal.openstack.types import ServerStatus
from tests.reliability.conftest import build_cohort, client_for
from tests.reliability.deployment import Deployment
from tests.reliability.matrix import (
    RESULTS,
    Cohort,
    Row,
    ended_share,
    once_when,
    wait_for_running_task,
)

pytestmark = [
    pytest.mark.postgresql,
    pytest.mark.cloud,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(3600),  # the 300-soldier cohort and two 300-VM runs
]

VMS = 300
POLL_SECONDS = 2.0
HTMX = {"HX-Request": "true"}
# One worker alone takes minutes for 300 VMs on a busy machine; lost operations are still
# caught (as not ended) when this runs out.
BATCH_TIMEOUT = 1500
STAFF_PASSWORD = "scale-out-" + "Pw9x" * 4
# 300 floating IPs: more than the default /24 pool holds.
POOL = ("--public-cidr", "172.24.0.0/22")
# Every VM on the cloud's shared network: onboarding 300 soldiers is then an account and a
# project each, not a network and a router as well (what is measured is the batch, not that).
SHARED_NETWORK = {"OPENSTACK_NETWORK_MODE": "shared", "OPENSTACK_SHARED_NETWORK": "private"}


@pytest.fixture(scope="module")
def big_cohort(
    tmp_path_factory: pytest.TempPathFactory, django_db_setup: Any, django_db_blocker: Any
) -> Cohort:
    return build_cohort(
        tmp_path_factory.mktemp("cohort300"),
        VMS,
        django_db_blocker,
        devcloud_args=POOL,
        env=SHARED_NETWORK,
    )


@dataclass
class Run:
    workers: int
    launch_seconds: float = 0.0
    delete_seconds: float = 0.0
    wall_seconds: float = 0.0
    page_polls: Counter[int] = field(default_factory=Counter)
    writes_by_worker: Counter[str] = field(default_factory=Counter)
    writes: Counter[str] = field(default_factory=Counter)
    operations_on_several_workers: int = 0


class Web:
    """A staff member's browser session on one gunicorn instance."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()
        # A GET on a kept-alive connection the server has just closed is sent again, as a
        # browser does (gunicorn's keep-alive is 2 s, the page's refresh interval too).
        retry = Retry(total=1, connect=1, read=1, allowed_methods={"GET"}, status=0)
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        login = self.session.get(f"{url}/admin/login/", timeout=30)
        response = self.session.post(
            f"{url}/admin/login/?next=/admin/",
            data={
                "username": "matrix-staff",
                "password": STAFF_PASSWORD,
                "csrfmiddlewaretoken": _csrf(login.text),
                "next": "/admin/",
            },
            timeout=30,
        )
        assert response.status_code == 200, response.status_code
        assert "sessionid" in self.session.cookies, "the staff login was refused"

    def action(self, model: str, action: str, pks: list[int], **fields: Any) -> None:
        """Run a console action on the selected rows, as the change list's form posts it."""
        page = self.session.get(f"{self.url}/admin/portal/{model}/", timeout=60)
        assert page.status_code == 200, page.status_code
        response = self.session.post(
            f"{self.url}/admin/portal/{model}/",
            data={
                "action": action,
                "_selected_action": [str(pk) for pk in pks],
                "csrfmiddlewaretoken": _csrf(page.text),
                **fields,
            },
            timeout=300,
            allow_redirects=False,
        )
        assert response.status_code in (200, 302), response.status_code

    def poll(self, path: str) -> int:
        """What the page's own refresh asks for (htmx); 0 when no answer came."""
        try:
            response = self.session.get(f"{self.url}{path}", headers=HTMX, timeout=120)
        except requests.RequestException:
            return 0
        return response.status_code


def _csrf(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def run_batches(
    root: Path, cohort: Cohort, *, workers: int, kill_one: bool
) -> tuple[Run, Row, Deployment, float | None]:
    """Launch then delete every cohort VM through the web instances; returns the figures."""
    deployment = Deployment(
        root, devcloud_state=cohort.devcloud_state, devcloud_args=POOL, env=SHARED_NETWORK
    )
    run = Run(workers=workers)
    killed_at: float | None = None
    with client_for(deployment):
        row = Row(deployment, cohort, name=f"{workers} workers")
        row.staff.set_password(STAFF_PASSWORD)
        row.staff.save()
        names = deployment.start_workers(workers)
        deployment.start_scheduler()
        webs = [Web(deployment.start_web("web-1")), Web(deployment.start_web("web-2"))]

        last_poll = 0.0

        def poll(batch: Batch) -> None:
            # As often as the batch page refreshes itself in a browser, on both instances.
            nonlocal last_poll
            if time.monotonic() - last_poll < POLL_SECONDS:
                return
            last_poll = time.monotonic()
            for web in webs:
                run.page_polls[web.poll(f"/admin/portal/batch/{batch.pk}/change/")] += 1

        def kill() -> None:
            nonlocal killed_at
            wait_for_running_task(names[0])
            killed_at = time.time()
            deployment.kill(names[0])

        started = time.monotonic()
        webs[0].action(
            "soldier",
            "launch_vm",
            [s.pk for s in row.soldiers],
            step="launch",
            template=str(row.template.pk),
            count="1",
            host="",
            launch_key=uuid.uuid4().hex,  # as the preflight page carries
        )
        hooks: list[Callable[[Batch], None]] = [poll]
        if kill_one:
            hooks.append(once_when(ended_share(0.3), kill))
        launch = row.rewait(
            Batch.objects.get(kind=Operation.Kind.LAUNCH), "launch", hooks, timeout=BATCH_TIMEOUT
        )
        live = Instance.objects.exclude(status=ServerStatus.DELETED)
        webs[1].action("instance", "delete_vm", list(live.values_list("pk", flat=True)), post="yes")
        delete = row.rewait(
            Batch.objects.get(kind=Operation.Kind.DELETE), "delete", [poll], timeout=BATCH_TIMEOUT
        )
        run.wall_seconds = time.monotonic() - started
        run.launch_seconds, run.delete_seconds = launch.seconds, delete.seconds
        deployment.devcloud.faults.reset()
        row.audit()
    return run, row, deployment, killed_at


def prove_exactly_once(run: Run, row: Row, deployment: Deployment, killed_at: float | None) -> None:
    """From the request log and the task table; see the module's docstring."""
    ops = list(Operation.objects.filter(batch__in=row.batches).select_related("instance__project"))
    assert all(op.state == Operation.State.SUCCEEDED for op in ops), Counter(o.state for o in ops)
    launch_of: dict[str, int] = {}
    delete_of: dict[str | None, int] = {}
    for op in ops:
        assert op.instance is not None
        if op.kind == Operation.Kind.LAUNCH:
            launch_of[op.instance.project.keystone_id] = op.pk
        elif op.kind == Operation.Kind.DELETE:
            delete_of[op.instance.server_id] = op.pk
    fip_delete_of = {
        neutron_id: delete_of[server_id]
        for neutron_id, server_id in FloatingIP.objects.filter(created_by_portal=True).values_list(
            "neutron_id", "instance__server_id"
        )
    }
    writes: list[tuple[str, int, float]] = []
    unexpected: list[str] = []
    for entry in deployment.devcloud.faults.requests():
        if entry["method"] not in ("POST", "PUT", "PATCH", "DELETE"):
            continue
        if entry["service"] == "identity" and entry["path"] == "/v3/auth/tokens":
            continue  # a login changes nothing
        status = entry["status"] or 0
        what = f"{entry['method']} {entry['service']} {entry['path']}"
        assert status < 400, f"a write was refused without any fault: {what} {status}"
        path, project = entry["path"], entry["project_id"]
        if (entry["method"], path) == ("POST", "/v2.1/servers"):
            writes.append(("server create", launch_of[project], entry["time"]))
        elif (entry["method"], path) == ("POST", "/v2.0/floatingips"):
            writes.append(("floating-IP create", launch_of[project], entry["time"]))
        elif entry["method"] == "DELETE" and path.startswith("/v2.0/floatingips/"):
            writes.append(
                ("floating-IP delete", fip_delete_of[path.rsplit("/", 1)[1]], entry["time"])
            )
        elif entry["method"] == "DELETE" and path.startswith("/v2.1/servers/"):
            writes.append(("server delete", delete_of[path.rsplit("/", 1)[1]], entry["time"]))
        else:
            unexpected.append(what)
    assert not unexpected, unexpected
    per_operation = Counter((kind, op) for kind, op, _ in writes)
    run.writes = Counter(kind for kind, _ in per_operation)
    assert run.writes == {
        "server create": VMS,
        "floating-IP create": VMS,
        "floating-IP delete": VMS,
        "server delete": VMS,
    }, run.writes
    assert set(per_operation.values()) == {1}, [k for k, n in per_operation.items() if n > 1]

    # The tasks of each operation, as intervals of the worker that ran them.
    spans: dict[int, list[tuple[float, float, str]]] = defaultdict(list)
    for task in DBTaskResult.objects.filter(task_path="portal.tasks.operation_run"):
        args = task.args_kwargs.get("args") or [None]
        if task.started_at is None or not task.worker_ids or task.return_value == "skipped":
            continue  # (a task that found its operation held or ended did nothing)
        worker = task.worker_ids[-1]
        end = task.finished_at.timestamp() if task.finished_at else float("inf")
        if killed_at is not None and worker == "worker-1":
            end = min(end, killed_at)
        spans[int(args[0])].append((task.started_at.timestamp(), end, worker))
    for op_id, intervals in spans.items():
        intervals.sort()
        for (_, end, first), (start, _, second) in itertools.pairwise(intervals):
            assert start >= end, f"operation {op_id}: tasks on {first} and {second} overlapped"
    run.operations_on_several_workers = sum(
        1 for intervals in spans.values() if len({w for _, _, w in intervals}) > 1
    )
    for kind, op_id, at in writes:
        inside = [w for start, end, w in spans[op_id] if start <= at <= end]
        assert len(inside) == 1, f"{kind} of operation {op_id} at {at}: in tasks of {inside}"
        run.writes_by_worker[inside[0]] += 1


def test_three_workers_and_two_webs_run_300_vms_exactly_once(
    tmp_path: Path, big_cohort: Cohort
) -> None:
    baseline, row, deployment, _ = run_batches(
        tmp_path / "one", big_cohort, workers=1, kill_one=False
    )
    try:
        prove_exactly_once(baseline, row, deployment, None)
        _check_end_state(row)
    finally:
        deployment.stop()
    call_command("flush", interactive=False, verbosity=0)

    scaled, row, deployment, killed_at = run_batches(
        tmp_path / "three", big_cohort, workers=3, kill_one=True
    )
    try:
        assert killed_at is not None
        prove_exactly_once(scaled, row, deployment, killed_at)
        _check_end_state(row)
    finally:
        deployment.stop()
    print("\n" + record(baseline, scaled))
    # 286 is htmx's "stop polling": the batch page's answer once the batch has ended.
    assert set(baseline.page_polls) <= {200, 286}, baseline.page_polls
    assert set(scaled.page_polls) <= {200, 286}, scaled.page_polls
    assert len(scaled.writes_by_worker) == 3, "a worker ran no cloud write"


def _check_end_state(row: Row) -> None:
    outcome = row.outcome
    assert outcome.lost == 0
    assert outcome.phases["launch"].succeeded == VMS
    assert outcome.phases["delete"].succeeded == VMS
    assert not outcome.orphan_servers
    assert not outcome.orphan_floating_ips
    assert not outcome.duplicate_servers


def record(baseline: Run, scaled: Run) -> str:
    vendor = connection.vendor
    lines = [
        f"### {vendor}\n",
        "| workers | launch 300 (s) | delete 300 (s) | wall (s) | vs 1 worker |",
        "|---|---|---|---|---|",
    ]
    for run in (baseline, scaled):
        lines.append(
            f"| {run.workers}{' (one SIGKILLed at 30 %)' if run is scaled else ''} | "
            f"{run.launch_seconds:.1f} | {run.delete_seconds:.1f} | {run.wall_seconds:.1f} | "
            f"{run.wall_seconds / baseline.wall_seconds:.2f}x |"
        )
    lines += [
        "",
        f"Cloud writes (each exactly once per operation): {dict(scaled.writes)}.",
        f"Writes by worker (3 workers): {dict(sorted(scaled.writes_by_worker.items()))}; "
        f"operations whose tasks ran on more than one worker: "
        f"{scaled.operations_on_several_workers}.",
        f"Batch pages polled on both gunicorn instances: {dict(scaled.page_polls)} (status: "
        "count).",
    ]
    text = "\n".join(lines) + "\n"
    store = RESULTS / "scale-out.json"
    sections: dict[str, str] = json.loads(store.read_text()) if store.exists() else {}
    sections[vendor] = text
    store.write_text(json.dumps(sections, indent=1) + "\n")
    (RESULTS / "scale-out.md").write_text(
        "# Scale-out\n\nWritten by `tests/reliability/test_scale_out.py`: 300 onboarded "
        "soldiers, devcloud with a 0.5 s build, two gunicorn instances and the scheduler on one "
        "database; staff launch 300 VMs on the first web instance and delete them on the "
        "second. Wall time from the launch action to the last delete ending.\n\n"
        + "\n".join(sections[k] for k in sorted(sections))
    )
    return text
