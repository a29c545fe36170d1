"""Helpers shared by the client integration tests (fixtures: client_fixtures.py).

They talk to a devcloud of the test session's own over real HTTP, through portal.openstack only.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from portal.openstack import (
    CloudConfig,
    Image,
    Network,
    OpenStackClient,
    Project,
    Role,
    User,
    load_config,
)

DOMAIN = "default"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def admin_config(devcloud: Any, **overrides: Any) -> CloudConfig:
    return load_config("devcloud", env={}, clouds_yaml=devcloud.clouds_yaml, **overrides)


def new_admin_client(devcloud: Any, **overrides: Any) -> OpenStackClient:
    return OpenStackClient.from_config(admin_config(devcloud, **overrides))


def log_entries(devcloud: Any, method: str | None = None, path: str | None = None) -> list[Any]:
    """devcloud's server-side request log, optionally filtered by method and exact path.

    The test harness's own logins (devcloud.testing asks for ``?nocatalog`` tokens to drive the
    control endpoint) are left out: they are not the client's.
    """
    return [
        entry
        for entry in devcloud.faults.requests()
        if "nocatalog" not in entry["query"]
        and (method is None or entry["method"] == method)
        and (path is None or entry["full_path"] == path)
    ]


@dataclass(frozen=True)
class Tenant:
    """A soldier's project as the portal sets it up, and the clients that act in it."""

    project: Project
    scoped: OpenStackClient  # the portal's admin user, token scoped to the project
    member: OpenStackClient  # the soldier, a plain member
    user: User
    password: str
    network: Network
    subnet_id: str
    router_id: str
    security_group_id: str


@dataclass(frozen=True)
class Catalog:
    image: Image
    flavor_id: str
    external: Network


def onboard(admin: OpenStackClient, catalog: Catalog, auth_url: str) -> Tenant:
    """What onboarding does: project, the portal's role there, the soldier, a routed network."""
    project = admin.create_project(name=unique("cs-int"), domain_id=DOMAIN)
    admin_role: Role = admin.find_role("admin")
    member_role: Role = admin.find_role("member")
    admin.grant_project_role(
        project_id=project.id, user_id=admin.token().user_id, role_id=admin_role.id
    )
    password = "Pw-" + uuid.uuid4().hex
    user = admin.create_user(
        name=unique("soldier"), domain_id=DOMAIN, password=password, default_project_id=project.id
    )
    admin.grant_project_role(project_id=project.id, user_id=user.id, role_id=member_role.id)
    scoped = admin.for_project(project.id)
    network = scoped.create_network(name="soldier-net")
    subnet = scoped.create_subnet(network_id=network.id, cidr="10.20.0.0/24", name="soldier-sub")
    router = scoped.create_router(name="soldier-router", external_network_id=catalog.external.id)
    scoped.add_router_interface(router.id, subnet.id)
    group = scoped.list_security_groups(project_id=project.id, name="default")[0]
    member = OpenStackClient.from_config(
        CloudConfig(
            auth_url=auth_url,
            username=user.name,
            password=password,
            user_domain_id=DOMAIN,
            project_id=project.id,
        )
    )
    return Tenant(
        project=project,
        scoped=scoped,
        member=member,
        user=user,
        password=password,
        network=network,
        subnet_id=subnet.id,
        router_id=router.id,
        security_group_id=group.id,
    )
