"""Bulk actions: one batch of operations, counted as they finish, failures retried together."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_noop

from portal import metrics
from portal.models import (
    Batch,
    Instance,
    Operation,
    Soldier,
    VmTemplate,
)
from portal.operations.engine import operation_retry
from portal.operations.errors import OperationRefused
from portal.services.instances import (
    MIRROR_FIELDS,
    instance_delete,
    instance_launch,
    instance_power,
    mark_terminated,
)

logger = logging.getLogger(__name__)


def batch_launch(
    *,
    soldiers: Iterable[Soldier],
    template: VmTemplate,
    requested_by: Any = None,
) -> tuple[Batch, list[str]]:
    """Queue one VM per soldier in one batch; returns the batch and per-soldier refusals."""
    soldiers = list(soldiers)
    refusals: list[str] = []
    with transaction.atomic():
        batch = Batch.objects.create(kind="launch", requested_by=requested_by)
        for soldier in soldiers:
            try:
                instance_launch(
                    soldier=soldier, template=template, requested_by=requested_by, batch=batch
                )
            except OperationRefused as exc:
                refusals.append(f"{soldier}: {exc}")
        seal_batch(batch)
    return batch, refusals


def seal_batch(batch: Batch) -> None:
    """Fix the batch's total once its operations are queued; a batch of none is finished."""
    batch.total = batch.operations.count()
    if batch.total == 0:
        batch.finished_at = timezone.now()
    batch.save(update_fields=["total", "finished_at"])


def batch_instances(
    *,
    instances: Iterable[Instance],
    action: str,
    requested_by: Any = None,
) -> tuple[Batch, list[str]]:
    """Queue one delete or power action per VM in one batch, with per-VM refusals."""
    refusals: list[str] = []
    with transaction.atomic():
        batch = Batch.objects.create(kind=action, requested_by=requested_by)
        for instance in instances:
            try:
                if action == "delete":
                    instance_delete(instance=instance, requested_by=requested_by, batch=batch)
                else:
                    instance_power(
                        instance=instance,
                        action=Instance.Action(action),
                        requested_by=requested_by,
                        batch=batch,
                    )
            except OperationRefused as exc:
                refusals.append(f"{instance}: {exc}")
        seal_batch(batch)
    return batch, refusals


def batch_retry_failed(*, batch: Batch, requested_by: Any = None) -> int:
    """Retry every failed operation of a batch; returns how many were restarted."""
    restarted = 0
    for op in batch.operations.filter(state=Operation.State.FAILED):
        try:
            operation_retry(operation=op, requested_by=requested_by)
        except OperationRefused:
            continue
        restarted += 1
    return restarted


@dataclass
class BulkResult:
    """What one console action started: its batch (several rows), operations and refusals."""

    batch: Batch | None = None
    operations: list[Operation] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    # The form had been submitted before: ``batch`` is what that first submit started.
    replayed: bool = False


def batch_apply[T](
    *,
    kind: str,
    targets: Iterable[T],
    start: Callable[[T, Batch | None], Operation],
    requested_by: Any = None,
    launch_key: str | None = None,
) -> BulkResult:
    """Start one operation per target with ``start``; several targets share one batch.

    One transaction: the operations are queued when it commits, so none can finish (and count
    itself into the batch) before the batch knows its total. A refused row is skipped and said.
    With ``launch_key`` (a form's idempotency key) there is always a batch, and the key's unique
    index makes a second submit of that form wait for the first and then find its batch.
    """
    targets = list(targets)
    result = BulkResult()
    with transaction.atomic():
        if len(targets) > 1 or launch_key:
            result.batch = Batch.objects.create(
                kind=kind, requested_by=requested_by, launch_key=launch_key
            )
        for target in targets:
            try:
                with transaction.atomic():
                    result.operations.append(start(target, result.batch))
            except OperationRefused as exc:
                result.refusals.append(f"{target}: {exc}")
        if result.batch is not None:
            if result.operations:
                result.batch.total = len(result.operations)
                result.batch.save(update_fields=["total"])
            elif launch_key:
                # Every row was refused; the batch stays (finished, empty) to hold the key.
                result.batch.finished_at = timezone.now()
                result.batch.save(update_fields=["finished_at"])
            else:
                result.batch.delete()  # every row was refused: nothing to follow
                result.batch = None
    return result


def attach_to_batch(op: Operation, batch: Batch | None) -> Operation:
    """Count an operation started by a service without a batch parameter into ``batch``."""
    if batch is not None:
        Operation.objects.filter(pk=op.pk).update(batch=batch)
        op.batch = batch
    return op


