"""VMs: launch (with a floating IP the portal owns), leak-proof delete, power actions, sync.

Each use-case records an operation (the click half); its steps, declared as a kind in
``portal.operations``, are the ``step_*`` functions below (the worker half).

Each VM has at most one pending action at a time (``engine.claim_instance``); the mirror fields
of an ``Instance`` are refreshed from the server by every step that reads it.
"""

from __future__ import annotations

import contextlib
import re
import statistics
import uuid
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from portal import validation
from portal.models import (
    Batch,
    Drift,
    FloatingIP,
    Instance,
    Operation,
    Project,
    Soldier,
    SshKey,
    VmTemplate,
)
from portal.openstack import OpenStackClient, errors
from portal.openstack.types import FloatingIP as CloudFloatingIP
from portal.openstack.types import PowerState, RebootType, Server, ServerStatus, VmState
from portal.operations.engine import (
    clean_cloud_text,
    create_once,
    create_operation,
    enqueue,
    fenced,
    poll_seconds,
    save_fields,
    start_operation,
)
from portal.operations.errors import OperationRefused, StepFailed
from portal.operations.registry import Wait
from portal.services.onboarding import (
    external_network_id,
    onboarding_complete,
    project_name,
    soldier_onboard,
)

# Stamped into a server's metadata, so a retried create finds its server instead of making one.
REQUEST_TAG_KEY = "codesquare_request"
# Starts the description of every floating IP the portal creates: ownership survives a crash
# between creating one and recording it.
FIP_DESCRIPTION_PREFIX = "codesquare:"


def _instance_name(soldier: Soldier, template: VmTemplate) -> str:
    return f"{soldier.keystone_user_name}-{template.name}"


def instance_launch(
    *,
    soldier: Soldier,
    template: VmTemplate,
    requested_by: Any = None,
    name: str | None = None,
    host: str = "",
    batch: Batch | None = None,
    second_vm: bool = False,
) -> Instance:
    """Queue a VM from ``template`` in the soldier's project, with a floating IP.

    ``host`` forces a compute host ("zone:host"); the cloud allows that to admins only. A
    soldier gets one live VM per template unless ``second_vm`` says staff asked for another;
    the database holds that line against two requests at once.
    """
    if soldier.state == Soldier.State.DISABLED:
        raise OperationRefused(gettext_noop("A disabled (discharged) soldier cannot get a VM."))
    if not template.is_active:
        raise OperationRefused(
            gettext_noop("The template %(name)s is not offered."), name=template.name
        )
    vm_name = name or _instance_name(soldier, template)
    problem = validation.server_name_problem(vm_name) or validation.zone_problem(
        template.availability_zone or ("nova" if host else "")
    )
    if problem:
        raise OperationRefused(problem.message, **problem.params)
    with transaction.atomic():
        _refuse_during_teardown(soldier)
        project, _ = Project.objects.get_or_create(
            soldier=soldier, defaults={"name": project_name(soldier)}
        )
        if not second_vm:
            _refuse_a_second_vm(soldier, template)
        try:
            with transaction.atomic():
                instance = _create_instance(soldier, template, project, vm_name, host, second_vm)
        except IntegrityError as exc:
            # Another request made the soldier's VM between the check and this insert.
            _refuse_a_second_vm(soldier, template)
            raise exc
        op = create_operation(
            kind=Operation.Kind.LAUNCH,
            lock_key=f"instance:{instance.pk}",
            soldier=soldier,
            instance=instance,
            requested_by=requested_by,
            batch=batch,
            params={"action": str(Instance.Action.LAUNCH)},
        )
        Instance.objects.filter(pk=instance.pk).update(pending_operation=op)
        instance.pending_operation = op
        enqueue(op)
    return instance


