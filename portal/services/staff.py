"""What staff do from the console: one operation per selected row, a batch when there are several.

The per-row work is the existing use-cases (onboard, launch, power, delete, discharge, retry);
this module adds the ones only staff need: sync one VM, disable a soldier, launch several VMs
on a chosen host, withdraw a batch's rows that have not started, and the preview of what a
destructive action will delete, release and keep.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_noop

from portal import cloud
from portal.models import (
    Batch,
    Drift,
    FloatingIP,
    Instance,
    Operation,
    ProjectNetwork,
    Soldier,
    VmTemplate,
)
from portal.openstack import Flavor, Image, OpenStackClient, errors
from portal.openstack.types import ServerStatus
from portal.operations.engine import fenced, operation_retry, start_operation
from portal.operations.errors import OperationRefused, StepFailed
from portal.operations.registry import Wait
from portal.services.discharge import (
    soldier_discharge,
    step_discharge_wait_vms,
)
from portal.services.instances import (
    MIRROR_FIELDS,
    instance_launch,
    mark_terminated,
    mirror_server,
)
from portal.services.onboarding import soldier_create

logger = logging.getLogger(__name__)


@dataclass
class BulkResult:
    """What one console action started: its batch (several rows), operations and refusals."""

    batch: Batch | None = None
    operations: list[Operation] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)


def batch_apply[T](
    *,
    kind: str,
    targets: Iterable[T],
    start: Callable[[T, Batch | None], Operation],
    requested_by: Any = None,
) -> BulkResult:
    """Start one operation per target with ``start``; several targets share one batch.

    One transaction: the operations are queued when it commits, so none can finish (and count
    itself into the batch) before the batch knows its total. A refused row is skipped and said.
    """
    targets = list(targets)
    result = BulkResult()
    with transaction.atomic():
        if len(targets) > 1:
            result.batch = Batch.objects.create(kind=kind, requested_by=requested_by)
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


def soldiers_discharge_now(*, soldiers: Sequence[Soldier], requested_by: Any = None) -> BulkResult:
    """Discharge these soldiers today (delete VMs, disable the user, tear the network down)."""

    def start(soldier: Soldier, batch: Batch | None) -> Operation:
        if soldier.state == Soldier.State.DISABLED:
            raise OperationRefused(gettext_noop("This soldier is already disabled."))
        # Queued on commit of batch_apply's transaction, so the batch is set before it runs.
        return attach_to_batch(soldier_discharge(soldier=soldier, requested_by=requested_by), batch)

    return batch_apply(
        kind=Operation.Kind.DISCHARGE, targets=soldiers, start=start, requested_by=requested_by
    )


def soldier_register(
    *,
    service_number: str,
    name: str,
    keystone_user_name: str,
    unit: str = "",
    enlisted_on: Any = None,
    discharge_on: Any = None,
) -> Soldier:
    """A soldier added by hand: a Django user of the cloud name (no password) and the record."""
    with transaction.atomic():
        user = get_user_model().objects.create_user(username=keystone_user_name)
        return soldier_create(
            user=user,
            service_number=service_number,
            name=name,
            unit=unit,
            enlisted_on=enlisted_on,
            discharge_on=discharge_on,
            keystone_user_name=keystone_user_name,
        )


def cloud_boot_choices() -> tuple[list[Image], list[Flavor]]:
    """The cloud's active images and its flavors, for making a template (two listings)."""
    client = cloud.get_client()
    images = sorted(client.list_images(), key=lambda i: i.name)
    flavors = sorted(client.list_flavors(), key=lambda f: (f.vcpus, f.ram_mib, f.disk_gib))
    return images, flavors


# --- launch several VMs ---------------------------------------------------------------------


def batch_launch_many(
    *,
    soldiers: Sequence[Soldier],
    template: VmTemplate,
    count: int = 1,
    host: str = "",
    requested_by: Any = None,
) -> BulkResult:
    """Queue ``count`` VMs from ``template`` for each soldier, optionally on one compute host."""
    if count < 1:
        raise OperationRefused(gettext_noop("Ask for at least one VM."))
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
        )
        assert instance.pending_operation is not None
        return instance.pending_operation

    return batch_apply(
        kind=Operation.Kind.LAUNCH, targets=rows, start=start, requested_by=requested_by
    )


# --- cancel the rows of a batch that have not started --------------------------------------


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
            Batch.objects.filter(pk=batch.pk).update(cancelled=F("cancelled") + cancelled)
            Batch.objects.filter(
                pk=batch.pk,
                finished_at__isnull=True,
                total__lte=F("succeeded") + F("failed") + F("cancelled"),
            ).update(finished_at=now)
    logger.info("batch %s: %s rows cancelled by %s", batch.pk, cancelled, requested_by)
    return cancelled


# --- sync one VM -----------------------------------------------------------------------------


