"""The fault matrix: every row a 100-VM bulk launch and bulk delete under one kind of fault.

Run: ``bin/test tests/reliability/test_fault_matrix.py`` (``DATABASE_URL=postgres://…`` for
PostgreSQL). The session onboards 100 soldiers once, without faults; each row starts its own
devcloud from a copy of that cloud (build delay 0.5 s), loads the portal's rows, starts three
``db_worker`` processes and the scheduler on the session's database, then arms its fault and
runs the batches the console's actions start. What it requires, of
every row: no operation lost (every one ended, succeeded or failed with a message a person can
act on, quoting the cloud's request id when there was one), no orphan server or portal-created
floating IP, no server created twice. Each row prints the table and rewrites its line in
``bench/results/fault-matrix.md``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from portal import cloud, services
from portal.models import Instance
from tests.reliability.deployment import Deployment
from tests.reliability.matrix import (
    Cohort,
    LeakScan,
    Outcome,
    Row,
    ended_share,
    once_when,
    record,
    wait_for_running_task,
)
from tests.secret_scan import cloud_secrets, scan

pytestmark = [
    pytest.mark.cloud,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(900),  # a row drives 200-300 operations through real workers
]

VMS = 100
WORKERS = 3
LATENCY_WORKERS = 24


@pytest.fixture
def start(deployment: Deployment, cohort: Cohort, leak_scans: list[LeakScan]) -> Callable[..., Row]:
    def start(name: str, workers: int = WORKERS) -> Row:
        row = Row(deployment, cohort, name=name)
        row.leak_scans = leak_scans
        deployment.start_workers(workers)
        deployment.start_scheduler()
        return row

    return start


def finish(row: Row, deployment: Deployment, notes: str = "") -> Outcome:
    faults = deployment.devcloud.faults
    hits = sum(int(f["hits"]) for f in faults.list_faults())
    faults.reset()
    outcome = row.audit()
    # Every credential this cloud saw, looked for in every log (DEBUG) and the whole database.
    secrets = cloud_secrets(deployment.devcloud)
    files = deployment.log_files()
    outcome.secret_hits = scan(secrets, files=files, database=True)
    row.leak_scans.append(LeakScan(outcome.row, secrets, files, outcome.secret_hits))
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
    assert not outcome.secret_hits, outcome.secret_hits
    return outcome


def test_twenty_percent_5xx_on_nova_and_neutron(
    deployment: Deployment, start: Callable[..., Row]
) -> None:
    row = start("20 % 5xx on Nova and Neutron")
    faults = deployment.devcloud.faults
    faults.add(path=r"^/compute/", status=500, fraction=0.2)
    faults.add(path=r"^/networking/", status=503, fraction=0.2)
    row.launch()
    row.delete()
    outcome = finish(row, deployment)
    assert sum(p.total for p in outcome.phases.values()) == 2 * VMS
    assert row.retries() > 0, "the fault never made a step retry"


def test_two_seconds_latency_on_every_call(
    deployment: Deployment, start: Callable[..., Row]
) -> None:
    # Waiting on a slow cloud is all a worker does here, so the row runs with many of them
    # (the workers are single-threaded: one call in flight each).
    row = start("2 s latency on every call", workers=LATENCY_WORKERS)
    deployment.devcloud.faults.add(path=".*", status=None, latency=2.0)
    row.launch(timeout=900)
    row.delete(timeout=900)
    finish(row, deployment, notes=f"{LATENCY_WORKERS} db_worker processes")


def test_token_revoked_mid_batch(deployment: Deployment, start: Callable[..., Row]) -> None:
    row = start("portal's token revoked mid-launch and mid-delete")
    revoke = deployment.devcloud.faults.revoke_tokens
    row.launch(during=[once_when(ended_share(0.3), revoke)])
    row.delete(during=[once_when(ended_share(0.3), revoke)])
    finish(row, deployment)
    unauthorized = [r for r in deployment.devcloud.faults.requests() if r["status"] == 401]
    assert unauthorized, "no call met the revoked token"


def test_409_on_server_actions(deployment: Deployment, start: Callable[..., Row]) -> None:
    row = start("409 on a fifth of server actions and deletes")
    faults = deployment.devcloud.faults
    row.launch()
    busy = "Cannot '%s' instance while it is in task_state powering-off"
    faults.add(
        method="POST",
        path=r"^/compute/v2.1/servers/[^/]+/action$",
        status=409,
        fraction=0.2,
        message=busy % "stop",
    )
    faults.add(
        method="DELETE",
        path=r"^/compute/v2.1/servers/[^/]+$",
        status=409,
        fraction=0.2,
        message=busy % "delete",
    )
    stop = row.power(Instance.Action.STOP)
    delete = row.delete()
    hits = sum(int(f["hits"]) for f in faults.list_faults())
    # The server is no longer busy: staff retry the refused deletes from the batch page.
    faults.reset()
    delete_batch = row.batches[-1]
    assert services.batch_retry_failed(batch=delete_batch, requested_by=row.staff) == delete.failed
    assert row.rewait(delete_batch, "delete retried").failed == 0
    outcome = finish(row, deployment, notes=f"{hits} calls answered 409; refused deletes retried")
    assert stop.total == VMS
    assert stop.failed > 0
    assert delete.failed > 0
    assert outcome.failures


def test_project_quota_exceeded_for_some_soldiers(
    deployment: Deployment, start: Callable[..., Row]
) -> None:
    row = start("instance quota 0 for 10 soldiers")
    client = cloud.get_client()
    for soldier in row.soldiers[:10]:
        client.transport.request(
            "compute",
            "PUT",
            f"/os-quota-sets/{soldier.project.keystone_id}",
            json={"quota_set": {"instances": 0}},
        )
    launch = row.launch()
    row.delete()
    outcome = finish(row, deployment)
    assert (launch.succeeded, launch.failed) == (VMS - 10, 10)
    assert all("quota" in message for message in outcome.failures), outcome.failures


def test_floating_ip_pool_exhausted_mid_batch(
    deployment: Deployment, start: Callable[..., Row]
) -> None:
    row = start("floating-IP pool exhausted after 60 VMs")
    client = cloud.get_client()
    public = next(n for n in client.list_networks(name="public"))
    free = client.get_network_ip_availability(public.id).free_ips
    assert free > 60
    # Someone else (the admin project, without a quota) takes the pool's addresses until 60
    # are left.
    admin_project = client.list_projects(name="admin")[0].id
    client.transport.request(
        "network", "PUT", f"/quotas/{admin_project}", json={"quota": {"floatingip": -1}}
    )
    taken = [client.create_floating_ip(floating_network_id=public.id) for _ in range(free - 60)]
    launch = row.launch()
    assert (launch.succeeded, launch.failed) == (60, VMS - 60)
    # Addresses are given back and staff retry the failed rows from the batch page.
    for fip in taken:
        client.delete_floating_ip(fip.id)
    launch_batch = row.batches[-1]
    assert services.batch_retry_failed(batch=launch_batch, requested_by=row.staff) == VMS - 60
    retried = row.rewait(launch_batch, "retry")
    assert (retried.succeeded, retried.failed) == (VMS, 0)
    row.delete()
    finish(row, deployment, notes="the failed 40 retried after the pool was refilled")


def test_db_worker_sigkilled_mid_launch_and_mid_delete(
    deployment: Deployment, start: Callable[..., Row]
) -> None:
    row = start("a db_worker SIGKILLed mid-launch and mid-delete")

    def crash(victim: str, replacement: str) -> Callable[[], None]:
        def act() -> None:
            wait_for_running_task(victim)
            deployment.kill(victim)
            deployment.start_worker(replacement)

        return act

    row.launch(during=[once_when(ended_share(0.2), crash("worker-1", "worker-4"))])
    row.delete(during=[once_when(ended_share(0.2), crash("worker-2", "worker-5"))])
    finish(row, deployment, notes="the scheduler resumed what the killed workers held")


def test_devcloud_restarted_mid_batch(deployment: Deployment, start: Callable[..., Row]) -> None:
    row = start("devcloud restarted mid-launch and mid-delete")
    row.launch(during=[once_when(ended_share(0.3), deployment.restart_devcloud)])
    row.delete(during=[once_when(ended_share(0.3), deployment.restart_devcloud)])
    finish(row, deployment)


def test_no_credential_in_any_log_of_the_matrix(leak_scans: list[LeakScan]) -> None:
    """After the rows: every row's logs against every credential any row's cloud saw.

    Each row scanned its own logs and the database before the database was emptied; this
    looks across rows too, and makes sure the scans had something to find.
    """
    assert leak_scans, "no row of the matrix ran in this session"
    secrets = set().union(*(s.secrets for s in leak_scans))
    files = [f for s in leak_scans for f in s.files]
    assert sum("gAAAA" in s for s in secrets) > len(leak_scans), "too few tokens to look for"
    debug_lines = sum(f.read_text(errors="replace").count(" DEBUG ") for f in files)
    assert debug_lines > 1000, "the logs were not written at DEBUG"
    assert [hit for s in leak_scans for hit in s.hits] == []
    assert scan(secrets, files=files, database=False) == []
