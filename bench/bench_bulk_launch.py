"""Bulk launch: 100 VMs from one batch against a 5 s build, as a ratio to one VM's launch.

Run from the repository root: ``.venv/bin/python bench/bench_bulk_launch.py [--workers 2]``.
Real ``manage.py db_worker`` processes run the tasks. Waiting for ACTIVE never holds a worker, so
the 100 builds overlap; the target is a bulk wall time of at most 3x a single launch. Soldiers
are onboarded beforehand, so both timings measure the same thing: a launch.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from portal_site import setup, start_workers, stop

if TYPE_CHECKING:  # Django is set up by setup(), after this module is imported
    from portal.models import Soldier, VmTemplate

BUILD_SECONDS = 5.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--vms", type=int, default=100)
    args = parser.parse_args()
    devcloud, env = setup(build_seconds=BUILD_SECONDS, OPERATION_POLL_SECONDS="1")
    workers = []
    try:
        soldiers, template = prepare(args.vms + 1)
        workers = start_workers(args.workers, env)
        warm_up(args.workers)
        single = time_single(soldiers[0], template)
        bulk = time_batch(soldiers[1:], template)
        print(f"build delay {BUILD_SECONDS:.0f} s, {args.workers} db_worker processes")
        print(f"one VM:        {single:6.2f} s")
        print(f"{args.vms} VMs batch: {bulk:6.2f} s")
        print(f"ratio:         {bulk / single:6.2f}x (target <= 3x)")
    finally:
        stop(workers)
        devcloud.stop()


def prepare(count: int) -> tuple[list[Soldier], VmTemplate]:
    from django.contrib.auth import get_user_model

    from portal import services

    soldiers = []
    for n in range(count):
        user = get_user_model().objects.create_user(username=f"bulk{n}")
        soldier = services.soldier_create(user=user, service_number=f"BULK-{n}", name=f"b{n}")
        op = services.soldier_onboard(soldier=soldier, run_now=True)
        assert op.state == "succeeded", op.message_text
        soldiers.append(soldier)
    return soldiers, services.vm_template_from_cloud(name="bench")


def warm_up(workers: int) -> None:
    """Wait until the workers run tasks, so their start-up is not timed."""
    from portal import services
    from portal.models import Operation

    for _ in range(workers):
        op = services.cloud_reconcile()
        while op.state != Operation.State.SUCCEEDED:
            time.sleep(0.05)
            op.refresh_from_db()


def time_single(soldier: Soldier, template: VmTemplate) -> float:
    from portal import services
    from portal.models import Operation

    started = time.perf_counter()
    instance = services.instance_launch(soldier=soldier, template=template)
    op = instance.operations.get()
    while op.state not in (Operation.State.SUCCEEDED, Operation.State.FAILED):
        time.sleep(0.05)
        op.refresh_from_db()
    assert op.state == Operation.State.SUCCEEDED, op.message_text
    return time.perf_counter() - started


def time_batch(soldiers: list[Soldier], template: VmTemplate) -> float:
    from portal import services

    started = time.perf_counter()
    batch, refusals = services.batch_launch(soldiers=soldiers, template=template)
    assert not refusals, refusals
    while batch.finished_at is None:
        time.sleep(0.1)
        batch.refresh_from_db()
    assert batch.failed == 0, f"{batch.failed} launches failed"
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
