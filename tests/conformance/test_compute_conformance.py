"""The compute, network and image calls the portal depends on, against the test cloud.

With ``CODESQUARE_TEST_CLOUD=realcloud`` this runs against real Nova, Neutron and Glance from
PyPI; by default against devcloud. What it checks is what the portal relies on: where a server
lands, how its state and addresses decode, and which typed error each refusal becomes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from portal.openstack import (
    AddressKind,
    Conflict,
    Forbidden,
    Microversion,
    NotAcceptable,
    NotFound,
    OpenStackClient,
    PowerState,
    ServerStatus,
    VmState,
    load_config,
)
from tests.cloud_targets import CloudTarget
from tests.integration.client_support import Catalog, Tenant, onboard, unique

pytestmark = [pytest.mark.cloud, pytest.mark.needs("identity", "compute", "network", "image")]

WAIT = 120.0


@pytest.fixture(scope="module")
def admin(cloud_target: CloudTarget) -> OpenStackClient:
    config = load_config(cloud_target.cloud_name, env={}, clouds_yaml=cloud_target.clouds_yaml)
    return OpenStackClient.from_config(config)


@pytest.fixture(scope="module")
def catalog(admin: OpenStackClient) -> Catalog:
    image = next(i for i in admin.list_images() if i.name.startswith("cirros"))
    flavor = next(f for f in admin.list_flavors() if f.name == "m1.tiny")
    external = next(n for n in admin.list_networks(external=True) if n.name == "public")
    return Catalog(image=image, flavor_id=flavor.id, external=external)


@pytest.fixture(scope="module")
def tenant(admin: OpenStackClient, catalog: Catalog, cloud_target: CloudTarget) -> Iterator[Tenant]:
    tenant = onboard(admin, catalog, cloud_target.auth_url)
    yield tenant
    for server in tenant.scoped.list_servers():
        tenant.scoped.delete_server(server.id)
    for fip in tenant.scoped.list_floating_ips(project_id=tenant.project.id):
        tenant.scoped.delete_floating_ip(fip.id)


def test_microversion_and_catalog(admin: OpenStackClient, catalog: Catalog) -> None:
    version = admin.compute_microversion()
    assert version is not None
    assert Microversion(2, 47) <= version <= Microversion(2, 90)
    assert catalog.image.status == "active"
    assert admin.get_image(catalog.image.id) == catalog.image
    assert admin.get_flavor(catalog.flavor_id).vcpus == 1


def test_server_lifecycle(admin: OpenStackClient, tenant: Tenant, catalog: Catalog) -> None:
    client = tenant.scoped
    server_id = client.create_server(
        name=unique("conf-vm"),
        image_id=catalog.image.id,
        flavor_id=catalog.flavor_id,
        network_ids=[tenant.network.id],
        security_group_ids=[tenant.security_group_id],
        metadata={"portal_user": tenant.user.name},
    )
    server = client.wait_for_server(server_id, status=ServerStatus.ACTIVE, timeout=WAIT)
    assert server is not None
    assert server.project_id == tenant.project.id
    assert (server.vm_state, server.power_state) == (VmState.ACTIVE, PowerState.RUNNING)
    assert server.launched_at is not None
    assert server.created is not None
    assert server.flavor is not None
    assert server.flavor.name == "m1.tiny"
    assert dict(server.metadata) == {"portal_user": tenant.user.name}
    assert server.fixed_addresses
    assert all(a.mac for a in server.fixed_addresses)

    port = client.list_ports(device_id=server_id)[0]
    assert port.device_owner.startswith("compute:")
    fip = client.create_floating_ip(floating_network_id=catalog.external.id, port_id=port.id)
    assert fip.port_id == port.id
    assert client.list_floating_ips(port_id=port.id)[0].id == fip.id
    assert client.disassociate_floating_ip(fip.id).port_id is None
    assert client.associate_floating_ip(fip.id, port_id=port.id).port_id == port.id

    listed = admin.list_servers(all_projects=True, project_id=tenant.project.id)
    assert [s.id for s in listed] == [server_id]
    with pytest.raises(Forbidden):
        tenant.member.list_servers(all_projects=True)

    with pytest.raises(Conflict):
        client.start_server(server_id)
    client.stop_server(server_id)
    stopped = client.wait_for_server(server_id, status=ServerStatus.SHUTOFF, timeout=WAIT)
    assert stopped is not None
    assert stopped.vm_state is VmState.STOPPED
    client.start_server(server_id)
    assert client.wait_for_server(server_id, status=ServerStatus.ACTIVE, timeout=WAIT)

    client.delete_server(server_id)
    assert client.wait_for_server(server_id, gone=True, timeout=WAIT) is None
    # Nova may show the server as DELETED for a moment before its record goes; then 404.
    deadline = time.monotonic() + WAIT
    while True:
        try:
            client.get_server(server_id)
        except NotFound:
            break
        assert time.monotonic() < deadline, "a deleted server still answers GET"
        time.sleep(0.5)
    assert client.get_floating_ip(fip.id).port_id is None
    client.delete_floating_ip(fip.id)


def test_floating_address_shows_on_the_server(tenant: Tenant, catalog: Catalog) -> None:
    client = tenant.scoped
    server_id = client.create_server(
        name=unique("conf-fip"),
        image_id=catalog.image.id,
        flavor_id=catalog.flavor_id,
        network_ids=[tenant.network.id],
    )
    client.wait_for_server(server_id, status=ServerStatus.ACTIVE, timeout=WAIT)
    port = client.list_ports(device_id=server_id)[0]
    fip = client.create_floating_ip(floating_network_id=catalog.external.id, port_id=port.id)
    # Nova's address cache follows Neutron asynchronously on a real cloud.
    for _ in range(60):
        server = client.get_server(server_id)
        floating = [a.addr for a in server.addresses if a.kind is AddressKind.FLOATING]
        if floating:
            break
        time.sleep(1)
    assert floating == [fip.floating_ip_address]
    client.delete_server(server_id)
    client.wait_for_server(server_id, gone=True, timeout=WAIT)
    client.delete_floating_ip(fip.id)


def test_errors(tenant: Tenant, catalog: Catalog) -> None:
    with pytest.raises(NotFound) as caught:
        tenant.scoped.get_server("00000000-0000-0000-0000-000000000000")
    assert caught.value.request_id
    with pytest.raises(NotFound):
        tenant.scoped.delete_floating_ip("00000000-0000-0000-0000-000000000000")
    with pytest.raises(Forbidden):
        tenant.member.list_compute_services()


def test_compute_hosts_and_zones(admin: OpenStackClient) -> None:
    services = admin.list_compute_services()
    assert services
    assert all(s.binary == "nova-compute" for s in services)
    hosts = {s.host for s in services}
    assert {h.hostname for h in admin.list_hypervisors()} >= hosts
    zones = admin.list_availability_zones()
    assert hosts <= set().union(*(set(z.hosts) for z in zones))


def test_unsupported_microversion_is_not_acceptable(admin: OpenStackClient) -> None:
    with pytest.raises(NotAcceptable) as caught:
        admin.transport.request(
            "compute", "GET", "/servers", headers={"OpenStack-API-Version": "compute 2.200"}
        )
    assert caught.value.status == 406
    assert "2.200" in caught.value.message