def live_instances_from(soldier: Soldier, template: VmTemplate) -> QuerySet[Instance]:
    """The soldier's VMs from ``template`` that are not deleted (or gone)."""
    return (
        Instance.objects.filter(owner=soldier, template=template)
        .exclude(status=ServerStatus.DELETED)
        .exclude(deleted_outside_portal=True)
    )


def _refuse_a_second_vm(soldier: Soldier, template: VmTemplate) -> None:
    live = live_instances_from(soldier, template).order_by("created_at").first()
    if live is not None:
        raise OperationRefused(
            gettext_noop(
                "%(soldier)s already has a VM from the template %(template)s (%(name)s); "
                'tick "second VM" to launch another.'
            ),
            soldier=str(soldier),
            template=template.name,
            name=live.name,
        )


def _create_instance(
    soldier: Soldier,
    template: VmTemplate,
    project: Project,
    vm_name: str,
    host: str,
    second_vm: bool,
) -> Instance:
    return Instance.objects.create(
        project=project,
        owner=soldier,
        name=vm_name,
        template=template,
        image_id=template.image_id,
        image_name=template.image_name,
        flavor_id=template.flavor_id,
        flavor_name=template.flavor_name,
        requested_host=host,
        availability_zone=template.availability_zone,
        # The soldier's SSH key (the portal user's copy: Nova looks key_name up among the
        # key pairs of the user whose token creates the server), whoever asked.
        key_name=SshKey.objects.filter(soldier=soldier)
        .values_list("launch_key_name", flat=True)
        .first()
        or "",
        pending_action=Instance.Action.LAUNCH,
        second_vm=second_vm,
    )


def _instance(op: Operation) -> Instance:
    assert op.instance_id is not None
    return Instance.objects.select_related("project", "template").get(pk=op.instance_id)


def step_onboard(op: Operation, client: OpenStackClient) -> Wait | None:
    """Make sure the soldier is onboarded, through their own (serialized) onboard operation.

    Onboarding twice at once could create two networks (Neutron allows duplicate names), so a
    launch never onboards itself: it starts or joins the one onboard operation and waits for it.
    """
    assert op.soldier is not None
    soldier = Soldier.objects.get(pk=op.soldier.pk)
    if soldier.state == Soldier.State.DISABLED:
        raise StepFailed(gettext_noop("A disabled (discharged) soldier cannot get a VM."))
    _fail_during_teardown(soldier)
    if soldier.state == Soldier.State.ACTIVE and onboarding_complete(soldier):
        return None
    # Not onboarded yet, or onboarded only in part (a crash between two records): onboarding
    # again completes it.
    started = op.progress.get("onboard_operation")
    onboarding = Operation.objects.filter(pk=int(started)).first() if started else None
    if onboarding is not None and onboarding.state == Operation.State.FAILED:
        raise StepFailed(
            gettext_noop("Onboarding the soldier failed: %(reason)s"),
            reason=onboarding.message_text,
        )
    if onboarding is not None and onboarding.state == Operation.State.SUCCEEDED:
        raise StepFailed(
            gettext_noop(
                "Onboarding finished but the soldier's project is still incomplete; "
                "look at the soldier's project and onboard again."
            )
        )
    if onboarding is None or onboarding.is_finished:
        # Not joined yet (or the joined one was cancelled): join a running one, or start one.
        running = (
            Operation.objects.active().filter(soldier=soldier, kind=Operation.Kind.ONBOARD).first()
        )
        if running is None:
            try:
                with fenced(op):
                    running = soldier_onboard(soldier=soldier, requested_by=op.requested_by)
            except OperationRefused:
                return Wait(poll_seconds())  # another operation holds the soldier
        op.progress["onboard_operation"] = running.pk
        save_fields(op, "progress")
    return Wait(poll_seconds())


