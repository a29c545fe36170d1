"""Nova v2.1 behaviour: microversions, the server life cycle, policy, quotas, lists."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.devcloud.conftest import (
    Api,
    Cloud,
    Tenant,
    boot,
    unique,
    wait_for,
    wait_gone,
    wait_status,
)

NAIVE_MICROS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$")
WHOLE_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def test_microversions_are_negotiated_echoed_and_bounded(cloud: Cloud, tenant: Tenant) -> None:
    bare = Api(cloud.url, tenant.member.token)  # sends no microversion header at all
    plain = bare.get("compute", "/flavors")
    assert plain.headers["OpenStack-API-Version"] == "compute 2.1"
    assert plain.headers["X-Compute-Request-Id"] == plain.headers["x-openstack-request-id"]
    new_style = tenant.member.get(
        "compute", "/flavors", headers={"OpenStack-API-Version": "compute 2.79"}
    )
    assert new_style.headers["X-OpenStack-Nova-API-Version"] == "2.79"
    legacy = bare.get("compute", "/flavors", headers={"X-OpenStack-Nova-API-Version": "2.60"})
    assert legacy.headers["OpenStack-API-Version"] == "compute 2.60"
    latest = tenant.member.get(
        "compute", "/flavors", headers={"OpenStack-API-Version": "compute latest"}
    )
    assert latest.headers["OpenStack-API-Version"] == "compute 2.96"
    too_new = tenant.member.get(
        "compute", "/flavors", headers={"OpenStack-API-Version": "compute 2.200"}
    )
    assert too_new.status_code == 406
    assert too_new.json() == {
        "computeFault": {
            "code": 406,
            "message": "Version 2.200 is not supported by the API. "
            "Minimum is 2.1 and maximum is 2.96.",
        }
    }
    garbage = tenant.member.get(
        "compute", "/flavors", headers={"OpenStack-API-Version": "compute x"}
    )
    assert garbage.status_code == 400


def test_the_image_proxy_answers_below_2_36_and_404s_from_it(tenant: Tenant) -> None:
    old = tenant.member.get("compute", "/images", headers={"OpenStack-API-Version": "compute 2.35"})
    assert old.status_code == 200
    assert {i["name"] for i in old.json()["images"]} >= {"cirros-0.6.3-x86_64-disk"}
    gone = tenant.member.get(
        "compute", "/images", headers={"OpenStack-API-Version": "compute 2.36"}
    )
    assert gone.status_code == 404
    assert gone.json() == {
        "itemNotFound": {"code": 404, "message": "The resource could not be found."}
    }


def test_flavor_lists_and_details(tenant: Tenant) -> None:
    brief = tenant.member.get("compute", "/flavors").json()["flavors"]
    assert "vcpus" not in brief[0]
    detail = tenant.member.get("compute", "/flavors/detail").json()["flavors"]
    tiny = next(f for f in detail if f["name"] == "m1.tiny")
    assert (tiny["id"], tiny["vcpus"], tiny["ram"], tiny["disk"]) == ("1", 1, 512, 1)
    assert tenant.member.get("compute", "/flavors/999").status_code == 404


def test_a_server_builds_then_runs_stops_starts_reboots_and_is_deleted(
    cloud: Cloud, tenant: Tenant
) -> None:
    api = tenant.admin
    response = api.post(
        "compute",
        "/servers",
        {
            "server": {
                "name": "life",
                "imageRef": cloud.image_id(),
                "flavorRef": "1",
                "networks": [{"uuid": cloud.network_id("private")}],
                "metadata": {"portal_request": "r-1"},
            }
        },
    )
    assert response.status_code == 202
    created = response.json()["server"]
    assert created["adminPass"]
    assert response.headers["Location"] == f"{cloud.url}/compute/v2.1/servers/{created['id']}"
    server_id = created["id"]

    building = api.get("compute", f"/servers/{server_id}").json()["server"]
    assert building["status"] == "BUILD"
    assert building["OS-EXT-STS:vm_state"] == "building"
    assert building["OS-EXT-STS:task_state"] in ("scheduling", "networking", "spawning")
    assert building["OS-EXT-STS:power_state"] == 0
    assert building["addresses"] == {}
    assert building["OS-SRV-USG:launched_at"] is None

    active = wait_status(api, server_id, "ACTIVE")
    assert active["OS-EXT-STS:power_state"] == 1
    assert active["OS-EXT-STS:task_state"] is None
    assert NAIVE_MICROS.match(active["OS-SRV-USG:launched_at"])
    assert WHOLE_Z.match(active["created"])
    assert WHOLE_Z.match(active["updated"])
    assert active["OS-EXT-SRV-ATTR:host"].startswith("codesquare-devstack-compute")
    assert active["tenant_id"] == tenant.project_id
    assert active["metadata"] == {"portal_request": "r-1"}
    fixed = active["addresses"]["private"]
    assert {a["version"] for a in fixed} == {4, 6}
    assert all(a["OS-EXT-IPS:type"] == "fixed" for a in fixed)
    assert active["flavor"]["original_name"] == "m1.tiny"  # embedded flavor at 2.79

    def action(body: dict[str, object]) -> int:
        return api.post("compute", f"/servers/{server_id}/action", body).status_code

    assert action({"os-start": None}) == 409
    conflict = api.post("compute", f"/servers/{server_id}/action", {"os-start": None}).json()
    assert conflict["conflictingRequest"]["message"] == (
        f"Cannot 'start' instance {server_id} while it is in vm_state active"
    )
    assert action({"os-stop": None}) == 202
    stopping = api.get("compute", f"/servers/{server_id}").json()["server"]
    assert (stopping["status"], stopping["OS-EXT-STS:task_state"]) == ("ACTIVE", "powering-off")
    stopped = wait_status(api, server_id, "SHUTOFF")
    assert stopped["OS-EXT-STS:power_state"] == 4
    assert stopped["OS-EXT-STS:vm_state"] == "stopped"
    assert action({"reboot": {"type": "SOFT"}}) == 409
    assert action({"os-start": None}) == 202
    wait_status(api, server_id, "ACTIVE")
    assert action({"reboot": {"type": "SOFT"}}) == 202
    assert api.get("compute", f"/servers/{server_id}").json()["server"]["status"] == "REBOOT"
    wait_status(api, server_id, "ACTIVE")
    assert action({"reboot": {"type": "HARD"}}) == 202
    assert api.get("compute", f"/servers/{server_id}").json()["server"]["status"] == "HARD_REBOOT"
    wait_status(api, server_id, "ACTIVE")
    assert action({"reboot": {"type": "GENTLE"}}) == 400

    ports = api.get("network", "/ports", params={"device_id": server_id}).json()["ports"]
    assert len(ports) == 1
    assert ports[0]["device_owner"] == "compute:nova"
    assert ports[0]["status"] == "ACTIVE"
    deleted = api.delete("compute", f"/servers/{server_id}")
    assert deleted.status_code == 204
    deleting = api.get("compute", f"/servers/{server_id}").json()["server"]
    assert (deleting["status"], deleting["OS-EXT-STS:task_state"]) == ("ACTIVE", "deleting")
    wait_gone(api, server_id)
    missing = api.get("compute", f"/servers/{server_id}").json()
    assert missing == {
        "itemNotFound": {"code": 404, "message": f"Instance {server_id} could not be found."}
    }
    assert api.get("network", "/ports", params={"device_id": server_id}).json()["ports"] == []


def test_a_server_deleted_while_building_shows_deleting_then_goes(
    cloud: Cloud, tenant: Tenant
) -> None:
    server_id = boot(tenant.member, cloud)
    assert tenant.member.delete("compute", f"/servers/{server_id}").status_code == 204
    server = tenant.member.get("compute", f"/servers/{server_id}").json()["server"]
    assert (server["status"], server["OS-EXT-STS:task_state"]) == ("BUILD", "deleting")
    wait_gone(tenant.member, server_id)
    assert tenant.member.get("network", "/ports", params={"device_id": server_id}).json() == {
        "ports": []
    }


def test_networks_auto_and_none(cloud: Cloud, tenant: Tenant) -> None:
    bare = wait_status(tenant.member, boot(tenant.member, cloud, networks="none"), "ACTIVE")
    assert bare["addresses"] == {}
    assert "security_groups" not in bare
    auto = wait_status(tenant.member, boot(tenant.member, cloud, networks="auto"), "ACTIVE")
    assert list(auto["addresses"]) == ["private"]  # the one shared network


def test_flavor_is_a_link_below_2_47(cloud: Cloud, tenant: Tenant) -> None:
    server_id = boot(tenant.member, cloud)
    old = Api(cloud.url, tenant.member.token, "2.46")
    flavor = old.get("compute", f"/servers/{server_id}").json()["server"]["flavor"]
    assert flavor["id"] == "1"
    assert "original_name" not in flavor
    # Admin-only attributes are absent for a member.
    assert (
        "OS-EXT-SRV-ATTR:host" not in old.get("compute", f"/servers/{server_id}").json()["server"]
    )


def test_bad_references_are_rejected_before_202(cloud: Cloud, tenant: Tenant) -> None:
    def create(**changes: object) -> tuple[int, Any]:
        server: dict[str, Any] = {
            "name": "bad",
            "imageRef": cloud.image_id(),
            "flavorRef": "1",
            "networks": [{"uuid": cloud.network_id("private")}],
        }
        for key, value in changes.items():
            if value is None:
                del server[key]
            else:
                server[key] = value
        response = tenant.member.post("compute", "/servers", {"server": server})
        return response.status_code, response.json()

    assert create(imageRef="11111111-2222-3333-4444-555555555555") == (
        400,
        {"badRequest": {"code": 400, "message": "Can not find requested image"}},
    )
    assert create(flavorRef="999")[1]["badRequest"]["message"] == "Flavor 999 could not be found."
    net = "11111111-2222-3333-4444-555555555555"
    assert create(networks=[{"uuid": net}])[1]["badRequest"]["message"] == (
        f"Network {net} could not be found."
    )
    status, body = create(networks=None)
    assert status == 400
    assert "'networks' is a required property" in body["badRequest"]["message"]
    status, body = create(name=None)
    assert status == 400
    assert "'name' is a required property" in body["badRequest"]["message"]
    status, body = create(unexpected="x")
    assert "('unexpected' was unexpected)" in body["badRequest"]["message"]
    too_small = create(imageRef=cloud.image_id("ubuntu"))
    assert too_small[0] == 400
    assert "Flavor's disk is too small" in str(too_small[1])
    public = create(networks=[{"uuid": cloud.network_id("public")}])
    assert public[0] == 403


def test_forcing_a_host_is_admin_only_and_a_missing_host_ends_in_error(
    cloud: Cloud, tenant: Tenant
) -> None:
    network = [{"uuid": cloud.network_id("private")}]
    forced = {"availability_zone": "nova:codesquare-devstack-compute2", "networks": network}
    denied = tenant.member.post(
        "compute",
        "/servers",
        {"server": {"name": "f", "imageRef": cloud.image_id(), "flavorRef": "1", **forced}},
    )
    assert denied.status_code == 403
    assert denied.json()["forbidden"]["message"] == (
        "Policy doesn't allow os_compute_api:servers:create:forced_host to be performed."
    )
    server_id = boot(tenant.admin, cloud, availability_zone="nova:codesquare-devstack-compute2")
    placed = wait_status(tenant.admin, server_id, "ACTIVE")
    assert placed["OS-EXT-SRV-ATTR:host"] == "codesquare-devstack-compute2"

    lost = boot(tenant.admin, cloud, availability_zone="nova:no-such-host")
    failed = wait_status(tenant.admin, lost, "ERROR")
    assert failed["fault"]["code"] == 500
    assert failed["fault"]["message"].startswith("No valid host was found.")
    assert WHOLE_Z.match(failed["fault"]["created"])
    assert failed["OS-EXT-STS:power_state"] == 0
    assert tenant.admin.get("network", "/ports", params={"device_id": lost}).json()["ports"] == []


def test_a_flavor_no_host_can_hold_and_an_image_gone_before_spawn_end_in_error(
    cloud: Cloud, tenant: Tenant
) -> None:
    unlimited = {"quota_set": {"cores": -1, "ram": -1}}
    cloud.admin.put("compute", f"/os-quota-sets/{tenant.project_id}", unlimited)
    huge = boot(tenant.member, cloud, flavorRef="6")
    assert wait_status(tenant.member, huge, "ERROR")["fault"]["message"].startswith("No valid host")
    upload = cloud.admin.post(
        "image", "/images", {"name": unique("img"), "visibility": "public"}
    ).json()
    image_id = upload["id"]
    cloud.admin.post("image", f"/images/{image_id}/actions/reactivate")
    doomed = boot(tenant.member, cloud, imageRef=image_id)
    assert cloud.admin.delete("image", f"/images/{image_id}").status_code == 204
    failed = wait_status(tenant.member, doomed, "ERROR")
    assert image_id in failed["fault"]["message"]
    # Members do not see the fault's details; admins do.
    assert "details" not in failed["fault"]


def test_member_tokens_see_only_their_project_and_all_tenants_is_admin_only(
    cloud: Cloud, tenant: Tenant
) -> None:
    other = cloud.tenant()
    mine = boot(tenant.member, cloud)
    theirs = boot(other.member, cloud)
    listed = {s["id"] for s in tenant.member.get("compute", "/servers").json()["servers"]}
    assert mine in listed
    assert theirs not in listed
    assert tenant.member.get("compute", f"/servers/{theirs}").status_code == 404
    refused = tenant.member.get("compute", "/servers/detail", params={"all_tenants": 1})
    assert refused.status_code == 403
    assert refused.json()["forbidden"]["message"] == (
        "Policy doesn't allow os_compute_api:servers:detail:get_all_tenants to be performed."
    )
    everything = cloud.admin.get(
        "compute", "/servers/detail", params={"all_tenants": 1, "project_id": other.project_id}
    ).json()["servers"]
    assert [s["id"] for s in everything] == [theirs]
    # Without all_tenants even an admin sees its own project only.
    admin_own = {s["id"] for s in cloud.admin.get("compute", "/servers").json()["servers"]}
    assert theirs not in admin_own


def test_server_filters_name_status_user_and_changes_since(cloud: Cloud, tenant: Tenant) -> None:
    api = tenant.admin
    keep = boot(api, cloud, name="alpha-keep")
    drop = boot(api, cloud, name="alpha-drop")
    other = boot(api, cloud, name="beta")
    by_name = api.get("compute", "/servers", params={"name": "^alpha"}).json()["servers"]
    assert {s["id"] for s in by_name} == {keep, drop}
    wait_status(api, keep, "ACTIVE")
    wait_status(api, drop, "ACTIVE")
    wait_status(api, other, "ACTIVE")
    before_delete = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    time.sleep(0.01)
    api.delete("compute", f"/servers/{drop}")
    wait_gone(api, drop)
    changed = api.get("compute", "/servers/detail", params={"changes-since": before_delete}).json()
    statuses = {s["id"]: s["status"] for s in changed["servers"]}
    assert statuses == {drop: "DELETED"}
    active = api.get("compute", "/servers/detail", params={"status": "ACTIVE"}).json()["servers"]
    assert keep in {s["id"] for s in active}
    bad_status = api.get("compute", "/servers/detail", params={"status": "SLEEPY"})
    assert bad_status.status_code == 400
    user_filtered = cloud.admin.get(
        "compute", "/servers/detail", params={"all_tenants": 1, "user_id": tenant.user_id}
    ).json()["servers"]
    assert user_filtered == []  # the admin created them, so they belong to the admin user


def test_pagination_follows_servers_links_and_rejects_unknown_markers(
    cloud: Cloud, tenant: Tenant
) -> None:
    ids = cloud.running.faults.bulk_servers(project_id=tenant.project_id, count=7)
    seen: list[str] = []
    url: str | None = f"{cloud.url}/compute/v2.1/servers/detail?limit=3"
    calls = 0
    while url:
        body = tenant.member.session.get(url, timeout=10).json()
        calls += 1
        seen.extend(s["id"] for s in body["servers"])
        links = body.get("servers_links", [])
        url = links[0]["href"] if links else None
    assert sorted(seen) == sorted(ids)
    assert calls == 3
    assert seen == sorted(seen, key=ids.index, reverse=True)  # newest first
    strict = tenant.member.get("compute", "/servers", params={"colour": "blue"})
    assert strict.status_code == 400  # unknown query parameters are refused from 2.75
    assert "('colour' was unexpected)" in strict.json()["badRequest"]["message"]
    lenient = Api(cloud.url, tenant.member.token, "2.74")
    assert lenient.get("compute", "/servers", params={"colour": "blue"}).status_code == 200
    bad = tenant.member.get("compute", "/servers", params={"marker": "nope"})
    assert bad.status_code == 400
    assert bad.json()["badRequest"]["message"] == "marker [nope] not found"


def test_quotas_refuse_the_eleventh_instance_with_novas_message(
    cloud: Cloud, tenant: Tenant
) -> None:
    cloud.admin.put(
        "compute", f"/os-quota-sets/{tenant.project_id}", {"quota_set": {"instances": 2}}
    )
    boot(tenant.member, cloud)
    boot(tenant.member, cloud)
    response = tenant.member.post(
        "compute",
        "/servers",
        {
            "server": {
                "name": "over",
                "imageRef": cloud.image_id(),
                "flavorRef": "1",
                "networks": [{"uuid": cloud.network_id("private")}],
            }
        },
    )
    assert response.status_code == 403
    assert response.json()["forbidden"]["message"] == (
        "Quota exceeded for instances: Requested 1, but already used 2 of 2 instances"
    )
    quota = tenant.member.get("compute", f"/os-quota-sets/{tenant.project_id}").json()
    assert quota["quota_set"]["instances"] == 2
    assert (
        tenant.member.put(
            "compute", f"/os-quota-sets/{tenant.project_id}", {"quota_set": {"instances": 50}}
        ).status_code
        == 403
    )


def test_server_metadata_can_be_read_merged_replaced_and_deleted(
    cloud: Cloud, tenant: Tenant
) -> None:
    server_id = boot(tenant.member, cloud, metadata={"a": "1"})
    base = f"/servers/{server_id}/metadata"
    merged = tenant.member.post("compute", base, {"metadata": {"b": "2"}}).json()
    assert merged == {"metadata": {"a": "1", "b": "2"}}
    assert tenant.member.get("compute", base + "/b").json() == {"meta": {"b": "2"}}
    assert tenant.member.delete("compute", base + "/b").status_code == 204
    assert tenant.member.get("compute", base + "/b").status_code == 404
    replaced = tenant.member.put("compute", base, {"metadata": {"c": "3"}}).json()
    assert replaced == {"metadata": {"c": "3"}}


def test_admins_list_compute_hosts_services_and_zones(cloud: Cloud, tenant: Tenant) -> None:
    hosts = {"codesquare-devstack-compute1", "codesquare-devstack-compute2"}
    services = cloud.admin.get("compute", "/os-services", params={"binary": "nova-compute"}).json()
    assert {s["host"] for s in services["services"]} == hosts
    hypervisors = cloud.admin.get("compute", "/os-hypervisors").json()["hypervisors"]
    assert {h["hypervisor_hostname"] for h in hypervisors} == hosts
    zones = cloud.admin.get("compute", "/os-availability-zone/detail").json()
    nova = next(z for z in zones["availabilityZoneInfo"] if z["zoneName"] == "nova")
    assert set(nova["hosts"]) == hosts
    assert tenant.member.get("compute", "/os-hypervisors").status_code == 403
    assert tenant.member.get("compute", "/os-services").status_code == 403


@pytest.mark.parametrize("header", ["OpenStack-API-Version", "X-OpenStack-Nova-API-Version"])
def test_both_microversion_headers_select_the_2_74_host_field(
    cloud: Cloud, tenant: Tenant, header: str
) -> None:
    value = "compute 2.74" if header == "OpenStack-API-Version" else "2.74"
    response = tenant.admin.post(
        "compute",
        "/servers",
        {
            "server": {
                "name": "pinned",
                "imageRef": cloud.image_id(),
                "flavorRef": "1",
                "networks": [{"uuid": cloud.network_id("private")}],
                "host": "codesquare-devstack-compute1",
            }
        },
        headers={header: value},
    )
    assert response.status_code == 202, response.text
    server_id = response.json()["server"]["id"]
    assert wait_for(
        lambda: (
            tenant.admin.get("compute", f"/servers/{server_id}")
            .json()["server"]
            .get("OS-EXT-SRV-ATTR:host")
        )
    ) == ("codesquare-devstack-compute1")


def test_with_deferred_delete_a_server_is_soft_deleted_then_reclaimed(
    cloud: Cloud, tenant: Tenant
) -> None:
    control = cloud.running.faults
    control.settings(reclaim_instance_interval=0.5)
    try:
        server_id = boot(tenant.member, cloud)
        wait_status(tenant.member, server_id, "ACTIVE")
        assert tenant.member.delete("compute", f"/servers/{server_id}").status_code == 204
        soft = wait_status(tenant.member, server_id, "SOFT_DELETED")
        assert soft["OS-EXT-STS:vm_state"] == "soft-delete"
        listed = tenant.member.get("compute", "/servers/detail").json()["servers"]
        assert server_id in {s["id"] for s in listed}
        wait_gone(tenant.member, server_id)
    finally:
        control.settings(reclaim_instance_interval=0)
