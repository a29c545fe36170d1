"""The seed's whole sequence through openstacksdk, a client nobody here wrote.

The admin acts with a token scoped to the soldier's project, the way the portal must.
"""

from __future__ import annotations

import uuid
from typing import Any

import openstack
import pytest
from keystoneauth1 import exceptions as keystone_errors
from openstack import exceptions
from openstack.config import loader

from devcloud.testing import RunningDevcloud

HOST = "codesquare-devstack-compute2"
# openstacksdk warns about its own deprecations on every call; they are not about devcloud.
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]


def connect(running: RunningDevcloud, **auth: Any) -> Any:
    """The "devcloud" cloud of the written clouds.yaml, with some auth settings replaced."""
    config = loader.OpenStackConfig(config_files=[str(running.clouds_yaml)], load_envvars=False)
    return openstack.connection.Connection(config=config.get_one(cloud="devcloud", auth=auth))


def test_the_seed_sequence_through_openstacksdk(running: RunningDevcloud) -> None:
    admin = connect(running)
    assert admin.session.get_token()
    name = f"sdk-{uuid.uuid4().hex[:8]}"

    project = admin.identity.create_project(name=name, domain_id="default")
    user = admin.identity.create_user(
        name=name, password="first-pw", default_project_id=project.id, domain_id="default"
    )
    member = admin.identity.find_role("member")
    admin.identity.assign_project_role_to_user(project, user, member)
    admin_user = admin.identity.find_user("admin", domain_id="default")
    admin.identity.assign_project_role_to_user(
        project, admin_user, admin.identity.find_role("admin")
    )
    assert admin.identity.validate_user_has_project_role(project, user, member)

    images = {i.name: i for i in admin.image.images()}
    flavors = {f.name: f for f in admin.compute.flavors()}
    public = admin.network.find_network("public")
    assert public.is_router_external
    assert [n.name for n in admin.network.networks(is_router_external=True)] == ["public"]

    scoped = connect(running, project_name=name, project_domain_name="Default")
    network = scoped.network.create_network(name=f"{name}-net")
    subnet = scoped.network.create_subnet(
        network_id=network.id, cidr="192.168.77.0/24", ip_version=4, name=f"{name}-subnet"
    )
    router = scoped.network.create_router(
        name=f"{name}-router", external_gateway_info={"network_id": public.id}
    )
    scoped.network.add_interface_to_router(router, subnet=subnet.id)
    group = next(iter(scoped.network.security_groups(project_id=project.id, name="default")))

    server = scoped.compute.create_server(
        name=f"{name}-vm",
        image_id=images["cirros-0.6.3-x86_64-disk"].id,
        flavor_id=flavors["m1.tiny"].id,
        networks=[{"uuid": network.id}],
        security_groups=[{"name": group.id}],
        availability_zone=f"nova:{HOST}",
        metadata={"portal": "sdk"},
    )
    assert server.admin_password
    server = scoped.compute.wait_for_server(server, wait=30, interval=0.1)
    shown = scoped.compute.get_server(server.id)
    assert shown.status == "ACTIVE"
    assert shown.power_state == 1
    assert shown.launched_at
    assert shown.compute_host == HOST
    assert shown.project_id == project.id
    assert shown.flavor.original_name == "m1.tiny"

    ports = list(scoped.network.ports(device_id=server.id))
    assert len(ports) == 1
    fip = scoped.network.create_ip(floating_network_id=public.id, port_id=ports[0].id)
    assert fip.fixed_ip_address == ports[0].fixed_ips[0]["ip_address"]
    assert [f.id for f in scoped.network.ips(port_id=ports[0].id)] == [fip.id]
    scoped.network.delete_ip(fip)
    assert list(scoped.network.ips(port_id=ports[0].id)) == []

    everyone = list(admin.compute.servers(all_projects=True, project_id=project.id))
    assert [s.id for s in everyone] == [server.id]

    soldier = connect(
        running,
        username=name,
        password="first-pw",
        project_name=name,
        project_domain_name="Default",
    )
    assert [s.id for s in soldier.compute.servers()] == [server.id]
    with pytest.raises(exceptions.ForbiddenException):
        list(soldier.compute.servers(all_projects=True))
    with pytest.raises(exceptions.ForbiddenException):
        list(soldier.identity.users())
    visible = {n.name for n in soldier.network.networks()}
    assert visible == {"public", "private", f"{name}-net"}

    scoped.compute.delete_server(server)
    scoped.compute.wait_for_delete(server, interval=0.1, wait=30)
    assert list(scoped.network.ports(device_id=server.id)) == []

    me = soldier.identity.get_user(user.id)
    me.update_password(soldier.identity, "first-pw", "second-pw")
    again = connect(
        running,
        username=name,
        password="second-pw",
        project_name=name,
        project_domain_name="Default",
    )
    assert again.session.get_token()
    with pytest.raises(keystone_errors.Unauthorized):
        connect(
            running,
            username=name,
            password="first-pw",
            project_name=name,
            project_domain_name="Default",
        ).session.get_token()


def test_openstacksdk_follows_nova_pagination(
    running: RunningDevcloud,
) -> None:
    admin = connect(running)
    name = f"page-{uuid.uuid4().hex[:8]}"
    project = admin.identity.create_project(name=name, domain_id="default")
    running.faults.bulk_servers(project_id=project.id, count=12, name_prefix=name)
    running.faults.clear_requests()
    found = list(admin.compute.servers(all_projects=True, project_id=project.id, limit=5))
    assert len(found) == 12
    assert all(s.status == "ACTIVE" for s in found)
    lists = [
        e
        for e in running.faults.requests()
        if e["service"] == "compute" and e["path"] == "/v2.1/servers/detail"
    ]
    # Pages of at most 5 (openstacksdk may ask once more after the short last page).
    assert len(lists) >= 3
    assert all("limit=5" in e["query"] for e in lists)