def step_resolve(op: Operation, client: OpenStackClient) -> None:
    """Pin the network and the project's own security group id for the create call."""
    instance = _instance(op)
    if instance.network_id and (instance.security_group_id or op.progress.get("sg_name")):
        return
    template = instance.template
    project = instance.project
    network_id = (template.network_id if template else "") or project.network_id
    if not network_id:
        raise StepFailed(
            gettext_noop("The soldier's project has no network; onboard the soldier again.")
        )
    sg_name = template.security_group if template else "default"
    groups = client.list_security_groups(name=sg_name, project_id=project.keystone_id)
    group = groups[0] if groups else None
    if group is None:
        # Neutron creates a project's "default" group on first use; the project-scoped create
        # resolves the name inside that project only, so it is not ambiguous there.
        op.progress["sg_name"] = sg_name
    instance.network_id = network_id
    instance.security_group_id = group.id if group else ""
    with fenced(op):
        instance.save(update_fields=["network_id", "security_group_id", "updated_at"])
        save_fields(op, "progress")


def _find_tagged_server(client: OpenStackClient, instance: Instance) -> Server | None:
    """The server of this launch, found by the request tag in its metadata."""
    tag = str(instance.request_tag)
    for server in client.list_servers(
        all_projects=True,
        project_id=instance.project.keystone_id,
        name=f"^{re.escape(instance.name)}$",
    ):
        if server.metadata.get(REQUEST_TAG_KEY) == tag:
            return server
    return None


def step_server(op: Operation, client: OpenStackClient) -> None:
    """Create the server with a project-scoped token, unless a tagged one exists."""
    instance = _instance(op)
    if instance.server_id:
        return
    assert op.soldier is not None
    _fail_during_teardown(op.soldier)

    def create() -> str:
        zone = instance.availability_zone or None
        if instance.requested_host and not zone:
            zone = "nova"
        group = instance.security_group_id or op.progress.get("sg_name", "default")
        return client.for_project(instance.project.keystone_id).create_server(
            name=instance.name,
            image_id=instance.image_id,
            flavor_id=instance.flavor_id,
            network_ids=[instance.network_id],
            security_group_ids=[group],
            availability_zone=zone,
            host=instance.requested_host or None,
            metadata={REQUEST_TAG_KEY: str(instance.request_tag)},
            key_name=instance.key_name or None,
        )

    def find() -> str | None:
        server = _find_tagged_server(client, instance)
        return server.id if server else None

    server_id = create_once(op, "server", find=find, create=create)
    instance.server_id = server_id
    instance.status = ServerStatus.BUILD
    with fenced(op):
        instance.save(update_fields=["server_id", "status", "updated_at"])


def mirror_server(
    instance: Instance, server: Server, now: datetime, *, floating_ip: str | None = None
) -> None:
    """Copy a server's decoded state onto its mirror row (no save).

    ``floating_ip`` is what Neutron says is bound to the server, when the caller knows it;
    without it the mirror keeps its floating IP. Nova's ``addresses`` are no source for it:
    they come from a cache that Neutron's network-changed event refreshes about a second
    after each change, so right after binding they lack the new address and right after a
    release they still show the old one.
    """
    was_running = instance.power_state == PowerState.RUNNING and instance.status not in (
        ServerStatus.REBOOT,
        ServerStatus.HARD_REBOOT,
    )
    instance.status = server.status_raw or str(server.status)
    instance.vm_state = str(server.vm_state)
    instance.task_state = server.task_state or ""
    instance.power_state = server.power_state_raw
    instance.launched_at = server.launched_at
    instance.terminated_at = server.terminated_at
    instance.launched_at_raw = server.launched_at_raw
    instance.terminated_at_raw = server.terminated_at_raw
    # Nova's fault echoes what it was sent: redacted like every cloud text before it is kept.
    instance.fault = clean_cloud_text(server.fault.message, limit=2000) if server.fault else ""
    running = server.power_state is PowerState.RUNNING and server.status is ServerStatus.ACTIVE
    if not running:
        instance.running_since = None
    elif not was_running or instance.running_since is None:
        # First sight of RUNNING after a launch, a start or the end of a reboot.
        instance.running_since = now
    instance.addresses = [
        {
            "network": a.network,
            "addr": a.addr,
            "version": a.version,
            "kind": str(a.kind),
            "mac": a.mac,
        }
        for a in server.addresses
    ]
    fixed = server.fixed_addresses
    instance.fixed_ip = fixed[0].addr if fixed else instance.fixed_ip
    if floating_ip is not None:
        instance.floating_ip = floating_ip
    if fixed and not instance.network_name:
        instance.network_name = fixed[0].network
    instance.host = server.host or ""
    instance.availability_zone = server.availability_zone or instance.availability_zone
    if server.flavor and server.flavor.name:
        instance.flavor_name = server.flavor.name
    if server.flavor and server.flavor.vcpus is not None:
        instance.flavor_vcpus = server.flavor.vcpus
        instance.flavor_ram_mib = server.flavor.ram_mib
        instance.flavor_disk_gib = server.flavor.disk_gib
    if server.image_id:
        instance.image_id = server.image_id
    instance.deleted_outside_portal = False
    instance.last_synced_at = now


