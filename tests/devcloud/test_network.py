"""Neutron v2.0 behaviour: visibility, filters, project plumbing, floating IPs, quotas, errors."""

from __future__ import annotations

from typing import Any

from tests.devcloud.conftest import Cloud, Tenant, boot, unique, wait_for, wait_status


def own_network(tenant: Tenant, cidr: str = "192.168.10.0/24") -> tuple[str, str]:
    """The project's own network and subnet, as the portal makes them: (network, subnet)."""
    network = tenant.member.post("network", "/networks", {"network": {"name": unique("net")}})
    assert network.status_code == 201, network.text
    network_id = network.json()["network"]["id"]
    subnet = tenant.member.post(
        "network",
        "/subnets",
        {"subnet": {"network_id": network_id, "cidr": cidr, "ip_version": 4, "name": "sub"}},
    )
    assert subnet.status_code == 201, subnet.text
    return network_id, subnet.json()["subnet"]["id"]


def router_to_public(cloud: Cloud, tenant: Tenant, subnet_id: str) -> str:
    public = cloud.network_id("public")
    router = tenant.member.post(
        "network",
        "/routers",
        {"router": {"name": "r", "external_gateway_info": {"network_id": public}}},
    )
    assert router.status_code == 201, router.text
    router_id = router.json()["router"]["id"]
    gateway = router.json()["router"]["external_gateway_info"]
    assert gateway["network_id"] == public
    assert gateway["external_fixed_ips"][0]["ip_address"].startswith("172.24.4.")
    added = tenant.member.put(
        "network", f"/routers/{router_id}/add_router_interface", {"subnet_id": subnet_id}
    )
    assert added.status_code == 200, added.text
    assert added.json()["subnet_id"] == subnet_id
    return str(router_id)


def port_of(tenant: Tenant, server_id: str) -> dict[str, Any]:
    ports = tenant.member.get("network", "/ports", params={"device_id": server_id}).json()
    assert len(ports["ports"]) == 1
    port: dict[str, Any] = ports["ports"][0]
    return port


def floating_shown(tenant: Tenant, server_id: str) -> list[str]:
    """The floating addresses Nova lists for a server."""
    server = tenant.member.get("compute", f"/servers/{server_id}").json()["server"]
    return [
        a["addr"]
        for entries in server["addresses"].values()
        for a in entries
        if a["OS-EXT-IPS:type"] == "floating"
    ]


def test_members_see_their_own_shared_and_external_networks(cloud: Cloud, tenant: Tenant) -> None:
    network_id, _ = own_network(tenant)
    other = cloud.tenant()
    hidden, _ = own_network(other)
    names = {n["id"] for n in tenant.member.get("network", "/networks").json()["networks"]}
    assert {network_id, cloud.network_id("private"), cloud.network_id("public")} <= names
    assert hidden not in names
    assert tenant.member.get("network", f"/networks/{hidden}").status_code == 404
    external = tenant.member.get("network", "/networks", params={"router:external": "true"})
    assert [n["name"] for n in external.json()["networks"]] == ["public"]
    shared = tenant.member.get("network", "/networks", params={"shared": "true"}).json()
    assert [n["name"] for n in shared["networks"]] == ["private"]
    by_project = cloud.admin.get("network", "/networks", params={"tenant_id": other.project_id})
    assert [n["id"] for n in by_project.json()["networks"]] == [hidden]
    assert (
        "provider:network_type"
        not in tenant.member.get("network", f"/networks/{network_id}").json()["network"]
    )


def test_each_project_gets_its_own_default_security_group(cloud: Cloud, tenant: Tenant) -> None:
    groups = tenant.member.get("network", "/security-groups").json()["security_groups"]
    assert [(g["name"], g["project_id"]) for g in groups] == [("default", tenant.project_id)]
    everyone = cloud.admin.get("network", "/security-groups", params={"name": "default"}).json()
    assert len(everyone["security_groups"]) > 1  # an admin sees every project's default


