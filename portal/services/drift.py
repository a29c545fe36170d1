"""Drift: Keystone users without a soldier (found by reconcile) and one fix per kind of drift.

Each fix is a durable operation keyed on its drift row, so a double click or two operators
start it once. What a fix deletes is checked again against the cloud and against the portal's
own ownership records when the step runs: a floating IP is released only when the portal's
database says the portal created it; a server the portal did not create is deleted only
through a confirmation page that says so.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext_noop

from portal.models import Drift, FloatingIP, Instance, Operation, Project, Soldier
from portal.openstack import OpenStackClient, errors
from portal.openstack.types import ServerStatus
from portal.operations.engine import fenced, poll_seconds, save_fields, start_operation
from portal.operations.errors import OperationRefused, StepFailed
from portal.operations.registry import Wait
from portal.services.instances import (
    MIRROR_FIELDS,
    mark_terminated,
    mirror_server,
    remember_floating_ip,
)
from portal.services.onboarding import domain_id, project_name

# A server the portal did not create: outside every soldier project, or inside one (made with
# the soldier's own credentials, say); either is adopted or deleted only when staff say so.
SERVER_KINDS = (Drift.Kind.UNOWNED_SERVER, Drift.Kind.FOREIGN_SERVER)

# The fixes each kind of drift offers (besides "ignore"), in the order the page shows them.
FIXES: dict[str, tuple[str, ...]] = {
    Drift.Kind.UNOWNED_SERVER: ("adopt", "delete_server"),
    Drift.Kind.FOREIGN_SERVER: ("adopt", "delete_server"),
    Drift.Kind.ORPHAN_FLOATING_IP: ("release_ip",),
    Drift.Kind.DELETED_OUTSIDE: ("mark_terminated",),
    Drift.Kind.USER_WITHOUT_SOLDIER: ("link_user", "disable_user"),
}


def drift_record(
    *,
    kind: Drift.Kind,
    found: dict[str, tuple[str, str]],
    now: datetime,
    resolve_missing: bool = True,
) -> None:
    """Upsert one row per drifting resource; mark resolved what no longer drifts.

    ``found`` maps a resource id to (its project id, a detail for staff); reconcile calls this
    for each kind of drift it looks for.
    """
    existing = {d.resource_id: d for d in Drift.objects.filter(kind=kind)}
    fresh: list[Drift] = []
    seen: list[Drift] = []
    for resource_id, (project_id, detail) in found.items():
        row = existing.get(resource_id)
        if row is None:
            fresh.append(
                Drift(
                    kind=kind,
                    resource_id=resource_id,
                    project_keystone_id=project_id,
                    detail=detail[:255],
                    first_seen_at=now,
                    last_seen_at=now,
                )
            )
        else:
            row.last_seen_at = now
            row.resolved_at = None
            seen.append(row)
    Drift.objects.bulk_create(fresh, batch_size=500, ignore_conflicts=True)
    Drift.objects.bulk_update(seen, ["last_seen_at", "resolved_at"], batch_size=500)
    if resolve_missing:
        Drift.objects.filter(kind=kind, resolved_at__isnull=True).exclude(
            resource_id__in=list(found)
        ).update(resolved_at=now)


def record_user_drift(*, client: OpenStackClient, now: datetime) -> int:
    """Record the Keystone users of the soldiers' domain that belong to no soldier.

    Two listings, whatever the number of users: the users, and every role assignment. The
    cloud's own users (the portal's, services', administrators') hold roles on projects that
    are not soldier projects and are left out; so is anyone a soldier row names.
    """
    users = client.list_users(domain_id=domain_id())
    assignments = client.list_role_assignments()
    soldier_projects = set(
        Project.objects.exclude(keystone_id="").values_list("keystone_id", flat=True)
    )
    prefix = settings.OPENSTACK_PROJECT_PREFIX

    def soldier_scope(project_id: str | None, name: str | None) -> bool:
        return bool(project_id) and (
            project_id in soldier_projects or (name or "").startswith(prefix)
        )

    elsewhere = {
        a.user_id
        for a in assignments
        if a.user_id and not soldier_scope(a.project_id, a.project_name)
    }
    known_ids = set(
        Soldier.objects.exclude(keystone_user_id="").values_list("keystone_user_id", flat=True)
    )
    known_names = set(Soldier.objects.values_list("keystone_user_name", flat=True))
    me = client.token().user_id
    found = {
        user.id: (
            user.default_project_id or "",
            user.name if user.enabled else f"{user.name} (disabled)",
        )
        for user in users
        if user.id not in known_ids
        and user.name not in known_names
        and user.id != me
        and user.id not in elsewhere
    }
    drift_record(kind=Drift.Kind.USER_WITHOUT_SOLDIER, found=found, now=now)
    return len(found)


def drift_ignore(*, drift: Drift, requested_by: Any = None) -> Drift:
    """Staff looked and decided to leave it (no cloud call); it is listed apart from now on."""
    if drift.resolved_at is not None:
        raise OperationRefused(gettext_noop("This drift is already resolved."))
    drift.ignored_at = timezone.now()
    drift.save(update_fields=["ignored_at"])
    return drift


def _start(
    drift: Drift,
    *,
    kind: Operation.Kind,
    allowed: Drift.Kind | tuple[Drift.Kind, ...],
    requested_by: Any,
    soldier: Soldier | None = None,
    params: dict[str, Any] | None = None,
) -> Operation:
    if drift.kind not in (allowed if isinstance(allowed, tuple) else (allowed,)):
        raise OperationRefused(
            gettext_noop("This fix does not apply to drift of kind %(kind)s."),
            kind=drift.get_kind_display(),
        )
    if drift.resolved_at is not None:
        raise OperationRefused(gettext_noop("This drift is already resolved."))
    return start_operation(
        kind=kind,
        lock_key=f"drift:{drift.pk}",
        soldier=soldier,
        requested_by=requested_by,
        params={"drift": drift.pk, **(params or {})},
    )


def _drift(op: Operation) -> Drift:
    return Drift.objects.get(pk=op.params["drift"])


def _resolve(drift: Drift) -> None:
    Drift.objects.filter(pk=drift.pk).update(resolved_at=timezone.now())


# --- a server the portal does not know -----------------------------------------------------


def drift_adopt_server(*, drift: Drift, soldier: Soldier, requested_by: Any = None) -> Operation:
    """Queue: mirror an unknown server as this soldier's VM (it stays in its own project)."""
    if soldier.state == Soldier.State.DISABLED:
        raise OperationRefused(gettext_noop("A disabled (discharged) soldier cannot get a VM."))
    return _start(
        drift,
        kind=Operation.Kind.DRIFT_ADOPT,
        allowed=SERVER_KINDS,
        requested_by=requested_by,
        soldier=soldier,
    )


