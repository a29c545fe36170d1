"""The real-cloud tooling itself: process bookkeeping, a Keystone lifecycle, the seeded fixtures."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.cloud_targets import CloudTarget
from tests.realcloud import cloud, proc


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        yield child
    finally:
        child.kill()
        child.wait()


def test_stop_all_leaves_a_reused_pid_alone(sleeper: subprocess.Popen[bytes]) -> None:
    started = proc.start_time(sleeper.pid)
    assert started is not None
    stranger = proc.Proc(name="stranger", pid=sleeper.pid, started=started + 1, log="/dev/null")

    proc.stop_all([stranger], grace=0.5)

    assert sleeper.poll() is None


def test_stop_all_stops_the_whole_group(tmp_path: Path) -> None:
    # A parent that starts a child in its own group, as gunicorn starts its workers.
    script = "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"
    started = proc.spawn(
        "family", [sys.executable, "-c", script], env={}, cwd=tmp_path, log_dir=tmp_path
    )
    deadline = time.monotonic() + 10
    while len(proc._alive_in_group(started.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(proc._alive_in_group(started.pid)) == 2

    proc.stop_all([started], grace=5)

    assert proc._alive_in_group(started.pid) == []


def test_clouds_yaml_names_the_admin_project(tmp_path: Path) -> None:
    state = {
        "mode": "keystone",
        "auth_url": "http://127.0.0.1:5/v3",
        "admin_password": "pw",
        "region": "RegionOne",
    }
    written = yaml.safe_load(cloud.write_clouds_yaml(tmp_path, state).read_text())

    entry = written["clouds"]["realkeystone"]
    assert entry["auth"]["project_name"] == "admin"
    assert entry["auth"]["username"] == "admin"
    assert entry["auth"]["auth_url"] == "http://127.0.0.1:5/v3"
    assert entry["region_name"] == "RegionOne"


@pytest.mark.realkeystone
def test_keystone_up_status_down(tmp_path: Path) -> None:
    running = cloud.up(tmp_path, "keystone")
    try:
        healthy, lines = cloud.status(tmp_path)
        assert healthy, lines
        with pytest.raises(RuntimeError, match="already up"):
            cloud.up(tmp_path, "keystone")

        token = requests.post(
            f"{running.auth_url}/auth/tokens",
            json={
                "auth": {
                    "identity": {
                        "methods": ["password"],
                        "password": {
                            "user": {
                                "name": "admin",
                                "domain": {"id": "default"},
                                "password": running.admin_password,
                            }
                        },
                    },
                    "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
                }
            },
            timeout=30,
        )
        assert token.status_code == 201
        catalog = token.json()["token"]["catalog"]
        identity = next(s for s in catalog if s["type"] == "identity")
        # Nova needs the internal endpoint; the portal may be configured for any of the three.
        assert {e["interface"] for e in identity["endpoints"]} == {"public", "internal", "admin"}
        roles = requests.get(
            f"{running.auth_url}/roles",
            headers={"X-Auth-Token": token.headers["X-Subject-Token"]},
            timeout=30,
        ).json()["roles"]
        assert {"admin", "member", "reader"} <= {r["name"] for r in roles}
        pids = [item.pid for item in cloud._procs(cloud._state(tmp_path) or {})]
    finally:
        cloud.down(tmp_path)

    assert pids
    assert all(proc._alive_in_group(pid) == [] for pid in pids)
    assert cloud.status(tmp_path)[0] is False
    assert not (tmp_path / "state.json").exists()


@pytest.mark.cloud
@pytest.mark.needs("compute", "network", "image")
def test_a_fresh_cloud_has_what_tests_boot_from(cloud_target: CloudTarget) -> None:
    """Whichever full cloud is the target: a flavor, an active image, the external network
    `public` with a subnet to allocate floating IPs from, and an enabled compute host."""
    from keystoneauth1 import loading, session

    with open(cloud_target.clouds_yaml) as f:
        entry = yaml.safe_load(f)["clouds"][cloud_target.cloud_name]
    auth: Any = loading.get_plugin_loader("password").load_from_options(**entry["auth"])
    http = session.Session(auth=auth)
    where = {"interface": "public", "region_name": entry.get("region_name")}

    def get(service: str, path: str) -> Any:
        return http.get(path, endpoint_filter={"service_type": service, **where}).json()

    assert get("compute", "/flavors")["flavors"]
    images = get("image", "/v2/images")["images"]
    assert any(image["status"] == "active" for image in images)
    public = get("network", "/v2.0/networks?name=public")["networks"]
    assert [n["router:external"] for n in public] == [True]
    subnets = get("network", f"/v2.0/subnets?network_id={public[0]['id']}")["subnets"]
    assert subnets
    services = get("compute", "/os-services?binary=nova-compute")["services"]
    assert any(s["status"] == "enabled" and s["state"] == "up" for s in services)