MIRROR_FIELDS = [
    "status",
    "vm_state",
    "task_state",
    "power_state",
    "launched_at",
    "terminated_at",
    "launched_at_raw",
    "terminated_at_raw",
    "running_since",
    "fault",
    "addresses",
    "fixed_ip",
    "floating_ip",
    "network_name",
    "host",
    "availability_zone",
    "flavor_name",
    "flavor_vcpus",
    "flavor_ram_mib",
    "flavor_disk_gib",
    "image_id",
    "deleted_outside_portal",
    "last_synced_at",
]


def _refresh(op: Operation, instance: Instance, client: OpenStackClient) -> Server:
    """Read the server and update the mirror (written only when something changed)."""
    assert instance.server_id
    server = client.get_server(instance.server_id)
    before = [getattr(instance, f) for f in MIRROR_FIELDS if f != "last_synced_at"]
    mirror_server(instance, server, timezone.now())
    after = [getattr(instance, f) for f in MIRROR_FIELDS if f != "last_synced_at"]
    # A build polled every few seconds mostly sees nothing new; skip those writes.
    if before != after or instance.last_synced_at is None:
        with fenced(op):
            instance.save(update_fields=[*MIRROR_FIELDS, "updated_at"])
    return server


def step_wait_active(op: Operation, client: OpenStackClient) -> Wait | None:
    """Done at ACTIVE; failed at ERROR; otherwise look again later."""
    instance = _instance(op)
    server = _refresh(op, instance, client)
    if server.status is ServerStatus.ACTIVE:
        if server.created and server.launched_at:
            op.progress["build_seconds"] = (server.launched_at - server.created).total_seconds()
            save_fields(op, "progress")
        return None
    if server.status is ServerStatus.ERROR:
        fault = (
            clean_cloud_text(server.fault.message) if server.fault else gettext("no reason given")
        )
        raise StepFailed(
            gettext_noop(
                "The cloud could not build the VM (%(fault)s). Delete it and launch again."
            ),
            fault=fault,
        )
    if not op.progress.get("polled") and server.created:
        # The first re-check goes to when recent builds finished, not every few seconds
        # through the whole build: a hundred VMs building at once cost a hundred polls, not
        # five hundred. Later re-checks fall back to the regular interval.
        op.progress["polled"] = True
        save_fields(op, "progress")
        elapsed = (timezone.now() - server.created).total_seconds()
        return Wait(max(poll_seconds(), _expected_build_seconds() - elapsed))
    return Wait(poll_seconds())


def _expected_build_seconds() -> float:
    """The median build time of the last launches, or 0 when there is no history yet."""
    recent = [
        float(p["build_seconds"])
        for p in Operation.objects.filter(
            kind=Operation.Kind.LAUNCH, state=Operation.State.SUCCEEDED
        )
        .order_by("-finished_at")
        .values_list("progress", flat=True)[:20]
        if isinstance(p, dict) and "build_seconds" in p
    ]
    return statistics.median(recent) if recent else 0.0


