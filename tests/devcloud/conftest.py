"""Fixtures for devcloud's own tests: one devcloud per module, raw HTTP sessions per role."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from devcloud.testing import RunningDevcloud, start_devcloud

# Short enough to keep the suite fast, long enough that BUILD is observable.
BUILD_SECONDS = 0.3


class Api:
    """A requests session bound to one token, with paths relative to the catalog prefixes."""

    PREFIX = {
        "identity": "/identity",
        "compute": "/compute/v2.1",
        "network": "/networking/v2.0",
        "image": "/image/v2",
        "placement": "/placement",
    }

    def __init__(self, url: str, token: str | None, microversion: str | None = None) -> None:
        self.url = url
        self.session = requests.Session()
        if token:
            self.session.headers["X-Auth-Token"] = token
        if microversion:
            self.session.headers["OpenStack-API-Version"] = f"compute {microversion}"
        self.token = token

    def call(self, method: str, service: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, self.url + self.PREFIX[service] + path, **kwargs)

    def get(self, service: str, path: str, **kwargs: Any) -> requests.Response:
        return self.call("GET", service, path, **kwargs)

    def post(self, service: str, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return self.call("POST", service, path, json=body, **kwargs)

    def put(self, service: str, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return self.call("PUT", service, path, json=body, **kwargs)

    def delete(self, service: str, path: str, **kwargs: Any) -> requests.Response:
        return self.call("DELETE", service, path, **kwargs)


def password_auth(user: str, password: str, project: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": user, "domain": {"id": "default"}, "password": password}
                },
            }
        }
    }
    if project is not None:
        body["auth"]["scope"] = {"project": {"name": project, "domain": {"name": "Default"}}}
    return body


def issue_token(url: str, user: str, password: str, project: str | None = "admin") -> str:
    response = requests.post(
        f"{url}/identity/v3/auth/tokens", json=password_auth(user, password, project), timeout=30
    )
    assert response.status_code == 201, response.text
    return str(response.headers["X-Subject-Token"])


@dataclass
class Tenant:
    """A project with a member user: what the portal makes for one soldier."""

    project_id: str
    project_name: str
    user_id: str
    user_name: str
    password: str
    member: Api  # the soldier's own token, scoped to their project
    admin: Api  # the admin user's token scoped to the soldier's project (how the portal acts)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_for(check: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll until check() returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(interval)


class Cloud:
    """One running devcloud plus the admin's session and tenant factory."""

    def __init__(self, running: RunningDevcloud) -> None:
        self.running = running
        self.url = running.url
        self.admin = Api(self.url, issue_token(self.url, "admin", running.admin_password))
        self._roles = {
            r["name"]: r["id"] for r in self.admin.get("identity", "/v3/roles").json()["roles"]
        }

    def relogin_admin(self) -> None:
        """A fresh admin token, for tests that revoke every token."""
        self.admin = Api(self.url, issue_token(self.url, "admin", self.running.admin_password))

    def role_id(self, name: str) -> str:
        return self._roles[name]

    def api(self, token: str, microversion: str | None = None) -> Api:
        return Api(self.url, token, microversion)

    def tenant(self, microversion: str | None = "2.79") -> Tenant:
        name = unique("soldier")
        password = "pw-" + uuid.uuid4().hex[:10]
        project = self.admin.post(
            "identity", "/v3/projects", {"project": {"name": name, "domain_id": "default"}}
        ).json()["project"]
        user = self.admin.post(
            "identity",
            "/v3/users",
            {
                "user": {
                    "name": name,
                    "domain_id": "default",
                    "password": password,
                    "default_project_id": project["id"],
                }
            },
        ).json()["user"]
        admin_user = self.admin.get("identity", "/v3/users", params={"name": "admin"}).json()
        grants = [(user["id"], "member"), (admin_user["users"][0]["id"], "admin")]
        for user_id, role in grants:
            path = f"/v3/projects/{project['id']}/users/{user_id}/roles/{self.role_id(role)}"
            assert self.admin.put("identity", path).status_code == 204
        member = self.api(issue_token(self.url, name, password, name), microversion)
        admin = self.api(
            issue_token(self.url, "admin", self.running.admin_password, name), microversion
        )
        return Tenant(project["id"], name, user["id"], name, password, member, admin)

    def network_id(self, name: str) -> str:
        networks = self.admin.get("network", "/networks", params={"name": name}).json()
        return str(networks["networks"][0]["id"])

    def image_id(self, prefix: str = "cirros") -> str:
        images = self.admin.get("image", "/images").json()["images"]
        return str(next(i["id"] for i in images if i["name"].startswith(prefix)))


def boot(api: Api, cloud: Cloud, name: str | None = None, **extra: Any) -> str:
    """POST /servers on the shared private network; returns the new server's id."""
    server = {
        "name": name or unique("vm"),
        "imageRef": cloud.image_id(),
        "flavorRef": "1",
        "networks": [{"uuid": cloud.network_id("private")}],
        **extra,
    }
    response = api.post("compute", "/servers", {"server": server})
    assert response.status_code == 202, response.text
    return str(response.json()["server"]["id"])


def wait_status(api: Api, server_id: str, status: str, timeout: float = 15.0) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        server = api.get("compute", f"/servers/{server_id}").json()["server"]
        return server if server["status"] == status else None

    result: dict[str, Any] = wait_for(check, timeout)
    return result


def wait_gone(api: Api, server_id: str, timeout: float = 15.0) -> None:
    wait_for(lambda: api.get("compute", f"/servers/{server_id}").status_code == 404, timeout)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDevcloud]:
    handle = start_devcloud(tmp_path_factory.mktemp("devcloud"), build_seconds=BUILD_SECONDS)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="module")
def cloud(running: RunningDevcloud) -> Cloud:
    return Cloud(running)


@pytest.fixture
def tenant(cloud: Cloud) -> Tenant:
    return cloud.tenant()


@pytest.fixture
def fresh_dir(tmp_path: Path) -> Path:
    return tmp_path / "devcloud-data"