def test_a_floating_ip_needs_a_router_from_the_ports_subnet_to_public(
    cloud: Cloud, tenant: Tenant
) -> None:
    network_id, subnet_id = own_network(tenant)
    server_id = boot(tenant.member, cloud, networks=[{"uuid": network_id}])
    wait_status(tenant.member, server_id, "ACTIVE")
    port = port_of(tenant, server_id)
    assert port["fixed_ips"][0]["subnet_id"] == subnet_id
    public = cloud.network_id("public")
    body = {"floatingip": {"floating_network_id": public, "port_id": port["id"]}}
    unreachable = tenant.member.post("network", "/floatingips", body)
    assert unreachable.status_code == 404
    error = unreachable.json()["NeutronError"]
    assert error["type"] == "ExternalGatewayForFloatingIPNotFound"
    assert error["detail"] == ""
    assert f"is not reachable from subnet {subnet_id}" in error["message"]

    router_id = router_to_public(cloud, tenant, subnet_id)
    created = tenant.member.post("network", "/floatingips", body)
    assert created.status_code == 201, created.text
    fip = created.json()["floatingip"]
    assert fip["router_id"] == router_id
    assert fip["fixed_ip_address"] == port["fixed_ips"][0]["ip_address"]
    assert fip["status"] == "DOWN"  # the L3 agent has not programmed it yet
    again = tenant.member.post("network", "/floatingips", body)
    assert again.status_code == 409
    assert again.json()["NeutronError"]["type"] == "FloatingIPPortAlreadyAssociated"

    # Nova shows the address once its network info cache catches up (see the test below).
    assert wait_for(lambda: floating_shown(tenant, server_id)) == [fip["floating_ip_address"]]

    # A router with interfaces cannot go; the interface serving a floating IP cannot either.
    assert tenant.member.delete("network", f"/routers/{router_id}").status_code == 409
    in_use = tenant.member.put(
        "network", f"/routers/{router_id}/remove_router_interface", {"subnet_id": subnet_id}
    )
    assert in_use.status_code == 409

    for params in (
        {"port_id": port["id"]},
        {"floating_ip_address": fip["floating_ip_address"]},
        {"project_id": tenant.project_id},
    ):
        found = tenant.member.get("network", "/floatingips", params=params).json()["floatingips"]
        assert [f["id"] for f in found] == [fip["id"]]
    assert tenant.member.delete("network", f"/floatingips/{fip['id']}").status_code == 204
    assert (
        tenant.member.get("network", f"/floatingips/{fip['id']}").json()["NeutronError"]["type"]
        == "FloatingIPNotFound"
    )


def test_the_shared_private_network_reaches_public_through_the_seeded_router(
    cloud: Cloud, tenant: Tenant
) -> None:
    server_id = boot(tenant.member, cloud)
    wait_status(tenant.member, server_id, "ACTIVE")
    port = port_of(tenant, server_id)
    assert len(port["fixed_ips"]) == 2  # IPv4 and IPv6 subnets
    public = cloud.network_id("public")
    v4 = next(ip["ip_address"] for ip in port["fixed_ips"] if "." in ip["ip_address"])
    fip = tenant.member.post(
        "network",
        "/floatingips",
        {"floatingip": {"floating_network_id": public, "port_id": port["id"]}},
    )
    assert fip.status_code == 201, fip.text
    assert fip.json()["floatingip"]["fixed_ip_address"] == v4

    # Deleting the server disassociates the address; it stays allocated to the project.
    tenant.member.delete("compute", f"/servers/{server_id}")
    fip_id = fip.json()["floatingip"]["id"]

    def released() -> bool:
        current = tenant.member.get("network", f"/floatingips/{fip_id}").json()["floatingip"]
        return current["port_id"] is None and current["fixed_ip_address"] is None

    wait_for(released)


def test_floating_ip_errors_and_disassociation(cloud: Cloud, tenant: Tenant) -> None:
    private = cloud.network_id("private")
    not_external = tenant.member.post(
        "network", "/floatingips", {"floatingip": {"floating_network_id": private}}
    )
    assert not_external.status_code == 400
    assert "is not a valid external network" in not_external.json()["NeutronError"]["message"]
    missing = tenant.member.post("network", "/floatingips", {"floatingip": {}})
    assert missing.status_code == 400
    assert "'floating_network_id'" in missing.json()["NeutronError"]["message"]

    public = cloud.network_id("public")
    server_id = boot(tenant.member, cloud)
    wait_status(tenant.member, server_id, "ACTIVE")
    port = port_of(tenant, server_id)
    fip = tenant.member.post(
        "network",
        "/floatingips",
        {"floatingip": {"floating_network_id": public, "port_id": port["id"]}},
    ).json()["floatingip"]
    updated = tenant.member.put(
        "network", f"/floatingips/{fip['id']}", {"floatingip": {"description": "kept"}}
    ).json()["floatingip"]
    assert updated["port_id"] == port["id"]  # other keys keep the association
    detached = tenant.member.put(
        "network", f"/floatingips/{fip['id']}", {"floatingip": {"port_id": None}}
    ).json()["floatingip"]
    assert (detached["port_id"], detached["fixed_ip_address"]) == (None, None)

    other = cloud.tenant()
    foreign = other.member.post(
        "network",
        "/floatingips",
        {"floatingip": {"floating_network_id": public, "port_id": port["id"]}},
    )
    assert foreign.status_code == 400
    assert "owned by a different project" in foreign.json()["NeutronError"]["message"]
    assert other.member.delete("network", f"/floatingips/{fip['id']}").status_code == 404


