"""Onboarding: the soldier's Keystone user, project, role grants and a network VMs can use.

Also the soldier record itself (from the roster or added by hand) and what a VM template can
boot (the cloud's images and flavors).
"""

from __future__ import annotations

import re
import secrets
from datetime import date
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext_noop

from portal import cloud, validation
from portal.models import (
    Batch,
    Operation,
    Project,
    ProjectNetwork,
    Soldier,
    VmTemplate,
)
from portal.openstack import Flavor, Image, OpenStackClient, errors
from portal.openstack.types import Network, Router, Subnet, User
from portal.openstack.types import Project as CloudProject
from portal.operations.engine import create_once, create_operation, enqueue, fenced, operation_run
from portal.operations.errors import OperationRefused, StepFailed


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
    """Record a soldier (no cloud call); onboarding creates their cloud account.

    Everything the cloud would refuse is refused here first, with a sentence for people.
    """
    # Keystone (on MySQL) compares names without case: the portal keeps them lowercase.
    username = validation.normalize_text(keystone_user_name or user.get_username()).lower()
    problem = soldier_problem(
        service_number=service_number,
        name=name,
        username=username,
        enlisted_on=enlisted_on,
        discharge_on=discharge_on,
    )
    if problem is not None:
        raise OperationRefused(problem.message, **problem.params)
    if Soldier.objects.filter(keystone_user_name__iexact=username).exists():
        raise OperationRefused(
            gettext_noop("Another soldier already has the username %(name)s."), name=username
        )
    if Soldier.objects.filter(service_number=service_number).exists():
        raise OperationRefused(
            gettext_noop("Another soldier already has the service number %(value)s."),
            value=service_number,
        )
    return Soldier.objects.create(
        user=user,
        service_number=service_number,
        name=name,
        unit=unit,
        enlisted_on=enlisted_on,
        discharge_on=discharge_on,
        keystone_user_name=username,
    )


def soldier_problem(
    *,
    service_number: str,
    name: str,
    username: str,
    enlisted_on: date | None = None,
    discharge_on: date | None = None,
) -> validation.Problem | None:
    """The first reason the cloud or the portal would refuse this soldier, or None."""
    return (
        validation.service_number_problem(service_number)
        or validation.person_name_problem(name)
        or validation.username_problem(username)
        or validation.dates_problem(enlisted_on, discharge_on)
    )


# Set as the description of every Keystone user and project the portal creates: only an
# account carrying the marker of this very soldier is ever taken as theirs (only cloud admins
# can write these descriptions).
ACCOUNT_MARKER = "codesquare-portal:soldier:"


def account_marker(soldier: Soldier) -> str:
    return f"{ACCOUNT_MARKER}{soldier.service_number}"


PROJECT_NAME_MAX = 64  # Keystone's and the mirror's limit


def project_name(soldier: Soldier) -> str:
    """The Keystone project name of a soldier."""
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
        name = project_name(soldier)
        # A legacy name too long for the mirror is refused by the first step, with its reason;
        # PostgreSQL would refuse the row here with a bare DataError.
        if len(name) <= PROJECT_NAME_MAX:
            Project.objects.get_or_create(soldier=soldier, defaults={"name": name})
        op = create_operation(
            kind=Operation.Kind.ONBOARD,
            lock_key=f"soldier:{soldier.pk}",
            soldier=soldier,
            requested_by=requested_by,
            batch=batch,
        )
        if not run_now:
            enqueue(op)
    if run_now:
        operation_run(operation_id=op.pk)
        op.refresh_from_db()
    return op


def _soldier_project(op: Operation) -> Project:
    assert op.soldier is not None
    project, _ = Project.objects.get_or_create(
        soldier=op.soldier, defaults={"name": project_name(op.soldier)}
    )
    return project


def _adoptable[T: (User, CloudProject)](found: T | None, soldier: Soldier, what: str) -> T | None:
    """``found`` if the portal made it for this soldier; a conflict stops the onboarding."""
    if found is None:
        return None
    if (found.description or "") != account_marker(soldier):
        message = (
            gettext_noop(
                "The cloud already has a user named %(name)s that the portal did not create "
                "for this soldier, so it is not taken over. Give the soldier another username, "
                "or ask a cloud administrator about the existing user."
            )
            if what == "user"
            else gettext_noop(
                "The cloud already has a project named %(name)s that the portal did not create "
                "for this soldier, so it is not taken over. Give the soldier another username, "
                "or ask a cloud administrator about the existing project."
            )
        )
        raise StepFailed(message, name=found.name)
    return found