def step_port(op: Operation, client: OpenStackClient) -> Wait | None:
    """Find the server's port on its network (GET /v2.0/ports?device_id=)."""
    instance = _instance(op)
    if instance.port_id:
        return None
    assert instance.server_id
    ports = client.list_ports(device_id=instance.server_id)
    if not ports:
        return Wait(poll_seconds())
    chosen = next((p for p in ports if p.network_id == instance.network_id), ports[0])
    instance.port_id = chosen.id
    if chosen.fixed_ips:
        instance.fixed_ip = chosen.fixed_ips[0].ip_address
    with fenced(op):
        instance.save(update_fields=["port_id", "fixed_ip", "updated_at"])
    return None


def _fip_description(token: str) -> str:
    return f"{FIP_DESCRIPTION_PREFIX}{token}"


def remember_floating_ip(
    fip: CloudFloatingIP, *, instance: Instance | None, created_by_portal: bool
) -> FloatingIP:
    """Record (or update) a floating IP mirror with its ownership."""
    record, _ = FloatingIP.objects.update_or_create(
        neutron_id=fip.id,
        defaults={
            "address": fip.floating_ip_address,
            "port_id": fip.port_id or "",
            "fixed_ip": fip.fixed_ip_address or "",
            "project_keystone_id": fip.project_id or "",
            "instance": instance,
            "created_by_portal": created_by_portal,
            "status": fip.status,
            "released_at": None,
            "last_synced_at": timezone.now(),
        },
    )
    return record


def _unrecorded_fip(client: OpenStackClient, instance: Instance) -> CloudFloatingIP | None:
    """The floating IP a create of this VM made but never recorded, if there is one.

    Its proof of ownership is the one-time token the portal saved before the create call and
    put in the description; a description alone proves nothing (soldiers can write one).
    """
    token = instance.floating_ip_token
    if not token or not instance.port_id:
        return None
    for fip in client.list_floating_ips(port_id=instance.port_id):
        if fip.description == _fip_description(token):
            return fip
    return None


def step_floating_ip(op: Operation, client: OpenStackClient) -> None:
    """Bind a floating IP to the port: an existing one on the port, or a new one."""
    instance = _instance(op)
    if instance.floating_ips.filter(released_at__isnull=True).exists():
        return
    ours = _unrecorded_fip(client, instance)
    others = [
        fip
        for fip in client.list_floating_ips(port_id=instance.port_id)
        if ours is None or fip.id != ours.id
    ]
    if ours is None and others:
        # Attached by hand (or by the soldier): mirrored, and never released by the portal.
        fip = others[0]
        with fenced(op):
            remember_floating_ip(fip, instance=instance, created_by_portal=False)
            instance.floating_ip = fip.floating_ip_address
            instance.save(update_fields=["floating_ip", "updated_at"])
        return
    if not instance.floating_ip_token:
        # Saved before the call: whatever the call's fate, a later run can recognise the result.
        instance.floating_ip_token = uuid.uuid4().hex
        with fenced(op):
            instance.save(update_fields=["floating_ip_token", "updated_at"])
    token = instance.floating_ip_token

    def create() -> CloudFloatingIP:
        # Created in the soldier's project so it counts against their quota, not the portal's.
        return client.for_project(instance.project.keystone_id).create_floating_ip(
            floating_network_id=external_network_id(client),
            port_id=instance.port_id,
            description=_fip_description(token),
        )

    # (``ours`` is this run's look-up: a lost create found is recognised by its token.)
    fip = create_once(op, "floating_ip", find=lambda: ours, create=create)
    with fenced(op):
        remember_floating_ip(fip, instance=instance, created_by_portal=True)
        instance.floating_ip = fip.floating_ip_address
        instance.floating_ip_token = ""
        instance.save(update_fields=["floating_ip", "floating_ip_token", "updated_at"])


