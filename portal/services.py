"""Use-cases of the portal: the only code that calls the cloud or enqueues tasks.

Every multi-step cloud action is an ``Operation`` run as a sequence of idempotent steps. Before a
step runs, the operation's row records it (and renews the worker's lease), so a crash, a timeout
or a retry resumes at that step instead of repeating what is done. Each step looks for what it is
about to create before creating it: the user and project by name, the server by the request tag in
its metadata, the floating IP by port. Waiting for the cloud never holds a worker: a step that is
not finished returns ``Wait`` and the operation is re-enqueued with a delay, up to a deadline.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import statistics
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.dispatch import Signal
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from portal import cloud
from portal.models import (
    Batch,
    Drift,
    FloatingIP,
    Instance,
    Operation,
    Project,
    ProjectNetwork,
    Soldier,
    VmTemplate,
    seoul_today,
)
from portal.openstack import OpenStackClient, errors
from portal.openstack.types import FloatingIP as CloudFloatingIP
from portal.openstack.types import Network, RebootType, Server, ServerStatus

logger = logging.getLogger(__name__)

# Sent before every step with the operation and the step's name. Observability hooks (and the
# resumability tests, which interrupt an operation here) connect to it.
step_reached = Signal()

REQUEST_TAG_KEY = "codesquare_request"
_UUID = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
)
FIP_DESCRIPTION_PREFIX = "codesquare:"


# --- errors shown to callers ------------------------------------------------------------------


class OperationRefused(Exception):
    """The portal will not start this action; ``str()`` is a sentence for people."""

    def __init__(self, message: str, **params: Any) -> None:
        super().__init__(message)
        self.message = message
        self.params = params

    def __str__(self) -> str:
        text = gettext(self.message)
        return text % self.params if self.params else text


class _StepFailed(Exception):
    """A step met a condition retrying cannot fix; the operation fails with this message."""

    def __init__(self, message: str, **params: Any) -> None:
        super().__init__(message)
        self.message = message
        self.params = params


@dataclass(frozen=True)
class Wait:
    """The step is not finished; check again after ``seconds``."""

    seconds: float


# --- tuning (all from settings, so tests and deployments can shorten or lengthen them) --------


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def _lease() -> timedelta:
    return timedelta(seconds=_setting("OPERATION_LEASE_SECONDS", 300))


def _poll_seconds() -> float:
    return _setting("OPERATION_POLL_SECONDS", 2)


def _wait_deadline(kind: str) -> timedelta:
    names: dict[str, str] = {
        Operation.Kind.LAUNCH: "OPERATION_LAUNCH_TIMEOUT_SECONDS",
        Operation.Kind.DELETE: "OPERATION_DELETE_TIMEOUT_SECONDS",
        Operation.Kind.DISCHARGE: "OPERATION_DISCHARGE_TIMEOUT_SECONDS",
    }
    return timedelta(seconds=_setting(names.get(kind, "OPERATION_POWER_TIMEOUT_SECONDS"), 900))


def _max_retries() -> int:
    return int(_setting("OPERATION_MAX_RETRIES", 4))


def _retry_delay(retry: int) -> float:
    base = _setting("OPERATION_RETRY_BASE_SECONDS", 2)
    return float(min(base * 2 ** (retry - 1), _setting("OPERATION_RETRY_MAX_SECONDS", 60)))


# --- enqueueing, claiming and finishing operations ----------------------------------------------


def _enqueue(op: Operation, *, delay: float = 0) -> None:
    """Queue a task for ``op`` once the surrounding transaction commits; frees its lease."""
    run_after = timezone.now() + timedelta(seconds=delay) if delay > 0 else None
    Operation.objects.filter(pk=op.pk).update(run_after=run_after, lease_expires_at=None)
    op.run_after = run_after
    op.lease_expires_at = None
    op_id = op.pk

    def send() -> None:
        from portal.tasks import operation_run

        task = operation_run.using(run_after=run_after) if run_after else operation_run
        task.enqueue(op_id)

    transaction.on_commit(send)


def _claim(operation_id: int) -> bool:
    """Take the worker lease on an operation; False if it is finished, leased or not yet due."""
    now = timezone.now()
    return bool(
        Operation.objects.filter(pk=operation_id, state__in=Operation.ACTIVE_STATES)
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .filter(Q(run_after__isnull=True) | Q(run_after__lte=now + timedelta(seconds=1)))
        .update(
            state=Operation.State.RUNNING,
            lease_expires_at=now + _lease(),
            attempts=F("attempts") + 1,
            started_at=Coalesce(F("started_at"), Value(now)),
            run_after=None,
        )
    )


def _save(op: Operation, *fields: str) -> None:
    op.save(update_fields=[*fields, "updated_at"])


def _record_request_id(op: Operation, request_id: str | None) -> None:
    if request_id and request_id not in op.request_ids:
        op.request_ids = [*op.request_ids, request_id][-20:]


def _finish(
    op: Operation,
    state: Operation.State,
    message: str = "",
    *,
    technical: str = "",
    **params: Any,
) -> None:
    """End an operation; ``params`` fill the message's placeholders when it is shown."""
    op.state = state
    op.message = message
    op.message_params = params
    op.error_detail = technical
    op.finished_at = timezone.now()
    op.lease_expires_at = None
    op.run_after = None
    op.deadline_at = None
    with transaction.atomic():
        _save(
            op,
            "state",
            "message",
            "message_params",
            "error_detail",
            "finished_at",
            "lease_expires_at",
            "run_after",
            "deadline_at",
            "request_ids",
            "progress",
            "step",
        )
        if op.instance_id is not None:
            changes: dict[str, Any] = {"pending_action": "", "pending_operation": None}
            if state == Operation.State.FAILED:
                changes["last_error"] = op.message_text
            elif op.kind != Operation.Kind.RECONCILE:
                changes["last_error"] = ""
            Instance.objects.filter(pk=op.instance_id, pending_operation=op).update(**changes)
        if op.batch_id is not None:
            counter = "succeeded" if state == Operation.State.SUCCEEDED else "failed"
            Batch.objects.filter(pk=op.batch_id).update(**{counter: F(counter) + 1})
            Batch.objects.filter(pk=op.batch_id, finished_at__isnull=True).filter(
                total__lte=F("succeeded") + F("failed")
            ).update(finished_at=op.finished_at)
    logger.info("operation %s %s %s", op.pk, op.kind, state)