def _named[T: (User, CloudProject)](items: list[T], name: str) -> T | None:
    """The first item whose name Keystone would take for ``name`` (case-insensitively)."""
    return next((i for i in items if validation.names_equal(i.name, name)), None)


def _reserved_refusal(soldier: Soldier) -> None:
    """A soldier recorded before today's rules may still carry a name the cloud keeps."""
    try:
        validation.clean_username(soldier.keystone_user_name)
    except ValidationError as error:
        problem = validation.problem_of(error)
        raise StepFailed(problem.message, **problem.params) from error


def step_user(op: Operation, client: OpenStackClient) -> None:
    """Find the soldier's own Keystone user (the portal's marker proves it), or create it."""
    soldier = op.soldier
    assert soldier is not None
    if soldier.keystone_user_id:
        return
    _reserved_refusal(soldier)
    name = soldier.keystone_user_name

    def find() -> User | None:
        found = _named(client.list_users(name=name, domain_id=domain_id()), name)
        return _adoptable(found, soldier, "user")

    def create() -> User:
        try:
            # The first password is never shown: staff issue one with a reset, seen once.
            return client.create_user(
                name=name,
                domain_id=domain_id(),
                password=secrets.token_urlsafe(24),
                description=account_marker(soldier),
            )
        except errors.Conflict:
            # Someone made one a moment ago (another worker, or a name Keystone compares
            # without case): take it only if it is ours.
            found = find()
            if found is None:
                raise
            return found

    user = create_once(op, "user", find=find, create=create)
    soldier.keystone_user_id = user.id
    with fenced(op):
        soldier.save(update_fields=["keystone_user_id", "updated_at"])


def step_project(op: Operation, client: OpenStackClient) -> None:
    """Find the soldier's own project (by the portal's marker), or create it."""
    project = _soldier_project(op)
    if project.keystone_id:
        return
    soldier = op.soldier
    assert soldier is not None

    def find() -> CloudProject | None:
        found = _named(client.list_projects(name=project.name, domain_id=domain_id()), project.name)
        return _adoptable(found, soldier, "project")

    def create() -> CloudProject:
        try:
            return client.create_project(
                name=project.name, domain_id=domain_id(), description=account_marker(soldier)
            )
        except errors.Conflict:
            found = find()
            if found is None:
                raise
            return found

    found = create_once(op, "project", find=find, create=create)
    project.keystone_id = found.id
    with fenced(op):
        project.save(update_fields=["keystone_id", "updated_at"])


def step_roles(op: Operation, client: OpenStackClient) -> None:
    """Grant the member role to the soldier and the service role to the portal."""
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
    with fenced(op):
        project.save(update_fields=["roles_granted", "updated_at"])


def _own_network(project: Project) -> ProjectNetwork:
    network, _ = ProjectNetwork.objects.get_or_create(project=project)
    return network


def _project_mode() -> bool:
    return settings.OPENSTACK_NETWORK_MODE == "project"


def step_network(op: Operation, client: OpenStackClient) -> None:
    """Pick the shared network, or find or create the project's own."""
    project = _soldier_project(op)
    if not _project_mode():
        if project.network_id:
            return
        shared = find_network(client, settings.OPENSTACK_SHARED_NETWORK)
        if shared is None:
            raise StepFailed(
                gettext_noop(
                    "The shared network %(name)s does not exist; check OPENSTACK_SHARED_NETWORK."
                ),
                name=settings.OPENSTACK_SHARED_NETWORK,
            )
        project.network_id = shared.id
        with fenced(op):
            project.save(update_fields=["network_id", "updated_at"])
        return
    own = _own_network(project)
    if not own.network_id:
        name = f"{project.name}-net"
        network = create_once(
            op,
            "network",
            find=lambda: find_network(client, name, project_id=project.keystone_id),
            create=lambda: client.create_network(name=name, project_id=project.keystone_id),
        )
        own.network_id = network.id
    if project.network_id != own.network_id:
        # Both records in one transaction; and a run that finds them apart (left so by a
        # crash before they were written together) puts them right.
        project.network_id = own.network_id
        with fenced(op):
            own.save(update_fields=["network_id"])
            project.save(update_fields=["network_id", "updated_at"])