def step_adopt(op: Operation, client: OpenStackClient) -> None:
    """Read the server and its floating IPs, and record them as the soldier's."""
    drift = _drift(op)
    assert op.soldier is not None
    try:
        server = client.get_server(drift.resource_id)
    except errors.NotFound as exc:
        raise StepFailed(gettext_noop("The server no longer exists; nothing to adopt.")) from exc
    ports = client.list_ports(device_id=server.id)
    fips = [fip for port in ports for fip in client.list_floating_ips(port_id=port.id)]
    now = timezone.now()
    with fenced(op):
        if not Instance.objects.filter(server_id=server.id).exists():
            project, _ = Project.objects.get_or_create(
                soldier=op.soldier, defaults={"name": project_name(op.soldier)}
            )
            instance = Instance(
                server_id=server.id, project=project, owner=op.soldier, name=server.name
            )
            if ports:
                instance.port_id = ports[0].id
                instance.network_id = ports[0].network_id
            mirror_server(
                instance, server, now, floating_ip=fips[0].floating_ip_address if fips else ""
            )
            instance.save()
            for fip in fips:
                # Someone else made them: the portal mirrors them and never releases them.
                remember_floating_ip(fip, instance=instance, created_by_portal=False)
        _resolve(drift)


def drift_delete_server(*, drift: Drift, requested_by: Any = None) -> Operation:
    """Queue the deletion of a server the portal did not create (after a confirmation page)."""
    return _start(
        drift,
        kind=Operation.Kind.DRIFT_DELETE_SERVER,
        allowed=SERVER_KINDS,
        requested_by=requested_by,
    )


def step_delete_unowned(op: Operation, client: OpenStackClient) -> None:
    """Delete the server; its floating IPs stay allocated (the portal does not own them)."""
    drift = _drift(op)
    if Instance.objects.filter(server_id=drift.resource_id).exists():
        raise StepFailed(
            gettext_noop("The portal now knows this server as a VM; delete it from its page.")
        )
    with contextlib.suppress(errors.NotFound):
        client.delete_server(drift.resource_id)


def step_wait_unowned_gone(op: Operation, client: OpenStackClient) -> Wait | None:
    """Done once the server answers 404 (or DELETED)."""
    drift = _drift(op)
    try:
        server = client.get_server(drift.resource_id)
    except errors.NotFound:
        server = None
    if server is not None and server.status is not ServerStatus.DELETED:
        return Wait(poll_seconds())
    with fenced(op):
        _resolve(drift)
    return None


# --- a portal floating IP without a server -------------------------------------------------


def _owned_floating_ip(drift: Drift) -> FloatingIP | None:
    return FloatingIP.objects.filter(
        neutron_id=drift.resource_id, created_by_portal=True, released_at__isnull=True
    ).first()


def drift_release_floating_ip(*, drift: Drift, requested_by: Any = None) -> Operation:
    """Queue the release of a floating IP the portal created and no server uses."""
    if drift.kind == Drift.Kind.ORPHAN_FLOATING_IP and _owned_floating_ip(drift) is None:
        raise OperationRefused(
            gettext_noop("The portal did not create this floating IP, so it will not release it.")
        )
    return _start(
        drift,
        kind=Operation.Kind.DRIFT_RELEASE_IP,
        allowed=Drift.Kind.ORPHAN_FLOATING_IP,
        requested_by=requested_by,
    )


