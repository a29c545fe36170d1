"""A minimal admin REST session for bootstrap work: a token and JSON calls, nothing more.

The bring-up registers users, services and endpoints with direct API calls rather than the
openstack CLI: a few dozen CLI calls cost about a minute of interpreter start-up, the same calls
over one HTTP session well under a second.
"""

from __future__ import annotations

import time
from typing import Any

import requests


class Admin:
    def __init__(self, auth_url: str, password: str, *, project: str = "admin") -> None:
        self.auth_url = auth_url.rstrip("/")
        self.http = requests.Session()
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {"name": "admin", "domain": {"id": "default"}, "password": password}
                    },
                },
                "scope": {"project": {"name": project, "domain": {"id": "default"}}},
            }
        }
        answer = self.http.post(f"{self.auth_url}/auth/tokens", json=body, timeout=30)
        answer.raise_for_status()
        self.http.headers["X-Auth-Token"] = answer.headers["X-Subject-Token"]
        self.catalog: list[dict[str, Any]] = answer.json()["token"]["catalog"]

    def call(
        self,
        method: str,
        url: str,
        *,
        expect: tuple[int, ...] = (200, 201, 202, 204),
        retry_for: float = 0.0,
        **kwargs: Any,
    ) -> requests.Response:
        """One call; `retry_for` seconds of retries cover a service still settling after start."""
        deadline = time.monotonic() + retry_for
        while True:
            answer = self.http.request(method, url, timeout=60, **kwargs)
            if answer.status_code in expect:
                return answer
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"{method} {url} answered {answer.status_code}: {answer.text[:500]}"
                )
            time.sleep(1.0)

    def identity(self, path: str) -> str:
        return f"{self.auth_url}{path}"

    def find_or_create(
        self, collection_url: str, key: str, name: str, body: dict[str, Any], **filters: str
    ) -> dict[str, Any]:
        """Idempotent create by name, so a re-run `up` over a half-built cloud does no harm."""
        listed = self.call("GET", collection_url, params={"name": name, **filters}).json()
        plural = f"{key}s" if not key.endswith("y") else f"{key[:-1]}ies"
        for item in listed.get(plural, []):
            if item.get("name") == name:
                return dict(item)
        created = self.call("POST", collection_url, json={key: body}).json()
        return dict(created[key])