def step_subnet(op: Operation, client: OpenStackClient) -> None:
    """Find or create the subnet of the project's own network."""
    if not _project_mode():
        return
    own = _own_network(_soldier_project(op))
    if own.subnet_id:
        return
    project = own.project

    def find() -> Subnet | None:
        subnets = client.list_subnets(network_id=own.network_id)
        return subnets[0] if subnets else None

    subnet = create_once(
        op,
        "subnet",
        find=find,
        create=lambda: client.create_subnet(
            name=f"{project.name}-subnet",
            network_id=own.network_id,
            cidr=settings.OPENSTACK_PROJECT_CIDR,
            project_id=project.keystone_id,
            dns_nameservers=list(settings.OPENSTACK_DNS_NAMESERVERS),
        ),
    )
    own.subnet_id = subnet.id
    with fenced(op):
        own.save(update_fields=["subnet_id"])


def step_router(op: Operation, client: OpenStackClient) -> None:
    """Find or create the project's router, its gateway on the external network."""
    if not _project_mode():
        return
    own = _own_network(_soldier_project(op))
    if own.router_id:
        return
    project = own.project
    name = f"{project.name}-router"

    def find() -> Router | None:
        routers = client.list_routers(name=name, project_id=project.keystone_id)
        return routers[0] if routers else None

    router = create_once(
        op,
        "router",
        find=find,
        create=lambda: client.create_router(
            name=name,
            project_id=project.keystone_id,
            external_network_id=external_network_id(client),
        ),
    )
    own.router_id = router.id
    with fenced(op):
        own.save(update_fields=["router_id"])


def step_router_interface(op: Operation, client: OpenStackClient) -> None:
    """Attach the subnet to the router unless a port already joins them."""
    if not _project_mode():
        return
    own = _own_network(_soldier_project(op))
    if own.interface_attached:
        return

    def find() -> bool | None:
        attached = any(
            any(ip.subnet_id == own.subnet_id for ip in p.fixed_ips)
            for p in client.list_ports(device_id=own.router_id)
        )
        return True if attached else None

    def attach() -> bool:
        client.add_router_interface(router_id=own.router_id, subnet_id=own.subnet_id)
        return True

    create_once(op, "router_interface", find=find, create=attach)
    own.interface_attached = True
    with fenced(op):
        own.save(update_fields=["interface_attached"])


def step_activate(op: Operation, client: OpenStackClient) -> None:
    """The soldier may now get VMs."""
    assert op.soldier is not None
    if op.soldier.state == Soldier.State.PENDING:
        op.soldier.state = Soldier.State.ACTIVE
        with fenced(op):
            op.soldier.save(update_fields=["state", "updated_at"])


def onboarding_complete(soldier: Soldier) -> bool:
    """Whether every record onboarding makes is in place (a crash may have left some out)."""
    project = Project.objects.filter(soldier=soldier).first()
    if (
        soldier.state != Soldier.State.ACTIVE
        or not soldier.keystone_user_id
        or project is None
        or not project.keystone_id
        or not project.roles_granted
        or not project.network_id
    ):
        return False
    if not _project_mode():
        return True
    own = ProjectNetwork.objects.filter(project=project, removed_at__isnull=True).first()
    return bool(
        own
        and own.network_id == project.network_id
        and own.subnet_id
        and own.router_id
        and own.interface_attached
    )


def domain_id() -> str:
    """The Keystone domain soldiers' users and projects live in."""
    return str(settings.OPENSTACK_DOMAIN)


_UUID = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
)

_role_ids: dict[tuple[str, str], str] = {}


def _role_id(client: OpenStackClient, name: str) -> str:
    # A role's id never changes in a cloud's life; look each up once per cloud.
    key = (client.config.auth_url, name)
    if key not in _role_ids:
        _role_ids[key] = client.find_role(name).id
    return _role_ids[key]


def find_network(
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


def external_network_id(client: OpenStackClient) -> str:
    """The id of the external network floating IPs come from (looked up once)."""
    name = settings.OPENSTACK_EXTERNAL_NETWORK
    key = (client.config.auth_url, name)
    if key not in _external_network_cache:
        network = find_network(client, name)
        if network is None:
            raise StepFailed(
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


# --- a soldier added by hand, and what a template can boot ---------------------------------------


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