def step_release_ip(op: Operation, client: OpenStackClient) -> None:
    """Release it, unless it was bound to a port meanwhile or is not the portal's."""
    drift = _drift(op)
    record = _owned_floating_ip(drift)
    if record is None:
        raise StepFailed(
            gettext_noop("The portal did not create this floating IP, so it will not release it.")
        )
    try:
        fip = client.get_floating_ip(record.neutron_id)
    except errors.NotFound:
        fip = None
    if fip is not None and fip.port_id:
        raise StepFailed(
            gettext_noop("The floating IP %(address)s is attached to a port again; kept."),
            address=record.address,
        )
    if fip is not None:
        with contextlib.suppress(errors.NotFound):
            client.delete_floating_ip(record.neutron_id)
    with fenced(op):
        FloatingIP.objects.filter(pk=record.pk).update(released_at=timezone.now())
        _resolve(drift)


# --- a mirror whose server is gone ---------------------------------------------------------


def drift_mark_terminated(*, drift: Drift, requested_by: Any = None) -> Operation:
    """Queue: record the VM as deleted and release the floating IPs the portal made for it."""
    instance = Instance.objects.filter(server_id=drift.resource_id).first()
    return _start(
        drift,
        kind=Operation.Kind.DRIFT_MARK_TERMINATED,
        allowed=Drift.Kind.DELETED_OUTSIDE,
        requested_by=requested_by,
        soldier=instance.owner if instance else None,
    )


def step_mark_terminated(op: Operation, client: OpenStackClient) -> None:
    """Check the server is really gone, release the portal's floating IPs, mark the mirror."""
    drift = _drift(op)
    instance = Instance.objects.filter(server_id=drift.resource_id).first()
    try:
        server = client.get_server(drift.resource_id)
    except errors.NotFound:
        server = None
    if server is not None and server.status is not ServerStatus.DELETED:
        raise StepFailed(gettext_noop("The server exists in the cloud again; sync the VM instead."))
    owned = (
        list(instance.floating_ips.filter(created_by_portal=True, released_at__isnull=True))
        if instance
        else []
    )
    for record in owned:
        with contextlib.suppress(errors.NotFound):
            client.delete_floating_ip(record.neutron_id)
        with fenced(op):
            FloatingIP.objects.filter(pk=record.pk).update(released_at=timezone.now())
    with fenced(op):
        if instance is not None:
            mark_terminated(instance, timezone.now())
            instance.deleted_outside_portal = False  # acknowledged: now plainly deleted
            instance.save(update_fields=[*MIRROR_FIELDS, "updated_at"])
        _resolve(drift)
    op.progress["released"] = [r.address for r in owned]
    save_fields(op, "progress")


# --- a Keystone user without a soldier ------------------------------------------------------


def drift_link_user(*, drift: Drift, soldier: Soldier, requested_by: Any = None) -> Operation:
    """Queue: make this Keystone user the soldier's cloud account."""
    if soldier.keystone_user_id and soldier.keystone_user_id != drift.resource_id:
        raise OperationRefused(gettext_noop("This soldier already has a cloud account."))
    return _start(
        drift,
        kind=Operation.Kind.DRIFT_LINK_USER,
        allowed=Drift.Kind.USER_WITHOUT_SOLDIER,
        requested_by=requested_by,
        soldier=soldier,
    )


def step_link_user(op: Operation, client: OpenStackClient) -> None:
    """Read the user and record it on the soldier, name included (their project's name)."""
    drift = _drift(op)
    assert op.soldier is not None
    try:
        user = client.get_user(drift.resource_id)
    except errors.NotFound as exc:
        raise StepFailed(gettext_noop("The Keystone user no longer exists.")) from exc
    taken = Soldier.objects.filter(keystone_user_name=user.name).exclude(pk=op.soldier.pk)
    if taken.exists():
        raise StepFailed(
            gettext_noop("Another soldier already uses the cloud name %(name)s."), name=user.name
        )
    with fenced(op):
        Soldier.objects.filter(pk=op.soldier.pk).update(
            keystone_user_id=user.id, keystone_user_name=user.name, updated_at=timezone.now()
        )
        _resolve(drift)


def drift_disable_user(*, drift: Drift, requested_by: Any = None) -> Operation:
    """Queue: disable the Keystone user (Keystone revokes its tokens)."""
    return _start(
        drift,
        kind=Operation.Kind.DRIFT_DISABLE_USER,
        allowed=Drift.Kind.USER_WITHOUT_SOLDIER,
        requested_by=requested_by,
    )


def step_disable_keystone_user(op: Operation, client: OpenStackClient) -> None:
    """Disable the user; one already gone needs nothing more."""
    drift = _drift(op)
    with contextlib.suppress(errors.NotFound):
        client.disable_user(drift.resource_id)
    with fenced(op):
        _resolve(drift)


def open_drift() -> Any:
    """Drift staff still have to look at: neither resolved nor ignored."""
    return Drift.objects.filter(resolved_at__isnull=True, ignored_at__isnull=True)
