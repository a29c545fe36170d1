"""The seed's whole sequence through the stock `openstack` command (python-openstackclient).

Each batch is one `openstack` process reading commands from stdin and the clouds.yaml devcloud
wrote. Staff act as the admin with a token scoped to the soldier's project, as the portal must.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from devcloud.testing import RunningDevcloud

OPENSTACK = str(Path(sys.executable).with_name("openstack"))
HOST = "codesquare-devstack-compute1"


class Cli:
    """Runs `openstack` in batch mode: one process, several commands read from stdin."""

    def __init__(self, running: RunningDevcloud) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env.update({"OS_CLIENT_CONFIG_FILE": str(running.clouds_yaml), "OS_CLOUD": "devcloud"})
        self.env = env

    def batch(
        self, *commands: str, options: dict[str, str] | None = None, check: bool = True
    ) -> tuple[list[Any], subprocess.CompletedProcess[str]]:
        """The JSON documents the commands printed (commands with -f json), in order.

        `options` are OS_* variables laid over the clouds.yaml cloud: the command line of a
        batch-mode `openstack` is read as commands, so global options go in the environment.
        """
        result = subprocess.run(
            [OPENSTACK],
            input="\n".join(commands) + "\n",
            env={**self.env, **(options or {})},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        # In batch mode the exit status says nothing (1 at end of input); errors go to stderr.
        if check:
            assert result.stderr.strip() == "", f"{commands}\n{result.stderr}"
        decoder = json.JSONDecoder()
        documents = []
        text = result.stdout.strip()
        while text:
            try:
                document, end = decoder.raw_decode(text)
            except json.JSONDecodeError:
                pytest.fail(f"{commands} printed more than JSON:\n{result.stdout}")
            documents.append(document)
            text = text[end:].strip()
        return documents, result


@pytest.fixture(scope="module")
def cli(running: RunningDevcloud) -> Cli:
    if not Path(OPENSTACK).exists():
        pytest.fail(f"the openstack command is not installed next to {sys.executable}")
    return Cli(running)


def test_the_seed_sequence_through_the_openstack_command(cli: Cli) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    (token, project, user, roles, images, flavors, external), _ = cli.batch(
        "token issue -f json",
        f"project create --domain default {name} -f json",
        f"user create --domain default --project {name} --password pw-1 {name} -f json",
        f"role add --user {name} --project {name} member",
        f"role add --user admin --project {name} admin",
        f"role assignment list --project {name} --names -f json",
        "image list -f json",
        "flavor list -f json",
        "network list --external -f json",
    )
    assert token["expires"]
    assert user["default_project_id"] == project["id"]
    assert {(r["Role"], r["User"]) for r in roles} == {
        ("member", f"{name}@Default"),
        ("admin", "admin@Default"),
    }
    assert "cirros-0.6.3-x86_64-disk" in {i["Name"] for i in images}
    assert "m1.tiny" in {f["Name"] for f in flavors}
    assert [n["Name"] for n in external] == ["public"]

    scoped = {"OS_PROJECT_NAME": name}
    (network, subnet, router, groups), _ = cli.batch(
        f"network create {name}-net -f json",
        f"subnet create --network {name}-net --subnet-range 192.168.88.0/24 {name}-subnet -f json",
        f"router create --external-gateway public {name}-r -f json",
        f"router add subnet {name}-r {name}-subnet",
        f"security group list --project {name} -f json",
        options=scoped,
    )
    assert subnet["network_id"] == network["id"]
    assert router["external_gateway_info"]["network_id"] == external[0]["ID"]
    assert [g["Name"] for g in groups] == ["default"]

    (server, shown, ports), _ = cli.batch(
        f"server create --wait --image cirros-0.6.3-x86_64-disk --flavor m1.tiny "
        f"--network {name}-net --security-group {groups[0]['ID']} "
        f"--availability-zone nova:{HOST} {name}-vm -f json",
        f"server show {name}-vm -f json",
        f"port list --server {name}-vm -f json",
        options=scoped,
    )
    assert server["status"] == "ACTIVE"
    assert shown["OS-EXT-STS:power_state"] in (1, "Running")
    assert shown["OS-SRV-USG:launched_at"]
    assert shown["OS-EXT-SRV-ATTR:host"] == HOST
    assert shown["project_id"] == project["id"]
    assert len(ports) == 1

    (fip,), _ = cli.batch(
        f"floating ip create --port {ports[0]['ID']} public -f json", options=scoped
    )
    assert fip["port_id"] == ports[0]["ID"]
    assert fip["floating_ip_address"].startswith("172.24.4.")

    soldier = {"OS_USERNAME": name, "OS_PASSWORD": "pw-1", "OS_PROJECT_NAME": name}
    (own,), refused = cli.batch(
        "server list -f json", "server list --all-projects -f json", options=soldier, check=False
    )
    assert [s["Name"] for s in own] == [f"{name}-vm"]
    assert "get_all_tenants" in refused.stderr

    (left, after), _ = cli.batch(
        f"floating ip delete {fip['floating_ip_address']}",
        f"floating ip list --port {ports[0]['ID']} -f json",
        f"server delete --wait {name}-vm",
        "server list -f json",
        options=scoped,
    )
    assert left == []
    assert after == []

    cli.batch("user password set --original-password pw-1 --password pw-2", options=soldier)
    renewed = {**soldier, "OS_PASSWORD": "pw-2"}
    (new_token,), _ = cli.batch("token issue -f json", options=renewed)
    assert new_token["user_id"] == user["id"]
    stale, old = cli.batch("token issue -f json", options=soldier, check=False)
    assert stale == []
    assert "401" in old.stderr


def test_staff_pick_compute_hosts_the_way_the_seed_does(cli: Cli) -> None:
    (services, hypervisors, zones), _ = cli.batch(
        "compute service list --service nova-compute -f json",
        "hypervisor list -f json",
        "availability zone list --long -f json",
    )
    hosts = {HOST, "codesquare-devstack-compute2"}
    assert {s["Host"] for s in services} == hosts
    assert {h["Hypervisor Hostname"] for h in hypervisors} == hosts
    assert hosts <= {z["Host Name"] for z in zones if z["Zone Name"] == "nova"}
