"""Teardown: discharge (delete a soldier's VMs, disable their user, tear down the portal-owned
network), disable (the same without the network), and the preview of what either will delete."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_noop

from portal.models import (
    Batch,
    FloatingIP,
    Instance,
    Operation,
    Project,
    ProjectNetwork,
    Soldier,
    seoul_today,
)
from portal.openstack import OpenStackClient, errors
from portal.openstack.types import ServerStatus
from portal.operations.engine import (
    create_operation,
    enqueue,
    fenced,
    operation_retry,
    poll_seconds,
    save_fields,
    setting,
    start_operation,
)
from portal.operations.errors import OperationRefused, StepFailed
from portal.operations.registry import Wait
from portal.services.batches import BulkResult, attach_to_batch, batch_apply
from portal.services.instances import instance_delete
from portal.services.sessions import end_portal_sessions

logger = logging.getLogger(__name__)


def soldier_discharge_postpone(
    *, soldier: Soldier, until: date, requested_by: Any = None
) -> Soldier:
    """Staff keep a soldier's cloud access until ``until`` (no cloud call)."""
    if soldier.state == Soldier.State.DISABLED:
        raise OperationRefused(gettext_noop("This soldier is already disabled."))
    if until < seoul_today():
        raise OperationRefused(gettext_noop("The new date must not be in the past."))
    soldier.discharge_postponed_until = until
    soldier.save(update_fields=["discharge_postponed_until", "updated_at"])
    logger.info("discharge of soldier %s postponed to %s by %s", soldier.pk, until, requested_by)
    return soldier


def soldier_discharge(*, soldier: Soldier, requested_by: Any = None) -> Operation:
    """Queue a discharge: disable the user, delete every VM, tear down the owned network."""
    with transaction.atomic():
        op = create_operation(
            kind=Operation.Kind.DISCHARGE,
            lock_key=f"soldier:{soldier.pk}",
            soldier=soldier,
            requested_by=requested_by,
        )
        enqueue(op)
    return op


def soldiers_discharge_due(
    *, today: date | None = None, now: datetime | None = None
) -> list[Operation]:
    """Start a discharge for every soldier whose (possibly postponed) date has passed.

    A discharge that failed stays one failed operation for staff to see; it is retried after
    ``DISCHARGE_RETRY_BASE_SECONDS``, doubling at each failure up to the maximum, not started
    afresh at every tick.
    """
    today = today or seoul_today()
    now = now or timezone.now()
    due = Soldier.objects.exclude(state=Soldier.State.DISABLED).filter(
        Q(discharge_postponed_until__isnull=True, discharge_on__lt=today)
        | Q(discharge_postponed_until__lt=today, discharge_on__lt=today)
    )
    started = []
    for soldier in due:
        last = (
            Operation.objects.filter(soldier=soldier, kind=Operation.Kind.DISCHARGE)
            .order_by("-created_at")
            .first()
        )
        try:
            if last is not None and last.state == Operation.State.FAILED:
                if now < _next_discharge_try(last):
                    continue
                last.progress["automatic_retries"] = (
                    int(last.progress.get("automatic_retries", 0)) + 1
                )
                Operation.objects.filter(pk=last.pk).update(progress=last.progress)
                started.append(operation_retry(operation=last))
            else:
                started.append(soldier_discharge(soldier=soldier))
        except OperationRefused:
            continue  # something is already running for this soldier; next tick tries again
    return started


def _next_discharge_try(failed: Operation) -> datetime:
    """When the scheduler may retry a failed discharge: backoff doubling per failure."""
    retries = int(failed.progress.get("automatic_retries", 0))
    delay = min(
        setting("DISCHARGE_RETRY_BASE_SECONDS") * 2**retries,
        setting("DISCHARGE_RETRY_MAX_SECONDS"),
    )
    return (failed.finished_at or timezone.now()) + timedelta(seconds=delay)


def _start_vm_deletes(op: Operation) -> bool:
    """Start the leak-proof delete of every VM not already deleted or deleting; True if one of
    them is busy with another action (its delete is started at a later look)."""
    assert op.soldier is not None
    busy = False
    # Deletes that ended before (a retried discharge) are not waited on again: a VM whose
    # delete failed gets a new one below.
    children: list[int] = list(
        Operation.objects.active()
        .filter(pk__in=op.progress.get("children", []))
        .values_list("pk", flat=True)
    )
    for instance in op.soldier.instances.exclude(status=ServerStatus.DELETED):
        if instance.pending_action == Instance.Action.DELETE:
            if instance.pending_operation_id and instance.pending_operation_id not in children:
                children.append(instance.pending_operation_id)
            continue
        try:
            with fenced(op):
                child = instance_delete(instance=instance, requested_by=op.requested_by)
        except OperationRefused:
            busy = True  # another action is running on it; try again after it finishes
            continue
        children.append(child.pk)
    op.progress["children"] = children
    save_fields(op, "progress")
    return busy