def _fail_from_cloud_error(op: Operation, exc: errors.OpenStackError) -> None:
    _record_request_id(op, exc.request_id)
    params: dict[str, Any] = {
        "detail": exc.message,
        "request_id": exc.request_id or "-",
        "step": op.step,
    }
    if isinstance(exc, errors.QuotaExceeded):
        message = gettext_noop(
            "The project's quota is used up, so the cloud refused (%(detail)s; request "
            "%(request_id)s). This is not retried: free some resources or ask for a larger quota."
        )
    elif isinstance(exc, errors.Forbidden):
        message = gettext_noop(
            "The cloud's policy does not allow this (%(detail)s; request %(request_id)s). "
            "This is not retried: ask a cloud administrator."
        )
    elif isinstance(exc, errors.Unavailable):
        params["attempts"] = op.retries + 1
        message = gettext_noop(
            "The cloud did not answer after %(attempts)s tries (%(detail)s; request "
            "%(request_id)s). Try again later."
        )
    elif isinstance(exc, errors.Conflict):
        message = gettext_noop(
            "The cloud refused because of the resource's current state (%(detail)s; request "
            "%(request_id)s)."
        )
    elif isinstance(exc, errors.NotFound):
        message = gettext_noop(
            "The cloud could not find something this needs (%(detail)s; request %(request_id)s)."
        )
    elif isinstance(exc, errors.BadRequest):
        message = gettext_noop(
            "The cloud rejected the request (%(detail)s; request %(request_id)s)."
        )
    else:
        message = gettext_noop("The cloud call failed (%(detail)s; request %(request_id)s).")
    _finish(op, Operation.State.FAILED, message, technical=f"{type(exc).__name__}: {exc}", **params)


def operation_run(*, operation_id: int) -> str:
    """Run an operation's remaining steps; the body of the ``operation_run`` task."""
    if not _claim(operation_id):
        return "skipped"
    op = Operation.objects.select_related("soldier", "instance", "batch").get(pk=operation_id)
    steps = _STEPS[op.kind]
    try:
        index = steps.index(op.step) if op.step else 0
        client = cloud.get_client()
        while index < len(steps):
            name = steps[index]
            if op.step != name or op.deadline_at is None:
                # A step that has to wait may do so until this deadline, counted from its start.
                op.step = name
                op.deadline_at = timezone.now() + _wait_deadline(op.kind)
                op.lease_expires_at = timezone.now() + _lease()
                _save(op, "step", "deadline_at", "lease_expires_at", "progress")
            # (Resuming the step it stopped at: the claim has just renewed the lease.)
            step_reached.send(sender=Operation, operation=op, step=name)
            outcome = _STEP_FUNCTIONS[name](op, client)
            if isinstance(outcome, Wait):
                return _reschedule_wait(op, outcome)
            index += 1
    except _StepFailed as exc:
        _finish(op, Operation.State.FAILED, exc.message, **exc.params)
        return "failed"
    except errors.OpenStackError as exc:
        retryable = isinstance(exc, errors.Unavailable)
        if retryable and op.retries < _max_retries():
            op.retries += 1
            _record_request_id(op, exc.request_id)
            op.error_detail = f"{type(exc).__name__}: {exc}"
            _save(op, "retries", "request_ids", "error_detail")
            _enqueue(op, delay=_retry_delay(op.retries))
            logger.warning("operation %s step %s will retry: %s", op.pk, op.step, exc)
            return "retrying"
        _fail_from_cloud_error(op, exc)
        return "failed"
    except Exception as exc:
        _finish(
            op,
            Operation.State.FAILED,
            gettext_noop("The portal hit an internal error at step %(step)s; staff can retry it."),
            technical="".join(traceback.format_exception_only(exc)).strip(),
            step=op.step,
        )
        raise
    op.step = ""
    _finish(op, Operation.State.SUCCEEDED, _SUCCESS_MESSAGES.get(op.kind, ""))
    return "succeeded"


def _reschedule_wait(op: Operation, wait: Wait) -> str:
    if op.deadline_at is not None and timezone.now() >= op.deadline_at:
        minutes = max(1, round(_wait_deadline(op.kind).total_seconds() / 60))
        _finish(
            op,
            Operation.State.FAILED,
            gettext_noop(
                "The cloud did not finish step %(step)s within %(minutes)s minutes. Check the "
                "VM's state; staff can retry, which resumes from this step."
            ),
            step=op.step,
            minutes=minutes,
        )
        return "failed"
    _enqueue(op, delay=wait.seconds)
    return "waiting"


def operation_retry(*, operation: Operation, requested_by: Any = None) -> Operation:
    """Start a failed operation again from the step where it stopped."""
    with transaction.atomic():
        op = Operation.objects.select_for_update().get(pk=operation.pk)
        if op.state != Operation.State.FAILED:
            raise OperationRefused(gettext_noop("Only a failed operation can be retried."))
        action = _ACTION_OF_KIND.get(op.kind) or op.params.get("action", "")
        if op.instance_id is not None and not Instance.objects.filter(
            pk=op.instance_id, pending_action=""
        ).update(pending_action=action, pending_operation=op):
            raise OperationRefused(
                gettext_noop(
                    "This VM already has an operation in progress; try again when it finishes."
                )
            )
        op.state = Operation.State.QUEUED
        op.retries = 0
        op.message = ""
        op.message_params = {}
        op.finished_at = None
        op.deadline_at = None
        if requested_by is not None:
            op.requested_by = requested_by
        try:
            with transaction.atomic():
                op.save()
        except IntegrityError as exc:
            raise OperationRefused(
                gettext_noop("Another operation on the same target is in progress.")
            ) from exc
        if op.batch_id is not None:
            Batch.objects.filter(pk=op.batch_id, failed__gt=0).update(
                failed=F("failed") - 1, finished_at=None
            )
        _enqueue(op)
    return op


def _create_operation(
    *,
    kind: Operation.Kind,
    lock_key: str,
    soldier: Soldier | None = None,
    instance: Instance | None = None,
    requested_by: Any = None,
    batch: Batch | None = None,
    params: dict[str, Any] | None = None,
) -> Operation:
    """Insert an operation; the partial unique index refuses a second active one per key."""
    try:
        with transaction.atomic():
            return Operation.objects.create(
                kind=kind,
                lock_key=lock_key,
                soldier=soldier,
                instance=instance,
                requested_by=requested_by,
                batch=batch,
                params=params or {},
            )
    except IntegrityError as exc:
        raise OperationRefused(
            gettext_noop(
                "Another operation on the same target is in progress; try again when it finishes."
            )
        ) from exc


# --- onboarding -------------------------------------------------------------------------------


def soldier_create(
    *,
    user: Any,
    service_number: str,
    name: str,
    unit: str = "",
    enlisted_on: date | None = None,
    discharge_on: date | None = None,
    keystone_user_name: str | None = None,
) -> Soldier:
    """Record a soldier (no cloud call); onboarding creates their cloud account."""
    return Soldier.objects.create(
        user=user,
        service_number=service_number,
        name=name,
        unit=unit,
        enlisted_on=enlisted_on,
        discharge_on=discharge_on,
        keystone_user_name=keystone_user_name or user.get_username(),
    )


def _project_name(soldier: Soldier) -> str:
    return f"{settings.OPENSTACK_PROJECT_PREFIX}{soldier.keystone_user_name}"