def step_sync(op: Operation, client: OpenStackClient) -> None:
    """Refresh the mirror once more (the floating address stays the one Neutron gave)."""
    _refresh(op, _instance(op), client)


def instance_delete(
    *, instance: Instance, requested_by: Any = None, batch: Batch | None = None
) -> Operation:
    """Queue the leak-proof delete: the server, then its portal-owned floating IPs, then the
    mirror."""

    def check(locked: Instance) -> None:
        if locked.status == ServerStatus.DELETED:
            raise OperationRefused(gettext_noop("This VM is already deleted."))

    return start_operation(
        kind=Operation.Kind.DELETE,
        lock_key=f"instance:{instance.pk}",
        soldier=instance.owner,
        instance=instance,
        action=Instance.Action.DELETE,
        check=check,
        requested_by=requested_by,
        batch=batch,
    )


def _record_unrecorded_fip(op: Operation, client: OpenStackClient, instance: Instance) -> None:
    """Record the floating IP a stopped launch made but never recorded, as the portal's.

    It carries the token the launch saved first; it is found through the port, so this runs
    while the port still exists (before the server delete takes it away).
    """
    unrecorded = _unrecorded_fip(client, instance)
    if unrecorded is None:
        return
    if instance.floating_ips.filter(neutron_id=unrecorded.id, created_by_portal=True).exists():
        return
    with fenced(op):
        remember_floating_ip(unrecorded, instance=instance, created_by_portal=True)


def step_delete_server(op: Operation, client: OpenStackClient) -> None:
    """Delete the server (a launch that never recorded it is found by its tag).

    The floating IP stays until Nova has accepted the delete: a refused delete leaves the VM
    running and reachable at its address, not running without one.
    """
    instance = _instance(op)
    _record_unrecorded_fip(op, client, instance)
    server_id = instance.server_id
    if not server_id:
        # A launch that never reached the cloud may still have created a tagged server.
        found = _find_tagged_server(client, instance) if instance.project.keystone_id else None
        if found is None:
            return
        server_id = found.id
        instance.server_id = server_id
        with fenced(op):
            instance.save(update_fields=["server_id", "updated_at"])
    with contextlib.suppress(errors.NotFound):
        client.delete_server(server_id)


def step_release_floating_ips(op: Operation, client: OpenStackClient) -> None:
    """Release the floating IPs the portal created for this VM, and no other.

    Runs once Nova has accepted the server delete; Neutron keeps a floating IP when its server
    goes, so one the portal owns is released here. Anything else on the port is left alone.
    """
    instance = _instance(op)
    _record_unrecorded_fip(op, client, instance)
    owned = list(instance.floating_ips.filter(created_by_portal=True, released_at__isnull=True))
    for record in owned:
        with contextlib.suppress(errors.NotFound):
            client.delete_floating_ip(record.neutron_id)
        record.released_at = timezone.now()
        with fenced(op):
            record.save(update_fields=["released_at"])
    instance.floating_ip = ""
    instance.floating_ip_token = ""
    with fenced(op):
        instance.save(update_fields=["floating_ip", "floating_ip_token", "updated_at"])


# Nova's deferred delete (reclaim_instance_interval) keeps a deleted server as SOFT_DELETED
# until it is reclaimed; for the portal it is gone.
GONE_STATUSES = frozenset({ServerStatus.DELETED, ServerStatus.SOFT_DELETED})


def step_wait_gone(op: Operation, client: OpenStackClient) -> Wait | None:
    """Done once the server answers 404, DELETED or SOFT_DELETED."""
    instance = _instance(op)
    if not instance.server_id:
        return None
    try:
        server = client.get_server(instance.server_id)
    except errors.NotFound:
        return None
    if server.status in GONE_STATUSES:
        return None
    mirror_server(instance, server, timezone.now())
    with fenced(op):
        instance.save(update_fields=[*MIRROR_FIELDS, "updated_at"])
    return Wait(poll_seconds())


