"""Compute, image and network calls of portal.openstack against devcloud over real HTTP."""

from __future__ import annotations

import time
from typing import Any

import pytest

from portal.openstack import (
    AddressKind,
    BadRequest,
    Conflict,
    Forbidden,
    Microversion,
    NotFound,
    OpenStackClient,
    PowerState,
    RebootType,
    ServerInError,
    ServerStatus,
    VmState,
    WaitTimeout,
)
from tests.integration.client_support import Catalog, Tenant, unique

pytest_plugins = ["tests.integration.client_fixtures"]
pytestmark = pytest.mark.cloud

WAIT = 60.0


def _boot(os_tenant: Tenant, os_catalog: Catalog, **extra: Any) -> str:
    server_id = os_tenant.scoped.create_server(
        name=unique("vm"),
        image_id=os_catalog.image.id,
        flavor_id=os_catalog.flavor_id,
        network_ids=[os_tenant.network.id],
        security_group_ids=[os_tenant.security_group_id],
        metadata={"portal_user": os_tenant.user.name},
        **extra,
    )
    return server_id


def test_compute_microversion_embeds_flavors(os_admin: OpenStackClient) -> None:
    version = os_admin.compute_microversion()
    assert version is not None
    assert Microversion(2, 47) <= version


def test_images_come_from_glance(os_admin: OpenStackClient, os_catalog: Catalog) -> None:
    images = os_admin.list_images()
    assert os_catalog.image.id in {i.id for i in images}
    assert all(i.status == "active" for i in images)
    image = os_admin.get_image(os_catalog.image.id)
    assert image == os_catalog.image
    assert image.created_at is not None
    with pytest.raises(NotFound):
        os_admin.get_image("00000000-0000-0000-0000-000000000000")


def test_flavors_have_sizes(os_admin: OpenStackClient) -> None:
    tiny = os_admin.get_flavor("1")
    assert (tiny.name, tiny.vcpus, tiny.ram_mib, tiny.disk_gib) == ("m1.tiny", 1, 512, 1)
    assert tiny in os_admin.list_flavors()


def test_external_networks_are_floating_ip_pools(os_admin: OpenStackClient) -> None:
    external = os_admin.list_networks(external=True)
    assert external
    assert all(n.external for n in external)
    assert not any(n.external for n in os_admin.list_networks(external=False))


def test_server_lifecycle_in_the_soldiers_project(
    os_admin: OpenStackClient, os_tenant: Tenant, os_catalog: Catalog
) -> None:
    client = os_tenant.scoped
    server_id = _boot(os_tenant, os_catalog)
    server = client.wait_for_server(server_id, status=ServerStatus.ACTIVE, timeout=WAIT)
    assert server is not None
    # Owned by the soldier's project, not the admin project the token was issued to at first.
    assert server.project_id == os_tenant.project.id
    assert server.project_id != os_admin.token().project_id
    assert (server.vm_state, server.power_state) == (VmState.ACTIVE, PowerState.RUNNING)
    assert server.launched_at is not None
    assert server.launched_at.tzinfo is not None
    assert server.flavor is not None
    assert (server.flavor.name, server.flavor.vcpus) == ("m1.tiny", 1)
    assert server.metadata["portal_user"] == os_tenant.user.name
    fixed = server.fixed_addresses
    assert fixed
    assert all(a.network == os_tenant.network.name for a in fixed)

    ports = client.list_ports(device_id=server_id)
    assert len(ports) == 1
    port = ports[0]
    assert {ip.ip_address for ip in port.fixed_ips} == {a.addr for a in fixed}
    assert {a.mac for a in fixed} == {port.mac_address}

    fip = client.create_floating_ip(
        floating_network_id=os_catalog.external.id, port_id=port.id, description="portal"
    )
    assert (fip.port_id, fip.fixed_ip_address) == (port.id, port.fixed_ips[0].ip_address)
    assert client.list_floating_ips(port_id=port.id) == [client.get_floating_ip(fip.id)]
    # Nova lists it once Neutron's network-changed event has refreshed its cache, a second on.
    deadline = time.monotonic() + WAIT
    while not (shown := client.get_server(server_id)).floating_addresses:
        assert time.monotonic() < deadline, "the floating IP never showed in the server"
        time.sleep(0.1)
    assert [a.addr for a in shown.addresses if a.kind is AddressKind.FLOATING] == [
        fip.floating_ip_address
    ]
    with pytest.raises(Conflict):
        client.create_floating_ip(floating_network_id=os_catalog.external.id, port_id=port.id)
    assert client.disassociate_floating_ip(fip.id).port_id is None
    assert client.associate_floating_ip(fip.id, port_id=port.id).port_id == port.id

    client.stop_server(server_id)
    stopped = client.wait_for_server(server_id, status=ServerStatus.SHUTOFF, timeout=WAIT)
    assert stopped is not None
    assert (stopped.vm_state, stopped.power_state) == (VmState.STOPPED, PowerState.SHUTDOWN)
    with pytest.raises(Conflict) as caught:
        client.stop_server(server_id)
    assert caught.value.request_id
    client.start_server(server_id)
    assert client.wait_for_server(server_id, status=ServerStatus.ACTIVE, timeout=WAIT)
    client.reboot_server(server_id, kind=RebootType.HARD)
    rebooted = client.wait_for_server(server_id, status=ServerStatus.ACTIVE, timeout=WAIT)
    assert rebooted is not None
    assert rebooted.power_state is PowerState.RUNNING
    client.reboot_server(server_id)
    assert client.wait_for_server(server_id, status=ServerStatus.ACTIVE, timeout=WAIT)

    client.delete_server(server_id)
    assert client.wait_for_server(server_id, gone=True, timeout=WAIT) is None
    with pytest.raises(NotFound):
        client.get_server(server_id)
    assert client.list_ports(device_id=server_id) == []
    # The floating IP outlives its server, released from the port, until deleted.
    left = client.get_floating_ip(fip.id)
    assert left.port_id is None
    client.delete_floating_ip(fip.id)
    with pytest.raises(NotFound):
        client.delete_floating_ip(fip.id)


