"""The periodic jobs run by ``manage.py cloud_schedule``: resume, reconcile, discharge."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from portal.models import (
    Operation,
)
from portal.services.discharge import soldiers_discharge_due
from portal.services.engine import (
    OperationRefused,
    enqueue,
    setting,
)
from portal.services.reconcile import cloud_reconcile


@dataclass
class TickReport:
    resumed: int = 0
    reconcile_started: bool = False
    discharges_started: int = 0


def operations_resume_stale(*, now: datetime | None = None) -> int:
    """Re-enqueue operations whose worker died (lease expired) or whose task was lost."""
    from django_tasks_db.models import DBTaskResult

    now = now or timezone.now()
    grace = timedelta(seconds=setting("OPERATION_STALE_GRACE_SECONDS", 60))
    candidates = Operation.objects.active().filter(
        Q(lease_expires_at__lt=now)
        | Q(lease_expires_at__isnull=True)
        & (Q(run_after__isnull=True) | Q(run_after__lt=now - grace))
        & Q(updated_at__lt=now - grace)
    )
    # Operations that already have a task waiting in the queue need nothing more.
    queued = {
        row["args"][0]
        for row in DBTaskResult.objects.filter(
            status="READY", task_path="portal.tasks.operation_run"
        ).values_list("args_kwargs", flat=True)
        if row.get("args")
    }
    resumed = 0
    for op in candidates:
        if op.pk in queued:
            continue
        with transaction.atomic():
            enqueue(op)
        resumed += 1
    _close_abandoned_tasks(now)
    return resumed


class WorkerLost(Exception):
    """Recorded on a task whose worker stopped without finishing it."""


def _close_abandoned_tasks(now: datetime) -> None:
    """Mark RUNNING tasks of operations no worker holds any more as failed.

    django-tasks-db leaves the task of a killed worker RUNNING for ever; its operation has been
    handed to a new task, so the old row only misleads whoever reads the task list.
    """
    from django_tasks_db.models import DBTaskResult

    held = set(
        Operation.objects.active().filter(lease_expires_at__gte=now).values_list("pk", flat=True)
    )
    started_before = now - timedelta(seconds=setting("OPERATION_LEASE_SECONDS", 300))
    for task in DBTaskResult.objects.filter(
        status="RUNNING", task_path="portal.tasks.operation_run", started_at__lt=started_before
    ):
        args = task.args_kwargs.get("args") or [None]
        if args[0] not in held:
            task.set_failed(WorkerLost(f"worker {task.worker_ids[-1:]} stopped during this task"))


def _reconcile_due(now: datetime) -> bool:
    interval = timedelta(seconds=setting("RECONCILE_INTERVAL_SECONDS", 300))
    last = (
        Operation.objects.filter(kind=Operation.Kind.RECONCILE)
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    return last is None or last <= now - interval


def scheduler_tick(*, now: datetime | None = None) -> TickReport:
    """One pass of the periodic jobs: resume stale operations, reconcile, discharge."""
    now = now or timezone.now()
    report = TickReport(resumed=operations_resume_stale(now=now))
    if _reconcile_due(now):
        try:
            cloud_reconcile()
            report.reconcile_started = True
        except OperationRefused:
            pass  # a pass is already queued or running
    report.discharges_started = len(soldiers_discharge_due())
    return report