def soldier_onboard(
    *,
    soldier: Soldier,
    requested_by: Any = None,
    batch: Batch | None = None,
    run_now: bool = False,
) -> Operation:
    """Queue the creation of the soldier's Keystone user, project, roles and network.

    ``run_now`` runs the steps in this process instead (management commands); the operation is
    recorded and resumable either way.
    """
    if soldier.state == Soldier.State.DISABLED:
        raise OperationRefused(gettext_noop("A disabled (discharged) soldier cannot be onboarded."))
    with transaction.atomic():
        Project.objects.get_or_create(soldier=soldier, defaults={"name": _project_name(soldier)})
        op = _create_operation(
            kind=Operation.Kind.ONBOARD,
            lock_key=f"soldier:{soldier.pk}",
            soldier=soldier,
            requested_by=requested_by,
            batch=batch,
        )
        if not run_now:
            _enqueue(op)
    if run_now:
        operation_run(operation_id=op.pk)
        op.refresh_from_db()
    return op


def _soldier_project(op: Operation) -> Project:
    assert op.soldier is not None
    project, _ = Project.objects.get_or_create(
        soldier=op.soldier, defaults={"name": _project_name(op.soldier)}
    )
    return project


def _step_user(op: Operation, client: OpenStackClient) -> None:
    soldier = op.soldier
    assert soldier is not None
    if soldier.keystone_user_id:
        return
    user = client.find_user(soldier.keystone_user_name, domain_id=_domain())
    if user is None:
        try:
            # The first password is never shown: staff issue one with a reset, seen once.
            user = client.create_user(
                name=soldier.keystone_user_name,
                domain_id=_domain(),
                password=secrets.token_urlsafe(24),
                description=f"CodeSquare {soldier.service_number}",
            )
        except errors.Conflict:
            user = client.find_user(soldier.keystone_user_name, domain_id=_domain())
            if user is None:
                raise
    soldier.keystone_user_id = user.id
    soldier.save(update_fields=["keystone_user_id", "updated_at"])


def _step_project(op: Operation, client: OpenStackClient) -> None:
    project = _soldier_project(op)
    if project.keystone_id:
        return
    found = client.find_project(project.name, domain_id=_domain())
    if found is None:
        try:
            assert op.soldier is not None
            found = client.create_project(
                name=project.name,
                domain_id=_domain(),
                description=f"CodeSquare {op.soldier.service_number}",
            )
        except errors.Conflict:
            found = client.find_project(project.name, domain_id=_domain())
            if found is None:
                raise
    project.keystone_id = found.id
    project.save(update_fields=["keystone_id", "updated_at"])


def _step_roles(op: Operation, client: OpenStackClient) -> None:
    project = _soldier_project(op)
    if project.roles_granted:
        return
    assert op.soldier is not None
    client.grant_project_role(
        project_id=project.keystone_id,
        user_id=op.soldier.keystone_user_id,
        role_id=_role_id(client, settings.OPENSTACK_MEMBER_ROLE),
    )
    # The portal's own user needs a role here too: Nova takes a server's project from the token.
    client.grant_project_role(
        project_id=project.keystone_id,
        user_id=client.token().user_id,
        role_id=_role_id(client, settings.OPENSTACK_SERVICE_ROLE),
    )
    project.roles_granted = True
    project.save(update_fields=["roles_granted", "updated_at"])


def _own_network(project: Project) -> ProjectNetwork:
    network, _ = ProjectNetwork.objects.get_or_create(project=project)
    return network


def _project_mode() -> bool:
    return settings.OPENSTACK_NETWORK_MODE == "project"


def _step_network(op: Operation, client: OpenStackClient) -> None:
    project = _soldier_project(op)
    if not _project_mode():
        if project.network_id:
            return
        shared = _find_network(client, settings.OPENSTACK_SHARED_NETWORK)
        if shared is None:
            raise _StepFailed(
                gettext_noop(
                    "The shared network %(name)s does not exist; check OPENSTACK_SHARED_NETWORK."
                ),
                name=settings.OPENSTACK_SHARED_NETWORK,
            )
        project.network_id = shared.id
        project.save(update_fields=["network_id", "updated_at"])
        return
    own = _own_network(project)
    if own.network_id:
        return
    name = f"{project.name}-net"
    network = _find_network(client, name, project_id=project.keystone_id) or client.create_network(
        name=name, project_id=project.keystone_id
    )
    own.network_id = network.id
    own.save(update_fields=["network_id"])
    project.network_id = network.id
    project.save(update_fields=["network_id", "updated_at"])


def _step_subnet(op: Operation, client: OpenStackClient) -> None:
    if not _project_mode():
        return
    own = _own_network(_soldier_project(op))
    if own.subnet_id:
        return
    project = own.project
    subnets = client.list_subnets(network_id=own.network_id)
    subnet = subnets[0] if subnets else None
    if subnet is None:
        subnet = client.create_subnet(
            name=f"{project.name}-subnet",
            network_id=own.network_id,
            cidr=settings.OPENSTACK_PROJECT_CIDR,
            project_id=project.keystone_id,
            dns_nameservers=list(settings.OPENSTACK_DNS_NAMESERVERS),
        )
    own.subnet_id = subnet.id
    own.save(update_fields=["subnet_id"])


def _step_router(op: Operation, client: OpenStackClient) -> None:
    if not _project_mode():
        return
    own = _own_network(_soldier_project(op))
    if own.router_id:
        return
    project = own.project
    name = f"{project.name}-router"
    routers = client.list_routers(name=name, project_id=project.keystone_id)
    router = routers[0] if routers else None
    if router is None:
        router = client.create_router(
            name=name,
            project_id=project.keystone_id,
            external_network_id=_external_network_id(client),
        )
    own.router_id = router.id
    own.save(update_fields=["router_id"])


def _step_router_interface(op: Operation, client: OpenStackClient) -> None:
    if not _project_mode():
        return
    own = _own_network(_soldier_project(op))
    if own.interface_attached:
        return
    attached = any(
        any(ip.subnet_id == own.subnet_id for ip in p.fixed_ips)
        for p in client.list_ports(device_id=own.router_id)
    )
    if not attached:
        client.add_router_interface(router_id=own.router_id, subnet_id=own.subnet_id)
    own.interface_attached = True
    own.save(update_fields=["interface_attached"])


def _step_activate(op: Operation, client: OpenStackClient) -> None:
    assert op.soldier is not None
    if op.soldier.state == Soldier.State.PENDING:
        op.soldier.state = Soldier.State.ACTIVE
        op.soldier.save(update_fields=["state", "updated_at"])


def _domain() -> str:
    return str(settings.OPENSTACK_DOMAIN)


_role_ids: dict[tuple[str, str], str] = {}


def _role_id(client: OpenStackClient, name: str) -> str:
    # A role's id never changes in a cloud's life; look each up once per cloud.
    key = (client.config.auth_url, name)
    if key not in _role_ids:
        _role_ids[key] = client.find_role(name).id
    return _role_ids[key]