def test_wait_for_server_deadline(os_tenant: Tenant, os_catalog: Catalog) -> None:
    server_id = _boot(os_tenant, os_catalog)
    with pytest.raises(WaitTimeout):
        os_tenant.scoped.wait_for_server(
            server_id, status=ServerStatus.SHUTOFF, timeout=0.5, interval=0.1
        )
    os_tenant.scoped.delete_server(server_id)


def test_failed_build_raises_server_in_error(
    devcloud: Any, os_tenant: Tenant, os_catalog: Catalog
) -> None:
    message = devcloud.faults.fail_builds(1, "No valid host was found. There are not enough hosts")
    server_id = _boot(os_tenant, os_catalog)
    with pytest.raises(ServerInError) as caught:
        os_tenant.scoped.wait_for_server(server_id, status=ServerStatus.ACTIVE, timeout=WAIT)
    server = caught.value.server
    assert server.status is ServerStatus.ERROR
    assert server.fault is not None
    assert server.fault.message == message
    os_tenant.scoped.delete_server(server_id)


def test_all_tenants_listing_is_admin_only(
    os_admin: OpenStackClient, os_tenant: Tenant, os_catalog: Catalog
) -> None:
    server_id = _boot(os_tenant, os_catalog)
    listed = os_admin.list_servers(all_projects=True, project_id=os_tenant.project.id)
    assert server_id in {s.id for s in listed}
    assert {s.project_id for s in listed} == {os_tenant.project.id}
    assert server_id not in {s.id for s in os_admin.list_servers()}  # admin's own project only
    assert server_id in {s.id for s in os_tenant.member.list_servers()}
    with pytest.raises(Forbidden) as caught:
        os_tenant.member.list_servers(all_projects=True)
    assert caught.value.status == 403
    os_tenant.scoped.delete_server(server_id)
    os_tenant.scoped.wait_for_server(server_id, gone=True, timeout=WAIT)


def test_forced_host_is_admin_only(
    os_admin: OpenStackClient, os_tenant: Tenant, os_catalog: Catalog
) -> None:
    host = os_admin.list_compute_services()[-1].host
    zone = os_admin.list_compute_services()[-1].zone
    server_id = _boot(os_tenant, os_catalog, availability_zone=zone, host=host)
    server = os_tenant.scoped.wait_for_server(server_id, status=ServerStatus.ACTIVE, timeout=WAIT)
    assert server is not None
    assert (server.host, server.availability_zone) == (host, zone)
    with pytest.raises(Forbidden):
        os_tenant.member.create_server(
            name=unique("forced"),
            image_id=os_catalog.image.id,
            flavor_id=os_catalog.flavor_id,
            network_ids=[os_tenant.network.id],
            availability_zone=zone,
            host=host,
        )
    os_tenant.scoped.delete_server(server_id)


