"""Placement: a provider per compute host, its inventory, and usage that follows the servers."""

from __future__ import annotations

from typing import Any

from tests.devcloud.conftest import Cloud, Tenant, boot, wait_gone, wait_status


def providers(cloud: Cloud) -> dict[str, dict[str, Any]]:
    response = cloud.admin.get("placement", "/resource_providers")
    assert response.status_code == 200, response.text
    return {p["name"]: p for p in response.json()["resource_providers"]}


def usage(cloud: Cloud, provider: str) -> dict[str, int]:
    response = cloud.admin.get("placement", f"/resource_providers/{provider}/usages")
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body["resource_provider_generation"], int)
    return dict(body["usages"])


def test_the_version_document_needs_no_token(cloud: Cloud) -> None:
    response = cloud.api("").get("placement", "")
    assert response.status_code == 200
    (version,) = response.json()["versions"]
    assert version["id"] == "v1.0"
    assert version["min_version"] == "1.0"
    assert response.headers["OpenStack-API-Version"] == "placement 1.0"


def test_every_compute_host_is_a_provider_with_an_inventory(cloud: Cloud) -> None:
    found = providers(cloud)
    assert set(found) == {"codesquare-devstack-compute1", "codesquare-devstack-compute2"}
    provider = found["codesquare-devstack-compute1"]
    assert {link["rel"] for link in provider["links"]} >= {"self", "inventories", "usages"}
    by_name = cloud.admin.get(
        "placement", "/resource_providers", params={"name": "codesquare-devstack-compute1"}
    ).json()["resource_providers"]
    assert [p["uuid"] for p in by_name] == [provider["uuid"]]

    response = cloud.admin.get("placement", f"/resource_providers/{provider['uuid']}/inventories")
    assert response.status_code == 200
    inventories = response.json()["inventories"]
    assert set(inventories) == {"VCPU", "MEMORY_MB", "DISK_GB"}
    for item in inventories.values():
        assert set(item) == {
            "total",
            "reserved",
            "min_unit",
            "max_unit",
            "step_size",
            "allocation_ratio",
        }
    assert inventories["MEMORY_MB"]["reserved"] == 512
    assert inventories["VCPU"]["allocation_ratio"] > 1


def test_usage_follows_a_server_on_its_host_until_it_is_deleted(
    cloud: Cloud, tenant: Tenant
) -> None:
    host = "codesquare-devstack-compute2"
    provider = providers(cloud)[host]["uuid"]
    before = usage(cloud, provider)
    server_id = boot(tenant.admin, cloud, availability_zone=f"nova:{host}")
    wait_status(tenant.admin, server_id, "ACTIVE")
    during = usage(cloud, provider)
    # m1.tiny: 1 vCPU, 512 MiB, 1 GiB.
    assert during == {
        "VCPU": before["VCPU"] + 1,
        "MEMORY_MB": before["MEMORY_MB"] + 512,
        "DISK_GB": before["DISK_GB"] + 1,
    }
    assert tenant.admin.delete("compute", f"/servers/{server_id}").status_code == 204
    wait_gone(tenant.admin, server_id)
    assert usage(cloud, provider) == before


def test_members_are_refused_and_unknown_providers_are_404(cloud: Cloud, tenant: Tenant) -> None:
    refused = tenant.member.get("placement", "/resource_providers")
    assert refused.status_code == 403
    (error,) = refused.json()["errors"]
    assert error["status"] == 403
    assert error["title"] == "Forbidden"

    missing = cloud.admin.get("placement", "/resource_providers/not-a-provider/usages")
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["detail"]
