"""Reconcile cost at N = 10, 100, 1000 servers: cloud calls and wall time per pass.

Run from the repository root: ``.venv/bin/python bench/bench_reconcile.py``. The baseline is the
naive sync a portal would do without list calls: one ``GET /servers/{id}`` per mirrored VM.
"""

from __future__ import annotations

import time

from portal_site import setup


def main() -> None:
    devcloud, _ = setup(build_seconds=0.05)
    try:
        run(devcloud)
    finally:
        devcloud.stop()


def run(devcloud: object) -> None:
    from django.contrib.auth import get_user_model

    from portal import cloud, services
    from portal.models import Instance

    user = get_user_model().objects.create_user(username="bench")
    soldier = services.soldier_create(user=user, service_number="B-1", name="bench")
    services.soldier_onboard(soldier=soldier, run_now=True)
    soldier.refresh_from_db()
    project_id = soldier.project.keystone_id
    services.cloud_reconcile(run_now=True)  # logs in and warms the token cache
    client = cloud.get_client()
    faults = devcloud.faults  # type: ignore[attr-defined]

    print(
        f"{'N':>5} {'calls':>6} {'seconds':>8} {'naive calls':>12} {'naive s':>8} {'x faster':>9}"
    )
    created = 0
    for n in (10, 100, 1000):
        faults.bulk_servers(project_id=project_id, count=n - created)
        created = n
        faults.clear_requests()
        started = time.perf_counter()
        op = services.cloud_reconcile(run_now=True)
        seconds = time.perf_counter() - started
        calls = len(faults.requests())
        assert op.progress["stats"]["servers"] == n, op.progress

        faults.clear_requests()
        started = time.perf_counter()
        for server_id in Instance.objects.values_list("server_id", flat=True):
            client.get_server(server_id or "")
        naive_seconds = time.perf_counter() - started
        naive_calls = len(faults.requests())
        print(
            f"{n:>5} {calls:>6} {seconds:>8.3f} {naive_calls:>12} {naive_seconds:>8.3f} "
            f"{naive_seconds / seconds:>9.1f}"
        )


if __name__ == "__main__":
    main()