def batch_launch_many(
    *,
    soldiers: Sequence[Soldier],
    template: VmTemplate,
    count: int = 1,
    host: str = "",
    requested_by: Any = None,
    second_vm: bool = False,
    launch_key: str | None = None,
) -> BulkResult:
    """Queue ``count`` VMs from ``template`` for each soldier, optionally on one compute host.

    A soldier who has a live VM from ``template`` is refused (so is a ``count`` above 1) unless
    ``second_vm``. ``launch_key`` makes the launch once-only: submitted again (a double click, a
    browser re-submit, two operators with one form), it starts nothing and returns the batch
    the first submit started, with ``replayed`` set.
    """
    if count < 1:
        raise OperationRefused(gettext_noop("Ask for at least one VM."))
    if count > 1 and not second_vm:
        raise OperationRefused(
            gettext_noop('More than one VM per soldier needs the "second VM" box ticked.')
        )
    if launch_key:
        first = Batch.objects.filter(launch_key=launch_key).first()
        if first is not None:
            return BulkResult(batch=first, replayed=True)
    rows = [(soldier, index) for soldier in soldiers for index in range(1, count + 1)]

    def start(row: tuple[Soldier, int], batch: Batch | None) -> Operation:
        soldier, index = row
        name = f"{soldier.keystone_user_name}-{template.name}"
        instance = instance_launch(
            soldier=soldier,
            template=template,
            requested_by=requested_by,
            name=f"{name}-{index}" if count > 1 else name,
            host=host,
            batch=batch,
            second_vm=second_vm,
        )
        assert instance.pending_operation is not None
        return instance.pending_operation

    try:
        return batch_apply(
            kind=Operation.Kind.LAUNCH,
            targets=rows,
            start=start,
            requested_by=requested_by,
            launch_key=launch_key or None,
        )
    except IntegrityError:
        # The same form was submitted at the same time: its key's index made this one wait,
        # and the first one's batch is the answer.
        first = Batch.objects.filter(launch_key=launch_key).first() if launch_key else None
        if first is None:
            raise
        return BulkResult(batch=first, replayed=True)


def batch_cancel_pending(*, batch: Batch, requested_by: Any = None) -> int:
    """Withdraw the batch's operations no worker has started; they count as done.

    A worker claims an operation with a conditional UPDATE on queued rows; cancelling is one
    too, under the rows' lock, so each row is either claimed or cancelled, never both. The
    engine never claims a cancelled operation, so its queued task ends as "skipped".
    """
    now = timezone.now()
    with transaction.atomic():
        pending = list(
            batch.operations.select_for_update().filter(
                state=Operation.State.QUEUED, started_at__isnull=True
            )
        )
        cancelled = Operation.objects.filter(
            pk__in=[op.pk for op in pending],
            state=Operation.State.QUEUED,
            started_at__isnull=True,
        ).update(
            state=Operation.State.CANCELLED,
            finished_at=now,
            run_after=None,
            lease_expires_at=None,
            message=gettext_noop("Cancelled by staff before it started."),
            message_params={},
        )
        for op in pending:
            if op.instance_id is None:
                continue
            released = Instance.objects.filter(pk=op.instance_id, pending_operation=op)
            if op.kind == Operation.Kind.LAUNCH:
                # Never reached the cloud: the VM will not exist, so its mirror says so.
                for instance in released:
                    mark_terminated(instance, now)
                    instance.pending_action = ""
                    instance.pending_operation = None
                    instance.save(
                        update_fields=[
                            *MIRROR_FIELDS,
                            "pending_action",
                            "pending_operation",
                            "updated_at",
                        ]
                    )
            else:
                released.update(pending_action="", pending_operation=None)
        if cancelled:
            # The rows are locked: every one of them was cancelled.
            for kind in (op.kind for op in pending):
                metrics.record_operation_finished(kind, Operation.State.CANCELLED)
            Batch.objects.filter(pk=batch.pk).update(cancelled=F("cancelled") + cancelled)
            Batch.objects.filter(
                pk=batch.pk,
                finished_at__isnull=True,
                total__lte=F("succeeded") + F("failed") + F("cancelled"),
            ).update(finished_at=now)
    logger.info("batch %s: %s rows cancelled by %s", batch.pk, cancelled, requested_by)
    return cancelled


def operations_retry(
    *, operations: Iterable[Operation], requested_by: Any = None
) -> tuple[int, list[str]]:
    """Retry failed operations from their failed step; returns (restarted, refusals)."""
    restarted, refusals = 0, []
    for op in operations:
        try:
            with transaction.atomic():
                operation_retry(operation=op, requested_by=requested_by)
        except OperationRefused as exc:
            refusals.append(f"{op}: {exc}")
            continue
        restarted += 1
    return restarted, refusals