def step_discharge_delete_vms(op: Operation, client: OpenStackClient) -> Wait | None:
    """Start the leak-proof delete of every VM not already deleted or deleting."""
    return Wait(poll_seconds()) if _start_vm_deletes(op) else None


def step_discharge_wait_vms(op: Operation, client: OpenStackClient) -> Wait | None:
    """Wait until every VM is deleted; fail if one of the deletes failed.

    A VM that appeared after the deletes started (a launch already past its last check) gets
    its own delete here rather than being waited on until the step times out.
    """
    assert op.soldier is not None
    failed = Operation.objects.filter(
        pk__in=op.progress.get("children", []), state=Operation.State.FAILED
    ).first()
    if failed is not None:
        raise StepFailed(
            gettext_noop(
                "Deleting VM %(name)s failed (%(reason)s); retry it, then retry the discharge."
            ),
            name=failed.instance.name if failed.instance else "-",
            reason=failed.message_text,
        )
    _start_vm_deletes(op)
    if op.soldier.instances.exclude(status=ServerStatus.DELETED).exists():
        return Wait(poll_seconds())
    return None


def step_disable_user(op: Operation, client: OpenStackClient) -> None:
    """Shut the account: disable the Keystone user and end the soldier's portal sessions.

    First of a discharge or a disable, so a VM that cannot be deleted never keeps it open; the
    VM deletes do not need the user (the portal acts as its own user).
    """
    assert op.soldier is not None
    if op.soldier.keystone_user_id:
        with contextlib.suppress(errors.NotFound):
            client.disable_user(op.soldier.keystone_user_id)
    with fenced(op):
        end_portal_sessions(op.soldier)
    op.progress["account_shut"] = True
    save_fields(op, "progress")


def _teardown_network(op: Operation) -> ProjectNetwork | None:
    """The portal-owned network of the soldier's project still to remove, if any."""
    assert op.soldier is not None
    return ProjectNetwork.objects.filter(
        project__soldier=op.soldier, removed_at__isnull=True
    ).first()


def step_remove_router_interface(op: Operation, client: OpenStackClient) -> None:
    """Detach the subnet from the router (first: a router with interfaces cannot go)."""
    own = _teardown_network(op)
    if own and own.router_id and own.subnet_id and own.interface_attached:
        with contextlib.suppress(errors.NotFound):
            client.remove_router_interface(own.router_id, own.subnet_id)
        own.interface_attached = False
        with fenced(op):
            own.save(update_fields=["interface_attached"])


def _delete_owned(op: Operation, attribute: str, delete: Callable[[str], None]) -> None:
    """Delete one recorded portal-owned resource; already gone counts as done."""
    own = _teardown_network(op)
    if own is None or not getattr(own, attribute):
        return
    with contextlib.suppress(errors.NotFound):
        delete(getattr(own, attribute))
    setattr(own, attribute, "")
    with fenced(op):
        own.save(update_fields=[attribute])


def step_delete_router(op: Operation, client: OpenStackClient) -> None:
    """Delete the portal-owned router."""
    _delete_owned(op, "router_id", client.delete_router)


def step_delete_subnet(op: Operation, client: OpenStackClient) -> None:
    """Delete the portal-owned subnet."""
    _delete_owned(op, "subnet_id", client.delete_subnet)


def step_delete_network(op: Operation, client: OpenStackClient) -> None:
    """Delete the portal-owned network and forget it."""
    own = _teardown_network(op)
    _delete_owned(op, "network_id", client.delete_network)
    if own is not None:
        with fenced(op):
            ProjectNetwork.objects.filter(pk=own.pk).update(removed_at=timezone.now())
            Project.objects.filter(pk=own.project_id).update(network_id="")


def step_mark_disabled(op: Operation, client: OpenStackClient) -> None:
    """Record the soldier as disabled, once their account is surely shut.

    An operation that was under way when the steps were reordered (the account used to be
    shut after the VM deletes) resumes past the first step: it shuts the account here.
    """
    assert op.soldier is not None
    if not op.progress.get("account_shut"):
        step_disable_user(op, client)
    op.soldier.state = Soldier.State.DISABLED
    with fenced(op):
        op.soldier.save(update_fields=["state", "updated_at"])


# A retried discharge starts again at disabling the user, then the VM deletes: the failed delete
# it stopped on is retried (or the VM was deleted by hand meanwhile) instead of being waited on.


# --- disable a soldier, discharge several, and what a teardown will do ---------------------------


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


def soldier_disable(
    *, soldier: Soldier, requested_by: Any = None, batch: Batch | None = None
) -> Operation:
    """Queue: disable the Keystone user (and end portal sessions), then delete the soldier's VMs
    (and their floating IPs).

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
