"""The periodic jobs run by ``manage.py cloud_schedule``: resume, reconcile, discharge."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_noop

from portal.models import (
    Operation,
)
from portal.operations.engine import SYNCHRONOUS_KINDS, finish, send_task, setting
from portal.operations.errors import OperationRefused
from portal.services.reconcile import cloud_reconcile
from portal.services.teardown import soldiers_discharge_due


@dataclass
class TickReport:
    resumed: int = 0
    reconcile_started: bool = False
    discharges_started: int = 0


def operations_resume_stale(*, now: datetime | None = None) -> int:
    """Re-enqueue operations whose worker died (lease expired) or whose task was lost."""
    from django_tasks_db.models import DBTaskResult

    now = now or timezone.now()
    grace = timedelta(seconds=setting("OPERATION_STALE_GRACE_SECONDS"))
    candidates = (
        Operation.objects.active()
        .exclude(kind__in=SYNCHRONOUS_KINDS)
        .filter(
            Q(lease_expires_at__lt=now)
            | Q(lease_expires_at__isnull=True)
            & (Q(run_after__isnull=True) | Q(run_after__lt=now - grace))
            & Q(updated_at__lt=now - grace)
        )
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
            # Only if nobody claimed it meanwhile and its lease is still lapsed: a worker
            # that renewed its lease in time keeps its operation.
            taken = (
                Operation.objects.filter(
                    pk=op.pk, claim=op.claim, state__in=Operation.ACTIVE_STATES
                )
                .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
                .update(lease_expires_at=None, claim="", run_after=None, updated_at=now)
            )
            if not taken:
                continue
            send_task(op.pk)
        resumed += 1
    _close_abandoned_tasks(now)
    _end_abandoned_synchronous(now)
    return resumed


def _end_abandoned_synchronous(now: datetime) -> None:
    """End synchronous operations whose request died mid-call (they are never resumed).

    A password change runs inside the soldier's request; if that process stopped during the
    call, nobody will finish the row, and nobody may replay it: it ends as failed, with a
    message saying to do it again.
    """
    limit = now - timedelta(
        seconds=setting("OPERATION_STALE_GRACE_SECONDS") + 2 * setting("OPENSTACK_TIMEOUT")
    )
    for op in Operation.objects.active().filter(kind__in=SYNCHRONOUS_KINDS, updated_at__lt=limit):
        finish(
            op,
            Operation.State.FAILED,
            gettext_noop(
                "The portal stopped before the cloud answered; it is not known whether the "
                "password was changed. Try again."
            ),
        )


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
    started_before = now - timedelta(seconds=setting("OPERATION_LEASE_SECONDS"))
    for task in DBTaskResult.objects.filter(
        status="RUNNING", task_path="portal.tasks.operation_run", started_at__lt=started_before
    ):
        args = task.args_kwargs.get("args") or [None]
        if args[0] not in held:
            task.set_failed(WorkerLost(f"worker {task.worker_ids[-1:]} stopped during this task"))


def _reconcile_due(now: datetime) -> bool:
    interval = timedelta(seconds=setting("RECONCILE_INTERVAL_SECONDS"))
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
    report.discharges_started = len(soldiers_discharge_due(now=now))
    return report
