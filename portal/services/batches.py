"""Bulk actions: one batch of operations, counted as they finish, failures retried together."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from portal.models import (
    Batch,
    Instance,
    Operation,
    Soldier,
    VmTemplate,
)
from portal.operations.engine import operation_retry
from portal.operations.errors import OperationRefused
from portal.services.instances import instance_delete, instance_launch, instance_power


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