def instance_sync(
    *, instance: Instance, requested_by: Any = None, batch: Batch | None = None
) -> Operation:
    """Queue a fresh read of one VM from the cloud (what the periodic reconcile does for all).

    It takes the VM's operation lock but no pending action: reading changes nothing in the
    cloud, and another action on the VM refreshes it anyway.
    """
    if instance.status == ServerStatus.DELETED:
        raise OperationRefused(gettext_noop("This VM is deleted; there is nothing to sync."))
    if not instance.server_id:
        raise OperationRefused(gettext_noop("This VM has no server in the cloud yet."))
    return start_operation(
        kind=Operation.Kind.SYNC,
        lock_key=f"instance:{instance.pk}",
        soldier=instance.owner,
        instance=instance,
        requested_by=requested_by,
        batch=batch,
    )


def step_sync_instance(op: Operation, client: OpenStackClient) -> None:
    """Mirror the server and its floating IP (from Neutron); a vanished server is drift."""
    assert op.instance_id is not None
    instance = Instance.objects.select_related("project").get(pk=op.instance_id)
    assert instance.server_id
    try:
        server = client.get_server(instance.server_id)
    except errors.NotFound:
        server = None
    floating: str | None = None
    if server is not None and instance.port_id:
        bound = client.list_floating_ips(port_id=instance.port_id)
        floating = bound[0].floating_ip_address if bound else ""
    now = timezone.now()
    with fenced(op):
        if server is None or server.status is ServerStatus.DELETED:
            mark_terminated(instance, now)
            instance.deleted_outside_portal = True
            Drift.objects.update_or_create(
                kind=Drift.Kind.DELETED_OUTSIDE,
                resource_id=instance.server_id,
                defaults={
                    "project_keystone_id": instance.project.keystone_id,
                    "detail": instance.name[:255],
                    "last_seen_at": now,
                    "resolved_at": None,
                },
            )
        else:
            mirror_server(instance, server, now, floating_ip=floating)
        instance.save(update_fields=[*MIRROR_FIELDS, "updated_at"])


# --- disable a soldier -----------------------------------------------------------------------


def soldier_disable(
    *, soldier: Soldier, requested_by: Any = None, batch: Batch | None = None
) -> Operation:
    """Queue: delete the soldier's VMs (and their floating IPs), disable the Keystone user.

    Unlike a discharge, the project and its network stay, so nothing has to be rebuilt if the
    soldier comes back; their tokens are revoked by Keystone at once.
    """
    if soldier.state == Soldier.State.DISABLED:
        raise OperationRefused(gettext_noop("This soldier is already disabled."))
    return start_operation(
        kind=Operation.Kind.DISABLE,
        lock_key=f"soldier:{soldier.pk}",
        soldier=soldier,
        requested_by=requested_by,
        batch=batch,
    )


def step_disable_wait_vms(op: Operation, client: OpenStackClient) -> Wait | None:
    """Wait until every VM is deleted (the discharge's wait, with this operation's words)."""
    try:
        return step_discharge_wait_vms(op, client)
    except StepFailed as exc:
        raise StepFailed(
            gettext_noop(
                "Deleting VM %(name)s failed (%(reason)s); retry it, then retry disabling the "
                "soldier."
            ),
            **exc.params,
        ) from exc


# --- what a destructive action will do -------------------------------------------------------


@dataclass
class TeardownPreview:
    """Shown before anything is deleted: servers, floating IPs released, floating IPs kept."""

    servers: list[Instance] = field(default_factory=list)
    released: list[FloatingIP] = field(default_factory=list)
    # Bound to the portal's VMs but not created by the portal: never released by it.
    kept: list[FloatingIP] = field(default_factory=list)
    networks: list[ProjectNetwork] = field(default_factory=list)


def teardown_preview(
    *,
    instances: Iterable[Instance] = (),
    soldiers: Iterable[Soldier] = (),
    networks: bool = False,
) -> TeardownPreview:
    """What deleting these VMs (or every VM of these soldiers) deletes, releases and keeps.

    Ownership is the portal's own record (``created_by_portal``), the same test the delete
    step applies; ``networks`` adds the portal-owned networks a discharge tears down.
    """
    instance_ids = {i.pk for i in instances}
    soldier_ids = {s.pk for s in soldiers}
    live = Instance.objects.exclude(status=ServerStatus.DELETED).select_related("owner")
    servers = list(live.filter(pk__in=instance_ids)) + list(
        live.filter(owner_id__in=soldier_ids).exclude(pk__in=instance_ids)
    )
    fips = list(
        FloatingIP.objects.filter(
            instance__in=[i.pk for i in servers], released_at__isnull=True
        ).select_related("instance")
    )
    preview = TeardownPreview(
        servers=servers,
        released=[f for f in fips if f.created_by_portal],
        kept=[f for f in fips if not f.created_by_portal],
    )
    if networks:
        preview.networks = list(
            ProjectNetwork.objects.filter(
                project__soldier_id__in=soldier_ids, removed_at__isnull=True
            ).select_related("project")
        )
    return preview


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
