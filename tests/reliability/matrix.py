"""One row of the fault matrix: a bulk launch and a bulk delete of N VMs under one fault.

The test process plays the staff member and calls the services the console's actions call
(``batch_launch_many`` for "Launch VMs…", ``batch_apply`` + ``instance_delete`` for "Delete
VMs…", ``instance_power`` for "Stop"); real ``db_worker`` processes run the operations. Then
the cloud is asked, through the portal's client, what is left: servers and portal-created
floating IPs no live mirror accounts for, and servers made twice for one request.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.db.models import Count, Sum

from portal import cloud, services
from portal.models import Batch, FloatingIP, Instance, Operation, Soldier, VmTemplate
from portal.openstack.types import ServerStatus
from tests.conftest import ROOT
from tests.reliability.deployment import Deployment, wait_until

RESULTS = ROOT / "bench" / "results"
GONE = {ServerStatus.DELETED, ServerStatus.SOFT_DELETED}

Hook = Callable[[Batch], None]


@dataclass
class Phase:
    """How the operations of one batch ended."""

    total: int = 0
    succeeded: int = 0
    failed: int = 0
    lost: int = 0  # still queued or running when the batch's time was up
    seconds: float = 0.0

    def cell(self) -> str:
        return f"{self.succeeded} / {self.failed} / {self.lost}"


@dataclass
class Outcome:
    row: str
    vms: int
    phases: dict[str, Phase] = field(default_factory=dict)
    orphan_servers: list[str] = field(default_factory=list)
    orphan_floating_ips: list[str] = field(default_factory=list)
    duplicate_servers: list[str] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)  # message (ids elided) -> count
    unactionable: list[str] = field(default_factory=list)
    secret_hits: list[str] = field(default_factory=list)
    seconds: float = 0.0
    notes: str = ""
    database: str = ""

    @property
    def lost(self) -> int:
        return sum(p.lost for p in self.phases.values())


def once_when(condition: Callable[[Batch], bool], action: Callable[[], None]) -> Hook:
    """A hook that runs ``action`` the first time ``condition`` holds for the batch."""
    fired = False

    def hook(batch: Batch) -> None:
        nonlocal fired
        if not fired and condition(batch):
            fired = True
            action()

    return hook


def ended_share(share: float) -> Callable[[Batch], bool]:
    """True once that share of the batch's operations has ended."""

    def condition(batch: Batch) -> bool:
        ended = batch.succeeded + batch.failed + batch.cancelled
        return batch.total > 0 and ended >= share * batch.total

    return condition


@dataclass(frozen=True)
class LeakScan:
    """One row's secret scan: what its cloud saw, the logs searched, the hits."""

    row: str
    secrets: set[str]
    files: list[Path]
    hits: list[str]


@dataclass(frozen=True)
class Cohort:
    """Soldiers onboarded once per session: devcloud's state and the portal's rows, to restore.

    Onboarding a hundred soldiers (a project, a network and a router each) costs more than a
    row's batches; every row starts from a copy of the same onboarded cloud instead.
    """

    vms: int
    devcloud_state: Path
    dump: Path


def onboard_cohort(deployment: Deployment, *, vms: int, dump: Path) -> Cohort:
    """Register and onboard ``vms`` soldiers (by the deployment's workers, without faults)."""
    staff = get_user_model().objects.create_user(
        username="matrix-staff", is_staff=True, is_superuser=True
    )
    soldiers = [
        services.soldier_register(
            service_number=f"SN-{n:04d}", name=f"Soldier {n}", keystone_user_name=f"sol{n:04d}"
        )
        for n in range(1, vms + 1)
    ]
    services.vm_template_from_cloud(name="standard")
    result = services.batch_apply(
        kind=Operation.Kind.ONBOARD,
        targets=soldiers,
        start=lambda s, batch: services.soldier_onboard(soldier=s, requested_by=staff, batch=batch),
        requested_by=staff,
    )
    assert not result.refusals, result.refusals
    assert result.batch is not None
    batch_pk = result.batch.pk
    batch = wait_until(
        lambda: Batch.objects.filter(pk=batch_pk, finished_at__isnull=False).first(),
        timeout=600,
        interval=0.5,
        what="the cohort's onboarding",
    )
    assert batch.succeeded == vms, f"onboarding without faults: {batch.succeeded}/{vms}"
    call_command("dumpdata", "auth.user", "portal", output=str(dump), verbosity=0)
    return Cohort(vms=vms, devcloud_state=deployment.devcloud_dir, dump=dump)