def _find_network(
    client: OpenStackClient, name_or_id: str, *, project_id: str | None = None
) -> Network | None:
    """A network by name (within ``project_id`` if given), or by id."""
    if not name_or_id:
        return None
    found = client.list_networks(name=name_or_id, project_id=project_id)
    if found:
        return found[0]
    if not _UUID.fullmatch(name_or_id):
        return None
    try:
        return client.get_network(name_or_id)
    except errors.NotFound:
        return None


_external_network_cache: dict[tuple[str, str], str] = {}


def _external_network_id(client: OpenStackClient) -> str:
    name = settings.OPENSTACK_EXTERNAL_NETWORK
    key = (client.config.auth_url, name)
    if key not in _external_network_cache:
        network = _find_network(client, name)
        if network is None:
            raise _StepFailed(
                gettext_noop(
                    "The external network %(name)s does not exist; "
                    "check OPENSTACK_EXTERNAL_NETWORK."
                ),
                name=name,
            )
        _external_network_cache[key] = network.id
    return _external_network_cache[key]


def cloud_is_configured() -> bool:
    """Whether OS_CLOUD/clouds.yaml or OS_* variables name a cloud (no call is made)."""
    try:
        cloud.get_client()
    except errors.ConfigurationError:
        return False
    return True


# --- templates -------------------------------------------------------------------------------


def vm_template_from_cloud(
    *, name: str, image_name: str | None = None, flavor_name: str | None = None
) -> VmTemplate:
    """Create or update a template from the cloud's image and flavor of these names.

    Without names it takes the smallest active image and the smallest flavor it fits on.
    """
    client = cloud.get_client()
    images = client.list_images(name=image_name) if image_name else client.list_images()
    flavors = [f for f in client.list_flavors() if not flavor_name or f.name == flavor_name]
    if not images or not flavors:
        raise OperationRefused(
            gettext_noop("The cloud has no image %(image)s or no flavor %(flavor)s."),
            image=image_name or "*",
            flavor=flavor_name or "*",
        )
    # The smallest image, on the smallest flavor whose disk and memory it fits.
    image = min(images, key=lambda i: (i.size_bytes or 0, i.name))
    fitting = [
        f
        for f in flavors
        if f.ram_mib >= image.min_ram_mib
        and f.disk_gib >= image.min_disk_gib
        and (f.disk_gib == 0 or f.disk_gib * 2**30 >= (image.size_bytes or 0))
    ]
    if not fitting:
        raise OperationRefused(
            gettext_noop("No flavor of the cloud fits the image %(image)s."), image=image.name
        )
    flavor = min(fitting, key=lambda f: (f.ram_mib, f.disk_gib, f.name))
    template, _ = VmTemplate.objects.update_or_create(
        name=name,
        defaults={
            "image_id": image.id,
            "image_name": image.name,
            "flavor_id": flavor.id,
            "flavor_name": flavor.name,
        },
    )
    return template


# --- launch ----------------------------------------------------------------------------------


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
) -> Instance:
    """Queue a VM from ``template`` in the soldier's project, with a floating IP.

    ``host`` forces a compute host ("zone:host"); the cloud allows that to admins only.
    """
    if soldier.state == Soldier.State.DISABLED:
        raise OperationRefused(gettext_noop("A disabled (discharged) soldier cannot get a VM."))
    if not template.is_active:
        raise OperationRefused(
            gettext_noop("The template %(name)s is not offered."), name=template.name
        )
    with transaction.atomic():
        project, _ = Project.objects.get_or_create(
            soldier=soldier, defaults={"name": _project_name(soldier)}
        )
        instance = Instance.objects.create(
            project=project,
            owner=soldier,
            name=name or _instance_name(soldier, template),
            template=template,
            image_id=template.image_id,
            image_name=template.image_name,
            flavor_id=template.flavor_id,
            flavor_name=template.flavor_name,
            requested_host=host,
            availability_zone=template.availability_zone,
            pending_action=Instance.Action.LAUNCH,
        )
        op = _create_operation(
            kind=Operation.Kind.LAUNCH,
            lock_key=f"instance:{instance.pk}",
            soldier=soldier,
            instance=instance,
            requested_by=requested_by,
            batch=batch,
        )
        Instance.objects.filter(pk=instance.pk).update(pending_operation=op)
        instance.pending_operation = op
        _enqueue(op)
    return instance


def _instance(op: Operation) -> Instance:
    assert op.instance_id is not None
    return Instance.objects.select_related("project", "template").get(pk=op.instance_id)


def _step_onboard(op: Operation, client: OpenStackClient) -> Wait | None:
    """Make sure the soldier is onboarded, through their own (serialized) onboard operation.

    Onboarding twice at once could create two networks (Neutron allows duplicate names), so a
    launch never onboards itself: it starts or joins the one onboard operation and waits for it.
    """
    assert op.soldier is not None
    soldier = Soldier.objects.get(pk=op.soldier.pk)
    if soldier.state == Soldier.State.ACTIVE:
        return None
    if soldier.state == Soldier.State.DISABLED:
        raise _StepFailed(gettext_noop("A disabled (discharged) soldier cannot get a VM."))
    started = op.progress.get("onboard_operation")
    onboarding = Operation.objects.filter(pk=int(started)).first() if started else None
    if onboarding is not None and onboarding.state == Operation.State.FAILED:
        raise _StepFailed(
            gettext_noop("Onboarding the soldier failed: %(reason)s"),
            reason=onboarding.message_text,
        )
    if onboarding is None or onboarding.is_finished:
        # Not joined yet, or it succeeded and the soldier changed since: join (or start) one.
        running = (
            Operation.objects.active().filter(soldier=soldier, kind=Operation.Kind.ONBOARD).first()
        )
        if running is None:
            try:
                running = soldier_onboard(soldier=soldier, requested_by=op.requested_by)
            except OperationRefused:
                return Wait(_poll_seconds())  # another operation holds the soldier
        op.progress["onboard_operation"] = running.pk
        _save(op, "progress")
    return Wait(_poll_seconds())


