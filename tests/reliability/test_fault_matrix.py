"""The fault matrix: every row a 100-VM bulk launch and bulk delete under one kind of fault.

Run: ``bin/test tests/reliability/test_fault_matrix.py`` (``DATABASE_URL=postgres://…`` for
PostgreSQL). Each row starts its own devcloud (build delay 0.5 s), three ``db_worker``
processes and the scheduler on the session's database, onboards 100 soldiers without faults,
then arms its fault and runs the batches the console's actions start. What it requires, of
every row: no operation lost (every one ended, succeeded or failed with a message a person can
act on, quoting the cloud's request id when there was one), no orphan server or portal-created
floating IP, no server created twice. Each row prints the table and rewrites its line in
``bench/results/fault-matrix.md``.
"""

from __future__ import annotations

import pytest

from tests.reliability.deployment import Deployment
from tests.reliability.matrix import Outcome, Row, record

pytestmark = [pytest.mark.cloud, pytest.mark.django_db(transaction=True)]

VMS = 100
WORKERS = 3


def start(deployment: Deployment, name: str, workers: int = WORKERS) -> Row:
    deployment.start_workers(workers)
    deployment.start_scheduler()
    row = Row(deployment, name=name, vms=VMS)
    row.prepare()
    return row


def finish(row: Row, deployment: Deployment, notes: str = "") -> Outcome:
    faults = deployment.devcloud.faults
    hits = sum(int(f["hits"]) for f in faults.list_faults())
    faults.reset()
    outcome = row.audit()
    retries = row.retries()
    outcome.notes = "; ".join(
        filter(
            None,
            [
                notes,
                f"{hits} calls hit by the fault rules" if hits else "",
                f"{retries} step retries",
            ],
        )
    )
    print("\n" + record(outcome))
    assert outcome.lost == 0, outcome.phases
    assert not outcome.orphan_servers, outcome.orphan_servers
    assert not outcome.orphan_floating_ips, outcome.orphan_floating_ips
    assert not outcome.duplicate_servers, outcome.duplicate_servers
    assert not outcome.unactionable, outcome.unactionable
    return outcome


def test_twenty_percent_5xx_on_nova_and_neutron(deployment: Deployment) -> None:
    row = start(deployment, "20 % 5xx on Nova and Neutron")
    faults = deployment.devcloud.faults
    faults.add(path=r"^/compute/", status=500, fraction=0.2)
    faults.add(path=r"^/networking/", status=503, fraction=0.2)
    row.launch()
    row.delete()
    outcome = finish(row, deployment)
    assert sum(p.total for p in outcome.phases.values()) == 2 * VMS
    assert row.retries() > 0, "the fault never made a step retry"
