"""Neutron's network-ip-availabilities: pool sizes and allocations, admin only."""

from __future__ import annotations

from typing import Any

from tests.devcloud.conftest import Cloud, Tenant


def availability(cloud: Cloud, network_id: str) -> dict[str, Any]:
    response = cloud.admin.get("network", f"/network-ip-availabilities/{network_id}")
    assert response.status_code == 200, response.text
    return dict(response.json()["network_ip_availability"])


def test_the_public_pool_counts_its_addresses_and_each_floating_ip_uses_one(
    cloud: Cloud, tenant: Tenant
) -> None:
    public = cloud.network_id("public")
    before = availability(cloud, public)
    assert before["network_name"] == "public"
    (subnet,) = before["subnet_ip_availability"]
    assert subnet["cidr"] == "172.24.4.0/24"
    # 172.24.4.2 - 172.24.4.254: the gateway (.1) and broadcast are outside the pool.
    assert subnet["total_ips"] == before["total_ips"] == 253
    assert 0 < before["used_ips"] < before["total_ips"]  # router1's gateway at least

    created = tenant.admin.post(
        "network", "/floatingips", {"floatingip": {"floating_network_id": public}}
    )
    assert created.status_code == 201, created.text
    during = availability(cloud, public)
    assert during["used_ips"] == before["used_ips"] + 1

    fip_id = created.json()["floatingip"]["id"]
    assert tenant.admin.delete("network", f"/floatingips/{fip_id}").status_code == 204
    assert availability(cloud, public)["used_ips"] == before["used_ips"]


def test_the_list_filters_by_network_and_members_are_refused(cloud: Cloud, tenant: Tenant) -> None:
    public = cloud.network_id("public")
    listed = cloud.admin.get(
        "network", "/network-ip-availabilities", params={"network_id": public}
    ).json()["network_ip_availabilities"]
    assert [n["network_id"] for n in listed] == [public]

    refused = tenant.member.get("network", f"/network-ip-availabilities/{public}")
    assert refused.status_code == 403
    assert refused.json()["NeutronError"]["type"] == "PolicyNotAuthorized"
    missing = cloud.admin.get("network", "/network-ip-availabilities/no-such-network")
    assert missing.status_code == 404
    assert cloud.admin.get("network", "/extensions/network-ip-availability").status_code == 200