def _step_resolve(op: Operation, client: OpenStackClient) -> None:
    instance = _instance(op)
    if instance.network_id and (instance.security_group_id or op.progress.get("sg_name")):
        return
    template = instance.template
    project = instance.project
    network_id = (template.network_id if template else "") or project.network_id
    if not network_id:
        raise _StepFailed(
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
    instance.save(update_fields=["network_id", "security_group_id", "updated_at"])


def _find_tagged_server(client: OpenStackClient, instance: Instance) -> Server | None:
    tag = str(instance.request_tag)
    for server in client.list_servers(
        all_projects=True,
        project_id=instance.project.keystone_id,
        name=f"^{re.escape(instance.name)}$",
    ):
        if server.metadata.get(REQUEST_TAG_KEY) == tag:
            return server
    return None


def _step_server(op: Operation, client: OpenStackClient) -> None:
    instance = _instance(op)
    if instance.server_id:
        return
    server = _find_tagged_server(client, instance)
    if server is None:
        zone = instance.availability_zone or None
        if instance.requested_host and not zone:
            zone = "nova"
        group = instance.security_group_id or op.progress.get("sg_name", "default")
        server_id = client.for_project(instance.project.keystone_id).create_server(
            name=instance.name,
            image_id=instance.image_id,
            flavor_id=instance.flavor_id,
            network_ids=[instance.network_id],
            security_group_ids=[group],
            availability_zone=zone,
            host=instance.requested_host or None,
            metadata={REQUEST_TAG_KEY: str(instance.request_tag)},
        )
    else:
        server_id = server.id
    instance.server_id = server_id
    instance.status = ServerStatus.BUILD
    instance.save(update_fields=["server_id", "status", "updated_at"])


def _mirror(instance: Instance, server: Server, now: datetime) -> None:
    """Copy a server's decoded state onto its mirror row (no save)."""
    instance.status = server.status_raw or str(server.status)
    instance.vm_state = str(server.vm_state)
    instance.task_state = server.task_state or ""
    instance.power_state = server.power_state_raw
    instance.launched_at = server.launched_at
    instance.terminated_at = server.terminated_at
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
    floating = server.floating_addresses
    instance.fixed_ip = fixed[0].addr if fixed else instance.fixed_ip
    instance.floating_ip = floating[0].addr if floating else ""
    if fixed and not instance.network_name:
        instance.network_name = fixed[0].network
    instance.host = server.host or ""
    instance.availability_zone = server.availability_zone or instance.availability_zone
    if server.flavor and server.flavor.name:
        instance.flavor_name = server.flavor.name
    if server.image_id:
        instance.image_id = server.image_id
    instance.deleted_outside_portal = False
    instance.last_synced_at = now


_MIRROR_FIELDS = [
    "status",
    "vm_state",
    "task_state",
    "power_state",
    "launched_at",
    "terminated_at",
    "addresses",
    "fixed_ip",
    "floating_ip",
    "network_name",
    "host",
    "availability_zone",
    "flavor_name",
    "image_id",
    "deleted_outside_portal",
    "last_synced_at",
]


def _refresh(instance: Instance, client: OpenStackClient) -> Server:
    assert instance.server_id
    server = client.get_server(instance.server_id)
    before = [getattr(instance, f) for f in _MIRROR_FIELDS if f != "last_synced_at"]
    _mirror(instance, server, timezone.now())
    after = [getattr(instance, f) for f in _MIRROR_FIELDS if f != "last_synced_at"]
    # A build polled every few seconds mostly sees nothing new; skip those writes.
    if before != after or instance.last_synced_at is None:
        instance.save(update_fields=[*_MIRROR_FIELDS, "updated_at"])
    return server


def _step_wait_active(op: Operation, client: OpenStackClient) -> Wait | None:
    instance = _instance(op)
    server = _refresh(instance, client)
    if server.status is ServerStatus.ACTIVE:
        if server.created and server.launched_at:
            op.progress["build_seconds"] = (server.launched_at - server.created).total_seconds()
            _save(op, "progress")
        return None
    if server.status is ServerStatus.ERROR:
        fault = server.fault.message if server.fault else gettext("no reason given")
        raise _StepFailed(
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
        _save(op, "progress")
        elapsed = (timezone.now() - server.created).total_seconds()
        return Wait(max(_poll_seconds(), _expected_build_seconds() - elapsed))
    return Wait(_poll_seconds())


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


def _step_port(op: Operation, client: OpenStackClient) -> Wait | None:
    instance = _instance(op)
    if instance.port_id:
        return None
    assert instance.server_id
    ports = client.list_ports(device_id=instance.server_id)
    if not ports:
        return Wait(_poll_seconds())
    chosen = next((p for p in ports if p.network_id == instance.network_id), ports[0])
    instance.port_id = chosen.id
    if chosen.fixed_ips:
        instance.fixed_ip = chosen.fixed_ips[0].ip_address
    instance.save(update_fields=["port_id", "fixed_ip", "updated_at"])
    return None


def _fip_description(instance: Instance) -> str:
    return f"{FIP_DESCRIPTION_PREFIX}{instance.request_tag}"


def _remember_fip(
    fip: CloudFloatingIP, *, instance: Instance | None, created_by_portal: bool
) -> FloatingIP:
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
            "last_synced_at": timezone.now(),
        },
    )
    return record


def _step_floating_ip(op: Operation, client: OpenStackClient) -> None:
    instance = _instance(op)
    if instance.floating_ips.filter(released_at__isnull=True).exists():
        return
    existing = client.list_floating_ips(port_id=instance.port_id)
    if existing:
        # Either ours from a run that stopped before recording it (our description says so),
        # or one attached by hand, which the portal mirrors but will never release.
        fip = existing[0]
        _remember_fip(
            fip, instance=instance, created_by_portal=fip.description == _fip_description(instance)
        )
    else:
        # Created in the soldier's project so it counts against their quota, not the portal's.
        fip = client.for_project(instance.project.keystone_id).create_floating_ip(
            floating_network_id=_external_network_id(client),
            port_id=instance.port_id,
            description=_fip_description(instance),
        )
        _remember_fip(fip, instance=instance, created_by_portal=True)
    instance.floating_ip = fip.floating_ip_address
    instance.save(update_fields=["floating_ip", "updated_at"])


def _step_sync(op: Operation, client: OpenStackClient) -> None:
    _refresh(_instance(op), client)


# --- delete ----------------------------------------------------------------------------------


def _claim_instance(instance: Instance, action: Instance.Action) -> None:
    """The concurrency guard: one pending action per VM, set by a conditional UPDATE.

    Under PostgreSQL the row lock makes a concurrent caller wait and then see the action already
    set; under SQLite the IMMEDIATE transaction serializes writers the same way.
    """
    locked = Instance.objects.select_for_update().get(pk=instance.pk)
    if locked.pending_action or not Instance.objects.filter(
        pk=instance.pk, pending_action=""
    ).update(pending_action=action):
        raise OperationRefused(
            gettext_noop(
                "This VM already has an operation in progress (%(action)s); "
                "try again when it finishes."
            ),
            action=locked.get_pending_action_display() or action.label,
        )
    instance.status = locked.status
    instance.pending_action = action


def instance_delete(
    *, instance: Instance, requested_by: Any = None, batch: Batch | None = None
) -> Operation:
    """Queue the leak-proof delete: portal-owned floating IPs, then the server, then the mirror."""
    with transaction.atomic():
        _claim_instance(instance, Instance.Action.DELETE)
        if instance.status == "DELETED":
            raise OperationRefused(gettext_noop("This VM is already deleted."))
        op = _create_operation(
            kind=Operation.Kind.DELETE,
            lock_key=f"instance:{instance.pk}",
            soldier=instance.owner,
            instance=instance,
            requested_by=requested_by,
            batch=batch,
        )
        Instance.objects.filter(pk=instance.pk).update(pending_operation=op)
        _enqueue(op)
    return op


