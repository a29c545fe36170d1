"""devcloud as a process: stop, persistence, reset, token expiry, page cap, concurrency."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import requests

from devcloud.testing import start_devcloud
from tests.devcloud.conftest import Api, Cloud, boot, issue_token, wait_for, wait_status


def test_it_writes_clouds_yaml_says_where_and_stops_cleanly_on_sigterm(fresh_dir: Path) -> None:
    running = start_devcloud(fresh_dir, admin_password="s3cret'pw")
    try:
        text = running.clouds_yaml.read_text()
        assert "  devcloud:\n" in text
        assert f"auth_url: {running.url}/identity/v3" in text
        assert "password: 's3cret''pw'" in text  # YAML single-quote escaping
        assert "region_name: RegionOne" in text
        assert str(running.clouds_yaml) in running.log_path.read_text()
        assert issue_token(running.url, "admin", "s3cret'pw")
    finally:
        running.stop()
    assert running.process.returncode == 0
    assert "devcloud: stopped" in running.log_path.read_text()


def test_sigint_also_stops_it_cleanly(fresh_dir: Path) -> None:
    running = start_devcloud(fresh_dir)
    running.process.send_signal(signal.SIGINT)
    assert running.process.wait(timeout=10) == 0
    running.stop()


def test_state_and_tokens_survive_a_restart_and_reset_forgets_them(fresh_dir: Path) -> None:
    first = start_devcloud(fresh_dir, build_seconds=0.05)
    try:
        cloud = Cloud(first)
        tenant = cloud.tenant()
        server_id = boot(tenant.member, cloud)
        wait_status(tenant.member, server_id, "ACTIVE")
        token = tenant.member.token
    finally:
        first.stop()

    second = start_devcloud(fresh_dir, build_seconds=0.05, admin_password="rotated")
    try:
        api = Api(second.url, token, "2.79")
        server = api.get("compute", f"/servers/{server_id}").json()["server"]
        assert server["status"] == "ACTIVE"
        assert api.get("network", "/ports", params={"device_id": server_id}).json()["ports"]
        # Starting with another --admin-password resets the admin's password, as bootstrap does.
        assert issue_token(second.url, "admin", "rotated")
    finally:
        second.stop()

    third = start_devcloud(fresh_dir, reset=True)
    try:
        admin = Api(third.url, issue_token(third.url, "admin", "devcloud-admin"))
        names = {u["name"] for u in admin.get("identity", "/v3/users").json()["users"]}
        assert tenant.user_name not in names
        assert Api(third.url, token).get("compute", "/servers").status_code == 401
    finally:
        third.stop()


def test_tokens_expire_after_the_configured_ttl(fresh_dir: Path) -> None:
    running = start_devcloud(fresh_dir, token_ttl=1)
    try:
        api = Api(running.url, issue_token(running.url, "admin", running.admin_password))
        assert api.get("compute", "/servers").status_code == 200
        wait_for(lambda: api.get("compute", "/servers").status_code != 200, timeout=5)
        expired = api.get("compute", "/servers")
        assert expired.status_code == 401
        assert expired.json()["error"]["message"] == (
            "The request you have made requires authentication."
        )
    finally:
        running.stop()


def test_max_limit_caps_a_page_of_servers(fresh_dir: Path) -> None:
    running = start_devcloud(fresh_dir, extra_args=["--max-limit", "4"])
    try:
        cloud = Cloud(running)
        tenant = cloud.tenant()
        running.faults.bulk_servers(project_id=tenant.project_id, count=10)
        capped = tenant.member.get("compute", "/servers/detail", params={"limit": 100}).json()
        assert len(capped["servers"]) == 4
        assert "limit=4" in capped["servers_links"][0]["href"]
        default = tenant.member.get("compute", "/servers").json()
        assert len(default["servers"]) == 4
        running.faults.clear_requests()
        url: str | None = f"{running.url}/compute/v2.1/servers/detail"
        total = 0
        while url:
            body = tenant.member.session.get(url, timeout=10).json()
            total += len(body["servers"])
            url = body["servers_links"][0]["href"] if body.get("servers_links") else None
        assert total == 10
        assert len(running.faults.requests()) == 3  # ceil(10 / 4)
    finally:
        running.stop()


def test_fifty_concurrent_clients_lose_no_update(fresh_dir: Path) -> None:
    running = start_devcloud(fresh_dir, build_seconds=0.05)
    try:
        cloud = Cloud(running)
        tenant = cloud.tenant()
        cloud.admin.put(
            "compute",
            f"/os-quota-sets/{tenant.project_id}",
            {"quota_set": {"instances": -1, "cores": -1, "ram": -1}},
        )
        shared = boot(tenant.member, cloud, name="shared")
        image, network = cloud.image_id(), cloud.network_id("private")
        kept: list[str] = []
        errors: list[str] = []
        lock = threading.Lock()
        start = threading.Barrier(50)

        def client(number: int) -> None:
            api = Api(running.url, tenant.member.token, "2.79")
            start.wait()
            ids = []
            for suffix in ("keep", "drop"):
                body = {
                    "server": {
                        "name": f"c{number}-{suffix}",
                        "imageRef": image,
                        "flavorRef": "1",
                        "networks": [{"uuid": network}],
                    }
                }
                response = api.post("compute", "/servers", body)
                if response.status_code != 202:
                    errors.append(response.text)
                    return
                ids.append(response.json()["server"]["id"])
            meta = api.post(
                "compute", f"/servers/{shared}/metadata", {"metadata": {f"k{number}": "v"}}
            )
            deleted = api.delete("compute", f"/servers/{ids[1]}")
            with lock:
                kept.append(ids[0])
                if meta.status_code != 200 or deleted.status_code != 204:
                    errors.append(f"{meta.status_code} {deleted.status_code}")

        threads = [threading.Thread(target=client, args=(n,)) for n in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == []

        def settled() -> list[dict[str, object]] | None:
            servers = tenant.member.get(
                "compute", "/servers/detail", params={"limit": 1000}
            ).json()["servers"]
            done = all(s["status"] == "ACTIVE" for s in servers)
            return servers if done and len(servers) == 51 else None

        servers = wait_for(settled, timeout=30)
        assert {s["id"] for s in servers} == {*kept, shared}
        metadata = tenant.member.get("compute", f"/servers/{shared}/metadata").json()["metadata"]
        assert set(metadata) == {f"k{n}" for n in range(50)}
        ports = tenant.member.get("network", "/ports").json()["ports"]
        assert len(ports) == 51
        addresses = [ip["ip_address"] for p in ports for ip in p["fixed_ips"]]
        assert len(addresses) == len(set(addresses)) == 102  # IPv4 + IPv6 each, none shared
    finally:
        running.stop()


def test_unknown_top_level_paths_are_404(cloud: Cloud) -> None:
    assert requests.get(f"{cloud.url}/nowhere", timeout=10).status_code == 404


def test_public_cidr_sizes_the_floating_ip_pool(fresh_dir: Path) -> None:
    running = start_devcloud(fresh_dir, extra_args=["--public-cidr", "172.24.0.0/22"])
    try:
        api = Api(running.url, issue_token(running.url, "admin", running.admin_password))
        public = api.get("network", "/networks?name=public").json()["networks"][0]
        subnet = api.get("network", f"/subnets?network_id={public['id']}").json()["subnets"][0]
        assert subnet["cidr"] == "172.24.0.0/22"
        availability = api.get("network", f"/network-ip-availabilities/{public['id']}").json()
        assert availability["network_ip_availability"]["total_ips"] > 1000
        fip = api.post(
            "network", "/floatingips", {"floatingip": {"floating_network_id": public["id"]}}
        )
        assert fip.status_code == 201, fip.text
        assert fip.json()["floatingip"]["floating_ip_address"].startswith("172.24.")
    finally:
        running.stop()