def test_bad_image_is_bad_request(os_tenant: Tenant, os_catalog: Catalog) -> None:
    with pytest.raises(BadRequest) as caught:
        os_tenant.scoped.create_server(
            name=unique("bad"),
            image_id="00000000-0000-0000-0000-000000000000",
            flavor_id=os_catalog.flavor_id,
            network_ids=[os_tenant.network.id],
        )
    assert caught.value.error_type == "badRequest"


def test_unknown_server_is_not_found(os_tenant: Tenant) -> None:
    with pytest.raises(NotFound) as caught:
        os_tenant.scoped.get_server("00000000-0000-0000-0000-000000000000")
    assert caught.value.error_type == "itemNotFound"
    assert caught.value.request_id


def test_compute_hosts_hypervisors_and_zones(os_admin: OpenStackClient) -> None:
    services = os_admin.list_compute_services()
    assert services
    assert all(s.binary == "nova-compute" for s in services)
    hosts = {s.host for s in services}
    assert {h.hostname for h in os_admin.list_hypervisors()} == hosts
    zones = os_admin.list_availability_zones()
    assert set().union(*(set(z.hosts) for z in zones)) >= hosts
    assert all(z.available for z in zones)


def test_compute_admin_calls_are_forbidden_to_members(os_tenant: Tenant) -> None:
    with pytest.raises(Forbidden):
        os_tenant.member.list_compute_services()


def test_network_topology_calls(os_tenant: Tenant, os_catalog: Catalog) -> None:
    client = os_tenant.scoped
    network = client.create_network(name=unique("net"))
    assert network.project_id == os_tenant.project.id
    subnet = client.create_subnet(
        network_id=network.id, cidr="10.30.0.0/24", dns_nameservers=["9.9.9.9"]
    )
    assert (subnet.cidr, subnet.dns_nameservers) == ("10.30.0.0/24", ("9.9.9.9",))
    assert [s.id for s in client.list_subnets(network_id=network.id)] == [subnet.id]
    router = client.create_router(name=unique("router"))
    assert router.external_network_id is None
    assert client.set_router_gateway(router.id, os_catalog.external.id).external_network_id == (
        os_catalog.external.id
    )
    assert client.add_router_interface(router.id, subnet.id)
    with pytest.raises(Conflict):
        client.delete_router(router.id)
    client.remove_router_interface(router.id, subnet.id)
    assert client.clear_router_gateway(router.id).external_network_id is None
    assert router.id in {r.id for r in client.list_routers(project_id=os_tenant.project.id)}
    client.delete_router(router.id)
    with pytest.raises(NotFound):
        client.get_router(router.id)
    client.delete_subnet(subnet.id)
    client.delete_network(network.id)
    with pytest.raises(NotFound):
        client.get_network(network.id)


def test_floating_ip_needs_a_router_to_the_external_network(
    os_tenant: Tenant, os_catalog: Catalog
) -> None:
    client = os_tenant.scoped
    network = client.create_network(name=unique("isolated"))
    client.create_subnet(network_id=network.id, cidr="10.40.0.0/24")
    server_id = client.create_server(
        name=unique("vm"),
        image_id=os_catalog.image.id,
        flavor_id=os_catalog.flavor_id,
        network_ids=[network.id],
    )
    client.wait_for_server(server_id, status=ServerStatus.ACTIVE, timeout=WAIT)
    port = client.list_ports(device_id=server_id)[0]
    with pytest.raises(NotFound) as caught:
        client.create_floating_ip(floating_network_id=os_catalog.external.id, port_id=port.id)
    assert caught.value.error_type == "ExternalGatewayForFloatingIPNotFound"
    client.delete_server(server_id)


def test_security_groups_by_project(os_admin: OpenStackClient, os_tenant: Tenant) -> None:
    groups = os_admin.list_security_groups(project_id=os_tenant.project.id)
    assert [g.id for g in groups if g.name == "default"] == [os_tenant.security_group_id]
    assert {g.project_id for g in groups} == {os_tenant.project.id}