def _step_release_floating_ips(op: Operation, client: OpenStackClient) -> None:
    instance = _instance(op)
    owned = list(instance.floating_ips.filter(created_by_portal=True, released_at__isnull=True))
    if instance.port_id:
        # A launch stopped between creating a floating IP and recording it leaves one that
        # carries our description; it is ours too. Anything else on the port is left alone.
        known = {f.neutron_id for f in owned}
        for fip in client.list_floating_ips(port_id=instance.port_id):
            if fip.id not in known and fip.description == _fip_description(instance):
                owned.append(_remember_fip(fip, instance=instance, created_by_portal=True))
    for record in owned:
        with contextlib.suppress(errors.NotFound):
            client.delete_floating_ip(record.neutron_id)
        record.released_at = timezone.now()
        record.save(update_fields=["released_at"])
    instance.floating_ip = ""
    instance.save(update_fields=["floating_ip", "updated_at"])


def _step_delete_server(op: Operation, client: OpenStackClient) -> None:
    instance = _instance(op)
    server_id = instance.server_id
    if not server_id:
        # A launch that never reached the cloud may still have created a tagged server.
        found = _find_tagged_server(client, instance) if instance.project.keystone_id else None
        if found is None:
            return
        server_id = found.id
        instance.server_id = server_id
        instance.save(update_fields=["server_id", "updated_at"])
    with contextlib.suppress(errors.NotFound):
        client.delete_server(server_id)


def _step_wait_gone(op: Operation, client: OpenStackClient) -> Wait | None:
    instance = _instance(op)
    if not instance.server_id:
        return None
    try:
        server = client.get_server(instance.server_id)
    except errors.NotFound:
        return None
    if server.status is ServerStatus.DELETED:
        return None
    _mirror(instance, server, timezone.now())
    instance.save(update_fields=[*_MIRROR_FIELDS, "updated_at"])
    return Wait(_poll_seconds())


def _mark_terminated(instance: Instance, now: datetime) -> None:
    instance.status = "DELETED"
    instance.vm_state = "deleted"
    instance.task_state = ""
    instance.power_state = None
    instance.floating_ip = ""
    instance.terminated_at = instance.terminated_at or now
    instance.last_synced_at = now


def _step_mark_terminated(op: Operation, client: OpenStackClient) -> None:
    instance = _instance(op)
    _mark_terminated(instance, timezone.now())
    instance.save(update_fields=[*_MIRROR_FIELDS, "updated_at"])


# --- power -----------------------------------------------------------------------------------

