"""Reconcile: mirror every server and floating IP from two listings, and record drift."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from portal.models import (
    Drift,
    FloatingIP,
    Instance,
    Operation,
    Project,
)
from portal.openstack import OpenStackClient, errors
from portal.openstack.types import FloatingIP as CloudFloatingIP
from portal.openstack.types import Microversion, Server, ServerStatus
from portal.operations.engine import create_operation, enqueue, fenced, operation_run, save_fields
from portal.services.drift import drift_record, record_user_drift
from portal.services.instances import (
    GONE_STATUSES,
    MIRROR_FIELDS,
    REQUEST_TAG_KEY,
    mark_terminated,
    mirror_server,
)


def cloud_reconcile(*, requested_by: Any = None, run_now: bool = False) -> Operation:
    """Start a sync pass (queued, or run here with ``run_now``); one pass at a time."""
    with transaction.atomic():
        op = create_operation(
            kind=Operation.Kind.RECONCILE, lock_key="reconcile", requested_by=requested_by
        )
        if not run_now:
            enqueue(op)
    if run_now:
        operation_run(operation_id=op.pk)
        op.refresh_from_db()
    return op


# From compute 2.69 a listing shows servers of unreachable cells (status UNKNOWN, few fields)
# instead of leaving them out: only then does a server's absence from it mean anything.
DOWN_CELLS_SHOWN = Microversion(2, 69)


def step_reconcile(op: Operation, client: OpenStackClient) -> None:
    """Mirror every server and floating IP from two listings, whatever their number.

    A mirror is judged gone only if it had its server before the listing began, the listing
    was complete, and ``GET /servers/{id}`` then answers 404 (or a deleted status). A listing
    that breaks off (5xx, timeout, a looping next link) raises before anything is judged.
    """
    # Taken before the listing: a launch that records its server meanwhile is not judged.
    before = set(Instance.objects.filter(server_id__isnull=False).values_list("pk", flat=True))
    # Likewise for floating IPs: one a launch records after the listing is not "released".
    fips_before = set(
        FloatingIP.objects.filter(released_at__isnull=True).values_list("pk", flat=True)
    )
    version = client.compute_microversion()
    complete = version is not None and version >= DOWN_CELLS_SHOWN
    servers = {s.id: s for s in client.list_servers(all_projects=True)}
    fips = client.list_floating_ips()
    now = timezone.now()
    stats: dict[str, Any] = {"servers": len(servers), "floating_ips": len(fips)}
    if not complete:
        stats["absence_not_judged"] = f"compute microversion {version or '2.1'} hides down cells"
    server_of_fip = _servers_of_floating_ips(fips, servers)
    floating_of: dict[str, str] = {}
    for fip in fips:
        if fip.id in server_of_fip:
            floating_of.setdefault(server_of_fip[fip.id], fip.floating_ip_address)

    projects = {p.keystone_id: p for p in Project.objects.exclude(keystone_id="")}
    known_ids = set(
        Instance.objects.filter(server_id__isnull=False).values_list("server_id", flat=True)
    )
    updated: list[Instance] = []
    revived: list[Instance] = []
    suspects: list[Instance] = []
    for instance in Instance.objects.filter(pk__in=before).select_related("project"):
        if instance.pending_action:
            continue  # its operation refreshes it; a stale listing must not overwrite that
        server = servers.get(instance.server_id or "")
        if server is not None and server.status is ServerStatus.UNKNOWN:
            continue  # in a cell that cannot be reached: neither mirrored nor judged
        if server is not None and server.status not in GONE_STATUSES:
            if instance.status == ServerStatus.DELETED:
                revived.append(instance)
            mirror_server(instance, server, now, floating_ip=floating_of.get(server.id, ""))
            updated.append(instance)
        elif instance.status != ServerStatus.DELETED and complete:
            suspects.append(instance)
    for instance in revived:
        _yield_the_slot(instance)
    Instance.objects.bulk_update(updated, [*MIRROR_FIELDS, "second_vm"], batch_size=500)
    gone = _confirm_gone(op, client, suspects, now)
    stats["updated"] = len(updated)
    stats["revived"] = len(revived)
    stats["deleted_outside"] = len(gone)
    stats["released_floating_ips"] = _release_floating_ips_of(op, client, gone, now)

    # Servers a launch created but had not recorded yet: that launch (or a delete) claims them
    # by their tag; adopting them here would make a second mirror of the same server.
    unrecorded = {
        str(tag)
        for tag in Instance.objects.filter(server_id__isnull=True).values_list(
            "request_tag", flat=True
        )
    }
    # A server the portal did not make is never adopted on its own: one in a soldier's project
    # (his own CLI, say) would silently become a second VM. Staff adopt or delete it from drift.
    foreign: list[Server] = []
    unowned: list[Server] = []
    for server in servers.values():
        if server.id in known_ids or server.status in GONE_STATUSES:
            continue
        if server.status is ServerStatus.UNKNOWN or server.metadata.get(REQUEST_TAG_KEY) in (
            unrecorded
        ):
            continue
        (foreign if server.project_id in projects else unowned).append(server)

    stats.update(_reconcile_floating_ips(fips, server_of_fip, now, fips_before))
    drift_record(
        kind=Drift.Kind.UNOWNED_SERVER,
        found={s.id: (s.project_id, s.name) for s in unowned},
        now=now,
    )
    drift_record(
        kind=Drift.Kind.DELETED_OUTSIDE,
        found={i.server_id or "": (i.project.keystone_id, i.name) for i in gone},
        now=now,
        resolve_missing=False,
    )
    if revived:
        Drift.objects.filter(
            kind=Drift.Kind.DELETED_OUTSIDE,
            resource_id__in=[i.server_id for i in revived],
            resolved_at__isnull=True,
        ).update(resolved_at=now)
    drift_record(
        kind=Drift.Kind.FOREIGN_SERVER,
        found={s.id: (s.project_id, s.name) for s in foreign},
        now=now,
    )
    stats["unowned_servers"] = len(unowned)
    stats["foreign_servers"] = len(foreign)

    # Staff console (issue 10): Keystone users that belong to no soldier, two listings a pass.
    stats["users_without_soldier"] = record_user_drift(client=client, now=now)

    op.progress["stats"] = stats
    save_fields(op, "progress")


def _yield_the_slot(instance: Instance) -> None:
    """A VM judged gone that came back: if the soldier got another from its template since,
    it counts as a second VM (one live VM per soldier and template is a database constraint)."""
    if instance.template_id is None or instance.second_vm:
        return
    instance.second_vm = (
        Instance.objects.filter(
            owner_id=instance.owner_id,
            template_id=instance.template_id,
            second_vm=False,
            deleted_outside_portal=False,
        )
        .exclude(status=ServerStatus.DELETED)
        .exclude(pk=instance.pk)
        .exists()
    )


def _confirm_gone(
    op: Operation, client: OpenStackClient, suspects: list[Instance], now: datetime
) -> list[Instance]:
    """Of the mirrors missing from the listing, those whose server the cloud says is gone.

    Each is asked for by id (a listing can miss a server a direct read finds); a server that
    answers is mirrored again instead. A mirror an operation took up meanwhile is left to it.
    """
    gone: list[Instance] = []
    for instance in suspects:
        assert instance.server_id
        try:
            server: Server | None = client.get_server(instance.server_id)
        except errors.NotFound:
            server = None
        if server is not None and server.status is ServerStatus.UNKNOWN:
            continue
        if server is not None and server.status not in GONE_STATUSES:
            mirror_server(instance, server, now)
            fields = {f: getattr(instance, f) for f in MIRROR_FIELDS}
            Instance.objects.filter(pk=instance.pk, pending_action="").update(**fields)
            continue
        mark_terminated(instance, now)
        instance.deleted_outside_portal = True
        fields = {f: getattr(instance, f) for f in MIRROR_FIELDS}
        with fenced(op):
            if Instance.objects.filter(pk=instance.pk, pending_action="").update(**fields):
                gone.append(instance)
    return gone


def _release_floating_ips_of(
    op: Operation, client: OpenStackClient, gone: list[Instance], now: datetime
) -> int:
    """Release the floating IPs the portal created for servers confirmed gone.

    Neutron keeps a floating IP when its server is deleted; one the portal owns would stay
    allocated (and count against the soldier's quota) for ever. Ownership is the portal's own
    record, never the floating IP's description.
    """
    released = 0
    for record in FloatingIP.objects.filter(
        instance__in=gone, created_by_portal=True, released_at__isnull=True
    ):
        with contextlib.suppress(errors.NotFound):
            client.delete_floating_ip(record.neutron_id)
        record.released_at = now
        with fenced(op):
            record.save(update_fields=["released_at"])
            Drift.objects.update_or_create(
                kind=Drift.Kind.ORPHAN_FLOATING_IP,
                resource_id=record.neutron_id,
                defaults={
                    "project_keystone_id": record.project_keystone_id,
                    "detail": f"{record.address}: released by the portal, its server is gone",
                    "last_seen_at": now,
                    "resolved_at": now,
                },
            )
        released += 1
    return released


def _servers_of_floating_ips(
    fips: Sequence[CloudFloatingIP], servers: dict[str, Server]
) -> dict[str, str]:
    """The server each bound floating IP belongs to, by Neutron's word: {fip id: server id}.

    A floating IP names its port and fixed address. The port is matched to the mirror that
    recorded it, else the fixed address to a server of the floating IP's project (Neutron
    binds a floating IP only to a port of its own project). Nova's floating addresses, which
    lag every change by about a second, are the last resort: an admin can bind across
    projects.
    """
    by_port = dict(
        Instance.objects.filter(server_id__in=set(servers))
        .exclude(port_id="")
        .values_list("port_id", "server_id")
    )
    by_fixed: dict[tuple[str, str], str] = {}
    by_floating: dict[str, str] = {}
    for server in servers.values():
        if server.status is ServerStatus.DELETED:
            continue
        for address in server.fixed_addresses:
            by_fixed[(server.project_id, address.addr)] = server.id
        for address in server.floating_addresses:
            by_floating[address.addr] = server.id
    found: dict[str, str] = {}
    for fip in fips:
        if not fip.port_id:
            continue
        server_id = (
            by_port.get(fip.port_id)
            or by_fixed.get((fip.project_id or "", fip.fixed_ip_address or ""))
            or by_floating.get(fip.floating_ip_address)
        )
        if server_id:
            found[fip.id] = server_id
    return found


def _reconcile_floating_ips(
    fips: Sequence[CloudFloatingIP],
    server_of_fip: dict[str, str],
    now: datetime,
    recorded_before: set[int],
) -> dict[str, int]:
    instance_of = dict(
        Instance.objects.filter(server_id__in=set(server_of_fip.values())).values_list(
            "server_id", "pk"
        )
    )
    records = {r.neutron_id: r for r in FloatingIP.objects.filter(released_at__isnull=True)}
    seen: set[str] = set()
    changed: list[FloatingIP] = []
    created: list[FloatingIP] = []
    orphans: dict[str, tuple[str, str]] = {}
    for fip in fips:
        seen.add(fip.id)
        server_id = server_of_fip.get(fip.id)
        instance_pk = instance_of.get(server_id) if server_id else None
        record = records.get(fip.id)
        if record is None:
            if instance_pk is None:
                continue  # not on one of our VMs: none of the portal's business
            # Seen first here, so the portal did not create it (it records its own at once):
            # mirrored, never released. A description proves nothing; anyone may write one.
            record = FloatingIP(neutron_id=fip.id, created_by_portal=False)
            created.append(record)
        else:
            changed.append(record)
        record.address = fip.floating_ip_address
        record.port_id = fip.port_id or ""
        record.fixed_ip = fip.fixed_ip_address or ""
        record.project_keystone_id = fip.project_id or ""
        record.instance_id = instance_pk or record.instance_id
        record.status = fip.status
        record.last_synced_at = now
        if record.created_by_portal and not fip.port_id:
            orphans[fip.id] = (fip.project_id or "", fip.floating_ip_address)
    # Only a record older than the listing can be missing from it.
    gone = [r for key, r in records.items() if key not in seen and r.pk in recorded_before]
    for record in gone:
        record.released_at = now
    FloatingIP.objects.bulk_update(
        changed,
        [
            "address",
            "port_id",
            "fixed_ip",
            "project_keystone_id",
            "instance",
            "status",
            "last_synced_at",
        ],
        batch_size=500,
    )
    FloatingIP.objects.bulk_update(gone, ["released_at"], batch_size=500)
    FloatingIP.objects.bulk_create(created, batch_size=500, ignore_conflicts=True)
    drift_record(kind=Drift.Kind.ORPHAN_FLOATING_IP, found=orphans, now=now)
    return {"orphan_floating_ips": len(orphans), "floating_ips_released_outside": len(gone)}