def mark_terminated(instance: Instance, now: datetime) -> None:
    """Mark a mirror as a deleted server (no save)."""
    instance.status = ServerStatus.DELETED
    instance.vm_state = VmState.DELETED
    instance.task_state = ""
    instance.power_state = None
    instance.running_since = None
    instance.floating_ip = ""
    instance.terminated_at = instance.terminated_at or now
    instance.last_synced_at = now


def step_mark_terminated(op: Operation, client: OpenStackClient) -> None:
    """Record the deletion on the mirror."""
    instance = _instance(op)
    mark_terminated(instance, timezone.now())
    with fenced(op):
        instance.save(update_fields=[*MIRROR_FIELDS, "updated_at"])


_POWER_ALLOWED: dict[str, set[ServerStatus]] = {
    Instance.Action.START: {ServerStatus.SHUTOFF},
    Instance.Action.STOP: {ServerStatus.ACTIVE},
    Instance.Action.REBOOT_SOFT: {ServerStatus.ACTIVE},
    Instance.Action.REBOOT_HARD: {
        ServerStatus.ACTIVE,
        ServerStatus.SHUTOFF,
        ServerStatus.ERROR,
        ServerStatus.REBOOT,
        ServerStatus.HARD_REBOOT,
    },
}

_POWER_TARGET: dict[str, ServerStatus] = {
    Instance.Action.START: ServerStatus.ACTIVE,
    Instance.Action.STOP: ServerStatus.SHUTOFF,
    Instance.Action.REBOOT_SOFT: ServerStatus.ACTIVE,
    Instance.Action.REBOOT_HARD: ServerStatus.ACTIVE,
}


def instance_power(
    *,
    instance: Instance,
    action: Instance.Action,
    requested_by: Any = None,
    batch: Batch | None = None,
) -> Operation:
    """Queue start, stop, or a soft/hard reboot; refused at once when the VM's state forbids it."""
    if action not in _POWER_ALLOWED:
        raise OperationRefused(gettext_noop("%(action)s is not a power action."), action=action)

    def check(locked: Instance) -> None:
        if locked.status not in _POWER_ALLOWED[action]:
            raise OperationRefused(
                gettext_noop("%(action)s is not possible while the VM is %(status)s."),
                action=Instance.Action(action).label,
                status=locked.status or "-",
            )

    return start_operation(
        kind=Operation.Kind.POWER,
        lock_key=f"instance:{instance.pk}",
        soldier=instance.owner,
        instance=instance,
        action=Instance.Action(action),
        check=check,
        requested_by=requested_by,
        batch=batch,
    )


def _power_applied(action: str, server: Server) -> bool:
    """Whether the cloud is carrying out, or has carried out, a power action already sent."""
    if server.task_state or server.status in (ServerStatus.REBOOT, ServerStatus.HARD_REBOOT):
        return True  # busy with it
    if action in (Instance.Action.START, Instance.Action.STOP):
        return server.status == _POWER_TARGET[action]
    return False


def step_power_action(op: Operation, client: OpenStackClient) -> None:
    """Send the action once; skip it if the server is already where it should be.

    The intent is saved before the call: a run that stops after sending (its "sent" mark lost)
    is resumed by reading the server, not by sending again into Nova's 409.
    """
    if op.progress.get("sent"):
        return
    instance = _instance(op)
    assert instance.server_id
    action = op.params["action"]
    server = _refresh(op, instance, client)
    if op.progress.get("sending"):
        since = instance.running_since
        already = _power_applied(action, server) or (
            # A reboot that was sent and has already finished: running again since then.
            server.status == ServerStatus.ACTIVE and since is not None and since >= _sent_at(op)
        )
    else:
        already = action in (Instance.Action.START, Instance.Action.STOP) and (
            server.status == _POWER_TARGET[action] and not server.task_state
        )
    if not already:
        op.progress["sending"] = True
        op.progress["sending_at"] = timezone.now().isoformat()
        save_fields(op, "progress")
        try:
            _send_power(client, instance.server_id, action)
        except errors.Conflict:
            # Nova refuses an action the server is already carrying out or has carried out.
            if not _power_applied(action, _refresh(op, instance, client)):
                raise
    op.progress["sent"] = True
    save_fields(op, "progress")