_POWER_ALLOWED: dict[str, set[str]] = {
    Instance.Action.START: {"SHUTOFF"},
    Instance.Action.STOP: {"ACTIVE"},
    Instance.Action.REBOOT_SOFT: {"ACTIVE"},
    Instance.Action.REBOOT_HARD: {"ACTIVE", "SHUTOFF", "ERROR", "REBOOT", "HARD_REBOOT"},
}
_POWER_TARGET = {
    Instance.Action.START: "ACTIVE",
    Instance.Action.STOP: "SHUTOFF",
    Instance.Action.REBOOT_SOFT: "ACTIVE",
    Instance.Action.REBOOT_HARD: "ACTIVE",
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
    with transaction.atomic():
        _claim_instance(instance, action)
        if instance.status not in _POWER_ALLOWED[action]:
            raise OperationRefused(
                gettext_noop("%(action)s is not possible while the VM is %(status)s."),
                action=Instance.Action(action).label,
                status=instance.status or "-",
            )
        op = _create_operation(
            kind=Operation.Kind.POWER,
            lock_key=f"instance:{instance.pk}",
            soldier=instance.owner,
            instance=instance,
            requested_by=requested_by,
            batch=batch,
            params={"action": str(action)},
        )
        Instance.objects.filter(pk=instance.pk).update(pending_operation=op)
        _enqueue(op)
    return op


def _step_power_action(op: Operation, client: OpenStackClient) -> None:
    if op.progress.get("sent"):
        return
    instance = _instance(op)
    assert instance.server_id
    action = op.params["action"]
    server = _refresh(instance, client)
    already = action in (Instance.Action.START, Instance.Action.STOP) and (
        server.status_raw == _POWER_TARGET[action] and not server.task_state
    )
    if not already:
        if action == Instance.Action.START:
            client.start_server(instance.server_id)
        elif action == Instance.Action.STOP:
            client.stop_server(instance.server_id)
        else:
            kind = RebootType.HARD if action == Instance.Action.REBOOT_HARD else RebootType.SOFT
            client.reboot_server(instance.server_id, kind=kind)
    op.progress["sent"] = True
    _save(op, "progress")


def _step_power_wait(op: Operation, client: OpenStackClient) -> Wait | None:
    instance = _instance(op)
    server = _refresh(instance, client)
    if server.status_raw == _POWER_TARGET[op.params["action"]] and not server.task_state:
        return None
    if server.status is ServerStatus.ERROR:
        raise _StepFailed(
            gettext_noop("The VM went into the ERROR state; ask staff to look at it.")
        )
    return Wait(_poll_seconds())


# --- passwords (synchronous: a password is never stored or queued) ---------------------------


def _synchronous_operation(
    *, kind: Operation.Kind, soldier: Soldier, requested_by: Any
) -> Operation:
    now = timezone.now()
    return Operation.objects.create(
        kind=kind,
        soldier=soldier,
        requested_by=requested_by,
        state=Operation.State.RUNNING,
        attempts=1,
        started_at=now,
    )


def soldier_password_change(
    *,
    soldier: Soldier,
    original_password: str,
    new_password: str,
    requested_by: Any = None,
) -> Operation:
    """A soldier changes their own cloud password, proving the original (Keystone 204)."""
    if not soldier.keystone_user_id:
        raise OperationRefused(gettext_noop("This soldier has no cloud account yet."))
    op = _synchronous_operation(
        kind=Operation.Kind.PASSWORD_CHANGE, soldier=soldier, requested_by=requested_by
    )
    try:
        cloud.get_client().change_own_password(
            soldier.keystone_user_id,
            original_password=original_password,
            new_password=new_password,
        )
    except errors.Unauthorized as exc:
        _record_request_id(op, exc.request_id)
        _finish(op, Operation.State.FAILED, gettext_noop("The current password is not correct."))
    except errors.BadRequest as exc:
        _record_request_id(op, exc.request_id)
        _finish(
            op,
            Operation.State.FAILED,
            gettext_noop("The cloud did not accept the new password: %(detail)s"),
            detail=exc.message,
        )
    except errors.OpenStackError as exc:
        _fail_from_cloud_error(op, exc)
    else:
        _finish(op, Operation.State.SUCCEEDED, gettext_noop("The password was changed."))
    return op


@dataclass(frozen=True)
class PasswordReset:
    """The outcome of a staff reset; ``password`` is shown once and never stored."""

    operation: Operation
    password: str | None = field(repr=False)


def soldier_password_reset(
    *, soldier: Soldier, requested_by: Any = None, new_password: str | None = None
) -> PasswordReset:
    """Staff set a new cloud password for a soldier (Keystone PATCH); shown once."""
    if not soldier.keystone_user_id:
        raise OperationRefused(gettext_noop("This soldier has no cloud account yet."))
    password = new_password or secrets.token_urlsafe(12)
    op = _synchronous_operation(
        kind=Operation.Kind.PASSWORD_RESET, soldier=soldier, requested_by=requested_by
    )
    try:
        cloud.get_client().reset_user_password(soldier.keystone_user_id, password)
    except errors.OpenStackError as exc:
        _fail_from_cloud_error(op, exc)
        return PasswordReset(operation=op, password=None)
    _finish(op, Operation.State.SUCCEEDED, gettext_noop("A new password was set."))
    return PasswordReset(operation=op, password=password)


# --- reconcile -------------------------------------------------------------------------------


def cloud_reconcile(*, requested_by: Any = None, run_now: bool = False) -> Operation:
    """Start a sync pass (queued, or run here with ``run_now``); one pass at a time."""
    with transaction.atomic():
        op = _create_operation(
            kind=Operation.Kind.RECONCILE, lock_key="reconcile", requested_by=requested_by
        )
        if not run_now:
            _enqueue(op)
    if run_now:
        operation_run(operation_id=op.pk)
        op.refresh_from_db()
    return op


def _step_reconcile(op: Operation, client: OpenStackClient) -> None:
    """Mirror every server and floating IP from two listings, whatever their number."""
    servers = {s.id: s for s in client.list_servers(all_projects=True)}
    fips = client.list_floating_ips()
    now = timezone.now()
    stats = {"servers": len(servers), "floating_ips": len(fips)}

    projects = {p.keystone_id: p for p in Project.objects.exclude(keystone_id="")}
    instances = list(
        Instance.objects.filter(server_id__isnull=False)
        .exclude(status="DELETED")
        .select_related("project")
    )
    known_ids = set(
        Instance.objects.filter(server_id__isnull=False).values_list("server_id", flat=True)
    )
    updated: list[Instance] = []
    vanished: list[Instance] = []
    for instance in instances:
        if instance.pending_action:
            continue  # its operation refreshes it; a stale listing must not overwrite that
        server = servers.get(instance.server_id or "")
        if server is not None and server.status is not ServerStatus.DELETED:
            _mirror(instance, server, now)
            updated.append(instance)
        else:
            _mark_terminated(instance, now)
            instance.deleted_outside_portal = True
            vanished.append(instance)
    Instance.objects.bulk_update(updated + vanished, [*_MIRROR_FIELDS], batch_size=500)
    stats["updated"] = len(updated)
    stats["deleted_outside"] = len(vanished)

    adopted: list[Instance] = []
    unowned: list[Server] = []
    for server in servers.values():
        if server.id in known_ids or server.status is ServerStatus.DELETED:
            continue
        project = projects.get(server.project_id)
        if project is None:
            unowned.append(server)
            continue
        instance = Instance(
            server_id=server.id,
            project=project,
            owner_id=project.soldier_id,
            name=server.name,
        )
        _mirror(instance, server, now)
        adopted.append(instance)
    Instance.objects.bulk_create(adopted, batch_size=500)
    stats["adopted"] = len(adopted)

    stats.update(_reconcile_floating_ips(fips, servers, now))
    _record_drift(
        Drift.Kind.UNOWNED_SERVER,
        {s.id: (s.project_id, s.name) for s in unowned},
        now,
    )
    _record_drift(
        Drift.Kind.DELETED_OUTSIDE,
        {i.server_id or "": (i.project.keystone_id, i.name) for i in vanished},
        now,
        resolve_missing=False,
    )
    stats["unowned_servers"] = len(unowned)
    op.progress["stats"] = stats
    _save(op, "progress")


def _reconcile_floating_ips(
    fips: Sequence[CloudFloatingIP], servers: dict[str, Server], now: datetime
) -> dict[str, int]:
    by_address: dict[str, str] = {}
    for server in servers.values():
        for address in server.floating_addresses:
            by_address[address.addr] = server.id
    instance_of = dict(
        Instance.objects.filter(server_id__in=set(by_address.values())).values_list(
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
        server_id = by_address.get(fip.floating_ip_address)
        instance_pk = instance_of.get(server_id) if server_id else None
        record = records.get(fip.id)
        if record is None:
            if instance_pk is None and not fip.description.startswith(FIP_DESCRIPTION_PREFIX):
                continue  # not ours and not on one of our VMs: none of the portal's business
            record = FloatingIP(
                neutron_id=fip.id,
                created_by_portal=fip.description.startswith(FIP_DESCRIPTION_PREFIX),
            )
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
    gone = [r for key, r in records.items() if key not in seen]
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
    _record_drift(Drift.Kind.ORPHAN_FLOATING_IP, orphans, now)
    return {"orphan_floating_ips": len(orphans), "floating_ips_released_outside": len(gone)}


def _record_drift(
    kind: Drift.Kind,
    found: dict[str, tuple[str, str]],
    now: datetime,
    *,
    resolve_missing: bool = True,
) -> None:
    """Upsert one row per drifting resource; mark resolved what no longer drifts."""
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


# --- discharge -------------------------------------------------------------------------------


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
    """Queue a discharge: delete every VM, disable the user, tear down the owned network."""
    with transaction.atomic():
        op = _create_operation(
            kind=Operation.Kind.DISCHARGE,
            lock_key=f"soldier:{soldier.pk}",
            soldier=soldier,
            requested_by=requested_by,
        )
        _enqueue(op)
    return op


def soldiers_discharge_due(*, today: date | None = None) -> list[Operation]:
    """Start a discharge for every soldier whose (possibly postponed) date has passed."""
    today = today or seoul_today()
    due = Soldier.objects.exclude(state=Soldier.State.DISABLED).filter(
        Q(discharge_postponed_until__isnull=True, discharge_on__lt=today)
        | Q(discharge_postponed_until__lt=today, discharge_on__lt=today)
    )
    started = []
    for soldier in due:
        try:
            started.append(soldier_discharge(soldier=soldier))
        except OperationRefused:
            continue  # something is already running for this soldier; next tick tries again
    return started


def _step_discharge_delete_vms(op: Operation, client: OpenStackClient) -> Wait | None:
    assert op.soldier is not None
    busy = False
    children: list[int] = list(op.progress.get("children", []))
    for instance in op.soldier.instances.exclude(status="DELETED"):
        if instance.pending_action == Instance.Action.DELETE:
            continue
        try:
            child = instance_delete(instance=instance, requested_by=op.requested_by)
        except OperationRefused:
            busy = True  # another action is running on it; try again after it finishes
            continue
        children.append(child.pk)
    op.progress["children"] = children
    _save(op, "progress")
    return Wait(_poll_seconds()) if busy else None


def _step_discharge_wait_vms(op: Operation, client: OpenStackClient) -> Wait | None:
    assert op.soldier is not None
    failed = Operation.objects.filter(
        pk__in=op.progress.get("children", []), state=Operation.State.FAILED
    ).first()
    if failed is not None:
        raise _StepFailed(
            gettext_noop(
                "Deleting VM %(name)s failed (%(reason)s); retry it, then retry the discharge."
            ),
            name=failed.instance.name if failed.instance else "-",
            reason=failed.message_text,
        )
    if op.soldier.instances.exclude(status="DELETED").exists():
        return Wait(_poll_seconds())
    return None


def _step_disable_user(op: Operation, client: OpenStackClient) -> None:
    assert op.soldier is not None
    if op.soldier.keystone_user_id:
        with contextlib.suppress(errors.NotFound):
            client.disable_user(op.soldier.keystone_user_id)


def _teardown_network(op: Operation) -> ProjectNetwork | None:
    assert op.soldier is not None
    return ProjectNetwork.objects.filter(
        project__soldier=op.soldier, removed_at__isnull=True
    ).first()


def _step_remove_router_interface(op: Operation, client: OpenStackClient) -> None:
    own = _teardown_network(op)
    if own and own.router_id and own.subnet_id and own.interface_attached:
        with contextlib.suppress(errors.NotFound):
            client.remove_router_interface(own.router_id, own.subnet_id)
        own.interface_attached = False
        own.save(update_fields=["interface_attached"])


def _delete_owned(op: Operation, attribute: str, delete: Callable[[str], None]) -> None:
    own = _teardown_network(op)
    if own is None or not getattr(own, attribute):
        return
    with contextlib.suppress(errors.NotFound):
        delete(getattr(own, attribute))
    setattr(own, attribute, "")
    own.save(update_fields=[attribute])


def _step_delete_router(op: Operation, client: OpenStackClient) -> None:
    _delete_owned(op, "router_id", client.delete_router)


def _step_delete_subnet(op: Operation, client: OpenStackClient) -> None:
    _delete_owned(op, "subnet_id", client.delete_subnet)


def _step_delete_network(op: Operation, client: OpenStackClient) -> None:
    own = _teardown_network(op)
    _delete_owned(op, "network_id", client.delete_network)
    if own is not None:
        ProjectNetwork.objects.filter(pk=own.pk).update(removed_at=timezone.now())
        Project.objects.filter(pk=own.project_id).update(network_id="")


def _step_mark_disabled(op: Operation, client: OpenStackClient) -> None:
    assert op.soldier is not None
    op.soldier.state = Soldier.State.DISABLED
    op.soldier.save(update_fields=["state", "updated_at"])


# --- batches ---------------------------------------------------------------------------------


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
        batch.total = batch.operations.count()
        batch.save(update_fields=["total"])
    return batch, refusals


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
        batch.total = batch.operations.count()
        batch.save(update_fields=["total"])
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


# --- the periodic scheduler ------------------------------------------------------------------


@dataclass
class TickReport:
    resumed: int = 0
    reconcile_started: bool = False
    discharges_started: int = 0


def operations_resume_stale(*, now: datetime | None = None) -> int:
    """Re-enqueue operations whose worker died (lease expired) or whose task was lost."""
    from django_tasks_db.models import DBTaskResult

    now = now or timezone.now()
    grace = timedelta(seconds=_setting("OPERATION_STALE_GRACE_SECONDS", 60))
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
            _enqueue(op)
        resumed += 1
    return resumed


def _reconcile_due(now: datetime) -> bool:
    interval = timedelta(seconds=_setting("RECONCILE_INTERVAL_SECONDS", 300))
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


# --- the step tables -------------------------------------------------------------------------

_ONBOARD_STEPS = [
    "user",
    "project",
    "roles",
    "network",
    "subnet",
    "router",
    "router_interface",
    "activate",
]

_STEPS: dict[str, list[str]] = {
    Operation.Kind.ONBOARD: _ONBOARD_STEPS,
    Operation.Kind.LAUNCH: [
        "onboard",
        "resolve",
        "server",
        "wait_active",
        "port",
        "floating_ip",
        "sync",
    ],
    Operation.Kind.DELETE: ["release_floating_ips", "delete_server", "wait_gone", "terminated"],
    Operation.Kind.POWER: ["power_action", "power_wait"],
    Operation.Kind.RECONCILE: ["reconcile"],
    Operation.Kind.DISCHARGE: [
        "delete_vms",
        "wait_vms",
        "disable_user",
        "remove_router_interface",
        "delete_router",
        "delete_subnet",
        "delete_network",
        "disabled",
    ],
}

_STEP_FUNCTIONS: dict[str, Callable[[Operation, OpenStackClient], Wait | None]] = {
    "user": _step_user,
    "project": _step_project,
    "roles": _step_roles,
    "network": _step_network,
    "subnet": _step_subnet,
    "router": _step_router,
    "router_interface": _step_router_interface,
    "activate": _step_activate,
    "onboard": _step_onboard,
    "resolve": _step_resolve,
    "server": _step_server,
    "wait_active": _step_wait_active,
    "port": _step_port,
    "floating_ip": _step_floating_ip,
    "sync": _step_sync,
    "release_floating_ips": _step_release_floating_ips,
    "delete_server": _step_delete_server,
    "wait_gone": _step_wait_gone,
    "terminated": _step_mark_terminated,
    "power_action": _step_power_action,
    "power_wait": _step_power_wait,
    "reconcile": _step_reconcile,
    "delete_vms": _step_discharge_delete_vms,
    "wait_vms": _step_discharge_wait_vms,
    "disable_user": _step_disable_user,
    "remove_router_interface": _step_remove_router_interface,
    "delete_router": _step_delete_router,
    "delete_subnet": _step_delete_subnet,
    "delete_network": _step_delete_network,
    "disabled": _step_mark_disabled,
}

_ACTION_OF_KIND: dict[str, str] = {
    Operation.Kind.LAUNCH: Instance.Action.LAUNCH,
    Operation.Kind.DELETE: Instance.Action.DELETE,
}

_SUCCESS_MESSAGES: dict[str, str] = {
    Operation.Kind.ONBOARD: gettext_noop("The soldier's cloud account and project are ready."),
    Operation.Kind.LAUNCH: gettext_noop("The VM is running and reachable at its floating IP."),
    Operation.Kind.DELETE: gettext_noop("The VM and its floating IP were deleted."),
    Operation.Kind.POWER: gettext_noop("The power action finished."),
    Operation.Kind.RECONCILE: gettext_noop("The portal is in sync with the cloud."),
    Operation.Kind.DISCHARGE: gettext_noop(
        "The soldier's VMs were deleted and their account disabled."
    ),
}