class Row:
    """The soldiers, their template and the batches of one row, against one deployment."""

    def __init__(self, deployment: Deployment, cohort: Cohort, *, name: str) -> None:
        call_command("loaddata", str(cohort.dump), verbosity=0)
        self.deployment = deployment
        self.outcome = Outcome(row=name, vms=cohort.vms)
        self.vms = cohort.vms
        self.staff = get_user_model().objects.get(username="matrix-staff")
        self.soldiers = list(Soldier.objects.select_related("project").order_by("pk"))
        self.template = VmTemplate.objects.get(name="standard")
        self.batches: list[Batch] = []
        # Every failure seen at the end of a batch (a retried one stays counted), by operation.
        self._failures: dict[int, tuple[str, str]] = {}
        self.leak_scans: list[LeakScan] = []
        self._started = time.monotonic()

    # --- the batches, as the console starts them -------------------------------------------

    def launch(self, during: Sequence[Hook] = (), timeout: float = 300) -> Phase:
        result = services.batch_launch_many(
            soldiers=self.soldiers, template=self.template, requested_by=self.staff
        )
        assert not result.refusals, result.refusals
        assert result.batch is not None
        phase = self._wait(result.batch, during, timeout)
        self.outcome.phases["launch"] = phase
        self.outcome.duplicate_servers = self._duplicates()
        return phase

    def power(
        self, action: Instance.Action, during: Sequence[Hook] = (), timeout: float = 300
    ) -> Phase:
        targets = Instance.objects.filter(status=ServerStatus.ACTIVE, pending_action="")
        result = services.batch_apply(
            kind=str(action),
            targets=targets,
            start=lambda i, batch: services.instance_power(
                instance=i, action=action, requested_by=self.staff, batch=batch
            ),
            requested_by=self.staff,
        )
        assert result.batch is not None, result.refusals
        phase = self._wait(result.batch, during, timeout)
        self.outcome.phases[str(action)] = phase
        return phase

    def delete(self, during: Sequence[Hook] = (), timeout: float = 300) -> Phase:
        """Every VM the console still lists as not deleted, as "select all, Delete VMs…"."""
        targets = Instance.objects.exclude(status=ServerStatus.DELETED).select_related("owner")
        result = services.batch_apply(
            kind=Operation.Kind.DELETE,
            targets=targets,
            start=lambda i, batch: services.instance_delete(
                instance=i, requested_by=self.staff, batch=batch
            ),
            requested_by=self.staff,
        )
        assert not result.refusals, result.refusals
        assert result.batch is not None
        phase = self._wait(result.batch, during, timeout)
        self.outcome.phases["delete"] = phase
        return phase

    def rewait(
        self, batch: Batch, phase_name: str, during: Sequence[Hook] = (), timeout: float = 300
    ) -> Phase:
        """Follow a batch (started elsewhere, or again after its failed rows were retried)."""
        phase = self._wait(batch, during, timeout)
        self.outcome.phases[phase_name] = phase
        return phase

    def _wait(self, batch: Batch, during: Sequence[Hook], timeout: float) -> Phase:
        started = time.monotonic()
        if batch not in self.batches:
            self.batches.append(batch)
        while True:
            batch.refresh_from_db()
            for hook in during:
                hook(batch)
            if batch.finished_at is not None or time.monotonic() - started > timeout:
                break
            time.sleep(0.2)
        states = Counter(batch.operations.values_list("state", flat=True))
        phase = Phase(
            total=sum(states.values()),
            succeeded=states[Operation.State.SUCCEEDED],
            failed=states[Operation.State.FAILED],
            lost=states[Operation.State.QUEUED] + states[Operation.State.RUNNING],
            seconds=time.monotonic() - started,
        )
        for op in batch.operations.filter(state=Operation.State.FAILED):
            text = op.message_text
            problem = _unactionable(op, text)
            self._failures[op.pk] = (
                _elide(text),
                f"operation {op.pk} ({op.kind}): {problem}" if problem else "",
            )
        if not phase.lost:
            # The batch's own counters are bumped once per ending: a double count is a bug.
            assert (batch.succeeded, batch.failed) == (phase.succeeded, phase.failed), (
                f"batch {batch.pk} counted {batch.succeeded}/{batch.failed}, "
                f"operations say {phase.succeeded}/{phase.failed}"
            )
        return phase

    # --- what the cloud says afterwards -------------------------------------------------------

    def _duplicates(self) -> list[str]:
        """Request tags that more than one live server carries."""
        tags = Counter(
            s.metadata.get(services.REQUEST_TAG_KEY, "")
            for s in cloud.get_client().list_servers(all_projects=True)
            if s.status not in GONE
        )
        return [f"{tag}×{n}" for tag, n in tags.items() if tag and n > 1]

    def retries(self) -> int:
        """Step retries after transient cloud errors, over this row's batches."""
        total = Operation.objects.filter(batch__in=self.batches).aggregate(n=Sum("retries"))["n"]
        return int(total or 0)

    def audit(self) -> Outcome:
        """Count orphans, duplicates and failure messages (call with the faults removed)."""
        client = cloud.get_client()
        live = Instance.objects.exclude(status=ServerStatus.DELETED)
        live_servers = set(live.exclude(server_id=None).values_list("server_id", flat=True))
        servers = [s for s in client.list_servers(all_projects=True) if s.status not in GONE]
        outcome = self.outcome
        outcome.orphan_servers = [s.id for s in servers if s.id not in live_servers]
        duplicates = set(outcome.duplicate_servers) | set(self._duplicates())
        outcome.duplicate_servers = sorted(duplicates)
        attached = set(
            FloatingIP.objects.filter(
                created_by_portal=True, released_at__isnull=True, instance__in=live
            ).values_list("neutron_id", flat=True)
        )
        outcome.orphan_floating_ips = [
            f.floating_ip_address
            for f in client.list_floating_ips()
            if (f.description or "").startswith(services.FIP_DESCRIPTION_PREFIX)
            and f.id not in attached
        ]
        failures = Counter(text for text, _ in self._failures.values())
        outcome.unactionable = [problem for _, problem in self._failures.values() if problem]
        outcome.failures = dict(failures.most_common())
        outcome.seconds = time.monotonic() - self._started
        outcome.database = connection.vendor
        # Sanity of the mirror itself: one live mirror per server id (unique in the schema).
        assert (
            not live.values("server_id")
            .exclude(server_id=None)
            .annotate(n=Count("pk"))
            .filter(n__gt=1)
        )
        return outcome