def _sent_at(op: Operation) -> datetime:
    value = op.progress.get("sending_at")
    return datetime.fromisoformat(value) if value else timezone.now()


def _send_power(client: OpenStackClient, server_id: str, action: str) -> None:
    if action == Instance.Action.START:
        client.start_server(server_id)
    elif action == Instance.Action.STOP:
        client.stop_server(server_id)
    else:
        kind = RebootType.HARD if action == Instance.Action.REBOOT_HARD else RebootType.SOFT
        client.reboot_server(server_id, kind=kind)


def step_power_wait(op: Operation, client: OpenStackClient) -> Wait | None:
    """Done when the server reaches the action's end state with no task running."""
    instance = _instance(op)
    server = _refresh(op, instance, client)
    action = op.params["action"]
    if server.status == _POWER_TARGET[action] and not server.task_state:
        if action in (Instance.Action.REBOOT_SOFT, Instance.Action.REBOOT_HARD) and (
            server.power_state is PowerState.RUNNING
        ):
            # A reboot too quick to be seen in REBOOT still starts a new uptime.
            since = instance.running_since
            if since is None or since < _sent_at(op):
                instance.running_since = timezone.now()
                with fenced(op):
                    instance.save(update_fields=["running_since", "updated_at"])
        return None
    if server.status is ServerStatus.ERROR:
        raise StepFailed(gettext_noop("The VM went into the ERROR state; ask staff to look at it."))
    return Wait(poll_seconds())


def teardown_under_way(soldier: Soldier) -> str | None:
    """The kind of teardown (discharge or disable) begun for this soldier, if any.

    From then on no VM is launched for them: a failed one still counts, since staff asked for
    the account to be shut and its Keystone user is disabled first.
    """
    if Soldier.objects.filter(pk=soldier.pk, state=Soldier.State.DISABLED).exists():
        return str(Operation.Kind.DISCHARGE)
    kind = (
        Operation.objects.filter(
            soldier=soldier, kind__in=[Operation.Kind.DISCHARGE, Operation.Kind.DISABLE]
        )
        .filter(state__in=[*Operation.ACTIVE_STATES, Operation.State.FAILED])
        .order_by("-created_at")
        .values_list("kind", flat=True)
        .first()
    )
    return str(kind) if kind else None


def _refuse_during_teardown(soldier: Soldier) -> None:
    """A launch asked for a soldier being discharged or disabled is refused, saying which."""
    kind = teardown_under_way(soldier)
    if kind == Operation.Kind.DISABLE:
        raise OperationRefused(
            gettext_noop("This soldier is being disabled, so no new VM can be launched.")
        )
    if kind is not None:
        raise OperationRefused(
            gettext_noop("This soldier is being discharged, so no new VM can be launched.")
        )


def _fail_during_teardown(soldier: Soldier) -> None:
    """A launch queued before a discharge or a disable stops before it creates anything."""
    kind = teardown_under_way(soldier)
    if kind == Operation.Kind.DISABLE:
        raise StepFailed(gettext_noop("The soldier is being disabled; the VM was not created."))
    if kind is not None:
        raise StepFailed(gettext_noop("The soldier is being discharged; the VM was not created."))


# --- sync one VM (a staff action) ----------------------------------------------------------------


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
