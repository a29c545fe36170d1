"""Benchmark devcloud: 1,000 servers, 50 concurrent clients, no errors; prints the request rate.

    .venv/bin/python bench/bench_devcloud.py [--servers 1000] [--clients 50] [--rounds 8]

Everything runs on loopback against a devcloud started in a temporary directory. Each client
logs in, then runs a bounded number of rounds of what the portal does: a page of server details,
a server, its ports, its floating IPs, a metadata write, and a create + delete of its own server.
Exits non-zero if any request failed.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devcloud.testing import RunningDevcloud, start_devcloud  # noqa: E402


def login(url: str, user: str, password: str, project: str) -> str:
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": user, "domain": {"id": "default"}, "password": password}
                },
            },
            "scope": {"project": {"name": project, "domain": {"id": "default"}}},
        }
    }
    response = requests.post(f"{url}/identity/v3/auth/tokens", json=body, timeout=60)
    response.raise_for_status()
    return str(response.headers["X-Subject-Token"])


def prepare(running: RunningDevcloud, servers: int) -> tuple[str, list[str], dict[str, str]]:
    """A project with a member user, quotas lifted, and `servers` ACTIVE servers in it."""
    url = running.url
    admin = requests.Session()
    admin.headers["X-Auth-Token"] = login(url, "admin", running.admin_password, "admin")
    project = admin.post(
        f"{url}/identity/v3/projects", json={"project": {"name": "bench", "domain_id": "default"}}
    ).json()["project"]
    user = admin.post(
        f"{url}/identity/v3/users",
        json={"user": {"name": "bench", "password": "bench-pw", "domain_id": "default"}},
    ).json()["user"]
    member = admin.get(f"{url}/identity/v3/roles", params={"name": "member"}).json()["roles"][0]
    admin.put(f"{url}/identity/v3/projects/{project['id']}/users/{user['id']}/roles/{member['id']}")
    admin.put(
        f"{url}/compute/v2.1/os-quota-sets/{project['id']}",
        json={"quota_set": {"instances": -1, "cores": -1, "ram": -1}},
    )
    started = time.perf_counter()
    ids = running.faults.bulk_servers(project_id=project["id"], count=servers)
    print(f"bulk-created {servers} servers with ports in {time.perf_counter() - started:.2f} s")
    image = next(
        i["id"]
        for i in admin.get(f"{url}/image/v2/images").json()["images"]
        if i["name"].startswith("cirros")
    )
    network = admin.get(f"{url}/networking/v2.0/networks", params={"name": "private"}).json()
    refs = {"image": image, "network": network["networks"][0]["id"]}
    return project["id"], ids, refs


class Client(threading.Thread):
    def __init__(
        self, number: int, url: str, server_ids: list[str], refs: dict[str, str], rounds: int
    ) -> None:
        super().__init__(daemon=True)
        self.number = number
        self.url = url
        self.server_ids = server_ids
        self.refs = refs
        self.rounds = rounds
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.barrier: threading.Barrier | None = None

    def call(self, session: requests.Session, method: str, path: str, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            response = session.request(method, self.url + path, timeout=60, **kwargs)
        except requests.RequestException as exc:
            self.errors.append(f"{method} {path}: {exc}")
            return None
        self.latencies.append(time.perf_counter() - started)
        if response.status_code >= 400:
            self.errors.append(f"{method} {path}: {response.status_code} {response.text[:200]}")
            return None
        return response.json() if response.content else {}

    def run(self) -> None:
        session = requests.Session()
        session.headers["X-Auth-Token"] = login(self.url, "bench", "bench-pw", "bench")
        session.headers["OpenStack-API-Version"] = "compute 2.79"
        if self.barrier is not None:
            self.barrier.wait()
        compute, network = "/compute/v2.1", "/networking/v2.0"
        for turn in range(self.rounds):
            server_id = self.server_ids[(self.number * self.rounds + turn) % len(self.server_ids)]
            marker = self.server_ids[(self.number * 7 + turn * 13) % len(self.server_ids)]
            self.call(session, "GET", f"{compute}/servers/detail?limit=50&marker={marker}")
            self.call(session, "GET", f"{compute}/servers/{server_id}")
            self.call(session, "GET", f"{network}/ports?device_id={server_id}")
            self.call(session, "GET", f"{network}/floatingips?port_id=none")
            self.call(
                session,
                "POST",
                f"{compute}/servers/{server_id}/metadata",
                json={"metadata": {f"c{self.number}": str(turn)}},
            )
            created = self.call(
                session,
                "POST",
                f"{compute}/servers",
                json={
                    "server": {
                        "name": f"bench-{self.number}-{turn}",
                        "imageRef": self.refs["image"],
                        "flavorRef": "1",
                        "networks": [{"uuid": self.refs["network"]}],
                    }
                },
            )
            if created:
                self.call(session, "DELETE", f"{compute}/servers/{created['server']['id']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=8, help="rounds of 7 calls per client")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-devcloud-") as tmp:
        started = time.perf_counter()
        running = start_devcloud(Path(tmp), build_seconds=0.5)
        print(f"devcloud answered {time.perf_counter() - started:.2f} s after launch")
        try:
            project_id, ids, refs = prepare(running, args.servers)
            session = requests.Session()
            session.headers["X-Auth-Token"] = login(running.url, "bench", "bench-pw", "bench")
            started = time.perf_counter()
            full = session.get(
                f"{running.url}/compute/v2.1/servers/detail", params={"limit": 1000}, timeout=60
            ).json()
            print(
                f"one page of {len(full['servers'])} server details: "
                f"{(time.perf_counter() - started) * 1000:.0f} ms"
            )

            clients = [Client(n, running.url, ids, refs, args.rounds) for n in range(args.clients)]
            barrier = threading.Barrier(args.clients + 1)
            for client in clients:
                client.barrier = barrier
                client.start()
            barrier.wait()  # every client has logged in; time the API calls only
            started = time.perf_counter()
            for client in clients:
                client.join(timeout=600)
            elapsed = time.perf_counter() - started

            latencies = sorted(x for c in clients for x in c.latencies)
            errors = [e for c in clients for e in c.errors]
            total = len(latencies) + len(errors)
            p95 = latencies[max(0, math.ceil(len(latencies) * 0.95) - 1)] if latencies else 0.0
            print(f"{args.clients} concurrent clients, {args.servers} servers in the project")
            print(f"requests: {total}, errors: {len(errors)}, wall time: {elapsed:.2f} s")
            print(f"request rate: {total / elapsed:.0f} requests/s")
            if latencies:
                print(
                    f"latency: median {statistics.median(latencies) * 1000:.1f} ms, "
                    f"p95 {p95 * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms"
                )
            for error in errors[:10]:
                print("error:", error)
            listing = session.get(
                f"{running.url}/compute/v2.1/servers", params={"limit": 1000}, timeout=60
            ).json()
            print(f"servers in the project afterwards: {len(listing['servers'])} ({project_id})")
            return 1 if errors else 0
        finally:
            running.stop()


if __name__ == "__main__":
    sys.exit(main())
