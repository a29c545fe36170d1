"""Console render cost at N = 10, 100, 1000 VMs: time per render, SQL queries, cloud calls.

Run from the repository root: ``.venv/bin/python bench/bench_console.py``. The baseline is the
stock admin change list of a trivial model (``auth.Group``, one name column) holding the same N
rows, rendered by the same client in the same run; "x stock" is the console page's time over it.
The pages and the baseline are rendered in turn, round after round, so that a busy machine slows
them alike; the times are medians. Pages render from the database mirror only, so the cloud call
count must stay 0.

The pages: the VM list and the soldier list (a page of ``list_per_page`` rows with N VMs in the
database), the status page (its first page of rows with N VMs) and the status page's live part
as htmx polls it every 2 s while a VM changes state (some of the VMs here are building).
"""

from __future__ import annotations

import statistics
import time
from datetime import timedelta
from typing import Any

from portal_site import setup

RENDERS = 21


def main() -> None:
    devcloud, _ = setup(build_seconds=0.05)
    try:
        run()
    finally:
        devcloud.stop()


def populate(n: int) -> None:
    """Top the mirror up to ``n`` VMs (two per soldier), each with operations and a floating IP."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.utils import timezone

    from portal.models import FloatingIP, Instance, Operation, Project, Soldier

    users = get_user_model()
    now = timezone.now()
    have = Instance.objects.count()
    states = [("ACTIVE", 1, ""), ("SHUTOFF", 4, ""), ("BUILD", 0, "spawning"), ("ERROR", 0, "")]
    for i in range(have, n):
        if i % 2 == 0:
            user = users.objects.create_user(username=f"bench{i}")
            soldier = Soldier.objects.create(
                user=user,
                service_number=f"B-{i:05d}",
                name=f"병사 {i}",
                unit=f"{i % 5 + 1}사단",
                keystone_user_name=f"bench{i}",
                discharge_on=now.date() + timedelta(days=i % 400),
            )
            Project.objects.create(soldier=soldier, name=f"cs-bench{i}")
        owner = Soldier.objects.order_by("-pk").first()
        assert owner is not None
        status, power, task = states[i % len(states)]
        instance = Instance.objects.create(
            project=owner.project,
            owner=owner,
            name=f"bench{i}-standard",
            server_id=f"server-{i:05d}",
            status=status,
            vm_state=status.lower(),
            task_state=task,
            power_state=power,
            host=f"compute{i % 2 + 1}",
            fixed_ip=f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
            floating_ip=f"172.24.{i // 256}.{i % 256}",
            launched_at=now,
            launched_at_raw=now.strftime("%Y-%m-%dT%H:%M:%S.%f"),
            running_since=now if power == 1 else None,
        )
        Operation.objects.bulk_create(
            Operation(
                kind=Operation.Kind.POWER,
                state=state,
                instance=instance,
                soldier=owner,
                message="The power action finished.",
                request_ids=[f"req-{i}"],
            )
            for state in (Operation.State.SUCCEEDED, Operation.State.FAILED)
        )
        FloatingIP.objects.create(
            neutron_id=f"fip-{i}", address=instance.floating_ip, instance=instance
        )
        Group.objects.create(name=f"bench group {i}")


def counted(client: Any, url: str, headers: dict[str, str]) -> tuple[int, int]:
    """SQL queries and cloud calls of one render (after a first one has warmed the caches)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from portal.openstack.transport import observe_exchanges

    client.get(url, headers=headers)
    calls: list[Any] = []
    with observe_exchanges(calls.append), CaptureQueriesContext(connection) as queries:
        response = client.get(url, headers=headers)
    assert response.status_code in (200, 286), (url, response.status_code)
    return len(queries), len(calls)


def timed(client: Any, pages: dict[str, tuple[str, dict[str, str]]]) -> dict[str, float]:
    """Median seconds per render of each page, the pages rendered in turn, round after round."""
    samples: dict[str, list[float]] = {name: [] for name in pages}
    for _ in range(RENDERS):
        for name, (url, headers) in pages.items():
            started = time.perf_counter()
            client.get(url, headers=headers)
            samples[name].append(time.perf_counter() - started)
    return {name: statistics.median(found) for name, found in samples.items()}


def run() -> None:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client
    from django.urls import reverse

    call_command("collectstatic", interactive=False, verbosity=0)  # served as in production
    admin = get_user_model().objects.create_superuser(username="bench-admin", password="x")
    client = Client(HTTP_HOST="localhost", headers={"Accept-Language": "ko"})
    client.force_login(admin)
    poll = {"HX-Request": "true"}
    pages = {
        "stock list": (reverse("admin:auth_group_changelist"), {}),
        "VM list": (reverse("admin:portal_instance_changelist"), {}),
        "soldier list": (reverse("admin:portal_soldier_changelist"), {}),
        "status page": (reverse("admin:portal_status"), {}),
        "status poll": (reverse("admin:portal_status"), poll),
    }
    print(
        f"{'N':>5} {'page':<13} {'ms/render':>10} {'stock ms':>9} {'x stock':>8} "
        f"{'queries':>8} {'stock q':>8} {'cloud calls':>12}"
    )
    for n in (10, 100, 1000):
        populate(n)
        counts = {name: counted(client, url, headers) for name, (url, headers) in pages.items()}
        seconds = timed(client, pages)
        base_seconds, (base_queries, _) = seconds["stock list"], counts["stock list"]
        for name in pages:
            if name == "stock list":
                continue
            queries, calls = counts[name]
            print(
                f"{n:>5} {name:<13} {seconds[name] * 1000:>10.1f} {base_seconds * 1000:>9.1f} "
                f"{seconds[name] / base_seconds:>8.2f} {queries:>8} {base_queries:>8} {calls:>12}"
            )


if __name__ == "__main__":
    main()