_REQUEST_ID = re.compile(r"\(request (req-[0-9a-f-]+)\)")


def _unactionable(op: Operation, text: str) -> str:
    """Why a failed operation's message would not let a person act, or ''."""
    if not text.strip():
        return "no message"
    if "internal error" in text:
        return f"internal error: {op.error_detail}"
    given = _REQUEST_ID.search(op.error_detail or "")
    if given and given.group(1) not in text:
        return f"the cloud gave request id {given.group(1)} but the message lacks it: {text}"
    return ""


def _elide(text: str) -> str:
    """A failure message with its ids elided, so that equal failures count together."""
    text = re.sub(r"req-[0-9a-f-]+", "req-…", text)
    text = re.sub(
        r"\b[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\b", "…", text
    )
    text = re.sub(r"\b[0-9a-f]{32}\b", "…", text)
    text = re.sub(r"\bsol\d{4}\b", "sol…", text)
    return text[:240]


# --- the table ----------------------------------------------------------------------------

HEADER = (
    "| row | VMs | launch ok / failed / lost | delete ok / failed / lost | "
    "orphan servers | orphan FIPs | duplicates | secret hits | time (s) |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def table_line(o: Outcome) -> str:
    cells = [
        o.row,
        str(o.vms),
        o.phases["launch"].cell() if "launch" in o.phases else "-",
        o.phases["delete"].cell() if "delete" in o.phases else "-",
        str(len(o.orphan_servers)),
        str(len(o.orphan_floating_ips)),
        str(len(o.duplicate_servers)),
        str(len(o.secret_hits)),
        f"{o.seconds:.0f}",
    ]
    return "| " + " | ".join(cells) + " |"


def record(outcome: Outcome, *, results: Path = RESULTS) -> str:
    """Keep this row's figures next to the others' and rewrite the table; returns the table."""
    results.mkdir(parents=True, exist_ok=True)
    store = results / "fault-matrix.json"
    rows: dict[str, Any] = json.loads(store.read_text()) if store.exists() else {}
    rows[outcome.row] = asdict(outcome)
    store.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
    outcomes = [_outcome(v) for v in rows.values()]
    lines = [HEADER, *(table_line(o) for o in outcomes)]
    details = []
    for o in outcomes:
        extra = ", ".join(f"{name} {p.cell()} in {p.seconds:.0f} s" for name, p in o.phases.items())
        notes = "; ".join(filter(None, [o.database, o.notes]))
        details.append(f"\n**{o.row}** ({extra}): {notes}")
        for message, count in o.failures.items():
            details.append(f"- {count} × {message}")
    text = "\n".join(lines) + "\n" + "\n".join(details) + "\n"
    (results / "fault-matrix.md").write_text(
        "# Fault matrix\n\nWritten by `tests/reliability/test_fault_matrix.py` (see its docstring "
        "for how to run it). Operations: succeeded / failed with a shown message / lost (never "
        "ended). Orphans and duplicates are counted by asking the cloud through the portal's "
        "client after the delete batch.\n\n" + text
    )
    return text


def _outcome(data: dict[str, Any]) -> Outcome:
    phases = {k: Phase(**v) for k, v in data.pop("phases").items()}
    return Outcome(**data, phases=phases)


def wait_for_running_task(worker: str, timeout: float = 120) -> None:
    """Until ``worker`` is inside an operation (its task row RUNNING, the operation leased)."""
    from django_tasks_db.models import DBTaskResult

    def running() -> bool:
        for task in DBTaskResult.objects.filter(status="RUNNING"):
            if task.worker_ids and task.worker_ids[-1] == worker:
                args = task.args_kwargs.get("args") or [None]
                return Operation.objects.filter(pk=args[0], state="running").exists()
        return False

    wait_until(running, timeout=timeout, interval=0.02, what=f"{worker} to run an operation")