def test_floating_ip_quota_is_a_409_over_quota(cloud: Cloud, tenant: Tenant) -> None:
    quota = cloud.admin.put("network", f"/quotas/{tenant.project_id}", {"quota": {"floatingip": 1}})
    assert quota.json()["quota"]["floatingip"] == 1
    public = cloud.network_id("public")
    body = {"floatingip": {"floating_network_id": public}}
    assert tenant.member.post("network", "/floatingips", body).status_code == 201
    over = tenant.member.post("network", "/floatingips", body)
    assert over.status_code == 409
    assert over.json() == {
        "NeutronError": {
            "type": "OverQuota",
            "message": "Quota exceeded for resources: ['floatingip'].",
            "detail": "",
        }
    }
    assert (
        tenant.member.put(
            "network", f"/quotas/{tenant.project_id}", {"quota": {"floatingip": 9}}
        ).status_code
        == 403
    )


def test_port_filters_and_pagination_links(cloud: Cloud, tenant: Tenant) -> None:
    network_id, _ = own_network(tenant, "192.168.20.0/24")
    for _ in range(3):
        created = tenant.member.post("network", "/ports", {"port": {"network_id": network_id}})
        assert created.status_code == 201
    ports = tenant.member.get("network", "/ports", params={"network_id": network_id}).json()
    assert len(ports["ports"]) == 3
    page = tenant.member.get(
        "network", "/ports", params={"network_id": network_id, "limit": 2}
    ).json()
    assert len(page["ports"]) == 2
    next_link = next(link for link in page["ports_links"] if link["rel"] == "next")
    rest = tenant.member.session.get(next_link["href"] + f"&network_id={network_id}", timeout=10)
    assert len(rest.json()["ports"]) == 1
    fields = tenant.member.get(
        "network", "/ports", params={"network_id": network_id, "fields": "id"}
    ).json()
    assert set(fields["ports"][0]) == {"id"}


def test_networks_in_use_and_bad_bodies(cloud: Cloud, tenant: Tenant) -> None:
    network_id, _subnet_id = own_network(tenant, "192.168.30.0/24")
    tenant.member.post("network", "/ports", {"port": {"network_id": network_id}})
    busy = tenant.member.delete("network", f"/networks/{network_id}")
    assert busy.status_code == 409
    assert busy.json()["NeutronError"]["type"] == "NetworkInUse"
    unknown = tenant.member.post("network", "/networks", {"network": {"colour": "blue"}})
    assert unknown.status_code == 400
    assert "colour" in unknown.json()["NeutronError"]["message"]
    bad_cidr = tenant.member.post(
        "network",
        "/subnets",
        {"subnet": {"network_id": network_id, "cidr": "10.1.2.3/33", "ip_version": 4}},
    )
    assert bad_cidr.status_code == 400
    assert "cidr" in bad_cidr.json()["NeutronError"]["message"]
    shared = tenant.member.post("network", "/networks", {"network": {"shared": True}})
    assert shared.status_code == 403


def test_server_addresses_lag_floating_ip_changes_as_novas_cache_does(
    cloud: Cloud, tenant: Tenant
) -> None:
    """A real Nova lists a floating IP about a second after it is bound and after it is gone.

    Neutron is the truth at once; the server's addresses follow when Neutron's network-changed
    event has refreshed Nova's cache (devcloud's --address-refresh-seconds, 1 s by default).
    """
    server_id = boot(tenant.member, cloud)
    wait_status(tenant.member, server_id, "ACTIVE")
    port = port_of(tenant, server_id)
    created = tenant.member.post(
        "network",
        "/floatingips",
        {"floatingip": {"floating_network_id": cloud.network_id("public"), "port_id": port["id"]}},
    )
    assert created.status_code == 201, created.text
    fip = created.json()["floatingip"]
    listed = tenant.member.get("network", "/floatingips", params={"port_id": port["id"]})
    assert [f["id"] for f in listed.json()["floatingips"]] == [fip["id"]]
    assert floating_shown(tenant, server_id) == []
    assert wait_for(lambda: floating_shown(tenant, server_id)) == [fip["floating_ip_address"]]

    assert tenant.member.delete("network", f"/floatingips/{fip['id']}").status_code == 204
    assert floating_shown(tenant, server_id) == [fip["floating_ip_address"]]
    wait_for(lambda: floating_shown(tenant, server_id) == [])
