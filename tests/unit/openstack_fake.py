"""An in-process fake cloud for the transport-level unit tests of portal.openstack.

It is a requests transport adapter: the client's real keystoneauth session, requests session,
hooks and error mapping all run; only the socket is replaced. Integration tests use devcloud over
real HTTP instead.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from portal.openstack import CloudConfig, OpenStackClient
from portal.openstack.tokencache import TokenCache

BASE = "http://cloud.test"
AUTH_URL = f"{BASE}/identity"
PASSWORD = "s3cret-Pa55word"


@dataclass
class Call:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: Any
    timeout: Any


Reply = tuple[int, dict[str, str], Any]
Handler = Callable[[Call], Reply]


@dataclass
class FakeCloud(BaseAdapter):
    """Routes by (method, path regex); tokens are issued and checked like Keystone's."""

    token_ttl: timedelta = timedelta(hours=1)
    token_issued_ago: timedelta = timedelta(0)
    calls: list[Call] = field(default_factory=list)
    valid_tokens: set[str] = field(default_factory=set)
    routes: list[tuple[str, re.Pattern[str], Handler | list[Reply | Exception]]] = field(
        default_factory=list
    )
    compute_version: str | None = "2.104"
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        super().__init__()

    # --- configuration -------------------------------------------------------------------

    def route(self, method: str, path: str, handler: Handler | list[Reply | Exception]) -> None:
        """Answer ``method path`` (regex, whole path) with a handler or a queue of replies."""
        self.routes.insert(0, (method, re.compile(path + r"\Z"), handler))

    def revoke_all(self) -> None:
        self.valid_tokens.clear()

    def auth_calls(self) -> list[Call]:
        return [c for c in self.calls if c.method == "POST" and c.path.endswith("/auth/tokens")]

    def calls_to(self, method: str, path: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.path == path]

    # --- requests adapter ------------------------------------------------------------------

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None, **_: Any
    ) -> requests.Response:
        split = urlsplit(str(request.url))
        raw = request.body
        body = json.loads(raw) if raw else None
        call = Call(
            method=str(request.method),
            path=split.path,
            query=parse_qsl(split.query, keep_blank_values=True),
            headers=dict(request.headers),
            body=body,
            timeout=timeout,
        )
        self.calls.append(call)
        status, headers, payload = self._dispatch(call)
        response = requests.Response()
        response.status_code = status
        response.headers = CaseInsensitiveDict(
            {"x-openstack-request-id": f"req-{len(self.calls):04d}", **headers}
        )
        if payload is not None:
            response._content = (
                payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
            )
            response.headers.setdefault("Content-Type", "application/json")
        else:
            response._content = b""
        response.url = str(request.url)
        response.request = request
        response.reason = "Fake"
        return response

    def close(self) -> None:
        pass

    def _dispatch(self, call: Call) -> Reply:
        if call.method == "POST" and call.path == "/identity/v3/auth/tokens":
            return self._issue_token(call)
        if call.path in ("/compute/v2.1/", "/compute/v2.1"):
            return self._compute_version()
        for method, pattern, handler in self.routes:
            if method == call.method and pattern.match(call.path):
                if call.headers.get("X-Auth-Token") not in self.valid_tokens and not (
                    call.path.endswith("/password")
                ):
                    return (
                        401,
                        {},
                        _keystone_error(
                            401,
                            "Unauthorized",
                            "The request you have made requires authentication.",
                        ),
                    )
                if isinstance(handler, list):
                    reply = handler.pop(0) if len(handler) > 1 else handler[0]
                    if isinstance(reply, Exception):
                        raise reply
                    return reply
                return handler(call)
        return 404, {}, {"itemNotFound": {"code": 404, "message": "no route"}}

    def _compute_version(self) -> Reply:
        if self.compute_version is None:
            return 404, {}, {"itemNotFound": {"code": 404, "message": "no versions"}}
        return (
            200,
            {},
            {
                "version": {
                    "id": "v2.1",
                    "status": "CURRENT",
                    "version": self.compute_version,
                    "min_version": "2.1",
                }
            },
        )

    def _issue_token(self, call: Call) -> Reply:
        identity = call.body["auth"]["identity"]
        if "password" in identity["methods"]:
            user = identity["password"]["user"]
            if user["password"] != PASSWORD:
                return (
                    401,
                    {},
                    _keystone_error(
                        401, "Unauthorized", "The request you have made requires authentication."
                    ),
                )
        scope = call.body["auth"].get("scope") or {}
        project = scope.get("project") or {}
        project_id = project.get("id") or "p-admin"
        token = f"gAAAAAtok{next(self._ids):04d}"
        self.valid_tokens.add(token)
        now = datetime.now(UTC)
        issued = now - self.token_issued_ago
        body = {
            "token": {
                "methods": ["password"],
                "expires_at": (now + self.token_ttl).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
                "issued_at": issued.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
                "user": {
                    "id": "u-portal",
                    "name": "portal",
                    "domain": {"id": "default", "name": "Default"},
                },
                "project": {
                    "id": project_id,
                    "name": project.get("name", project_id),
                    "domain": {"id": "default", "name": "Default"},
                },
                "roles": [{"id": "r-admin", "name": "admin"}],
                "catalog": [
                    _service("identity", f"{BASE}/identity"),
                    _service("compute", f"{BASE}/compute/v2.1"),
                    _service("network", f"{BASE}/networking"),
                    _service("image", f"{BASE}/image"),
                ],
            }
        }
        return 201, {"X-Subject-Token": token}, body


def _service(kind: str, url: str) -> dict[str, Any]:
    return {
        "id": f"svc-{kind}",
        "type": kind,
        "name": kind,
        "endpoints": [
            {
                "id": f"ep-{kind}",
                "interface": "public",
                "region": "RegionOne",
                "region_id": "RegionOne",
                "url": url,
            },
            {
                "id": f"ep-{kind}-i",
                "interface": "internal",
                "region": "RegionOne",
                "region_id": "RegionOne",
                "url": url.replace("cloud.test", "internal.test"),
            },
        ],
    }


def _keystone_error(code: int, title: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "title": title, "message": message}}


def make_client(
    fake: FakeCloud, *, token_cache: TokenCache | None = None, **overrides: Any
) -> tuple[OpenStackClient, list[float]]:
    """A client wired to ``fake``; returns it and the list its backoff sleeps are recorded in."""
    values: dict[str, Any] = {
        "auth_url": AUTH_URL,
        "username": "portal",
        "password": PASSWORD,
        "user_domain_id": "default",
        "project_name": "admin",
        "project_domain_id": "default",
        "region_name": "RegionOne",
        "timeout": 7.5,
    }
    values.update(overrides)
    client = OpenStackClient.from_config(CloudConfig(**values), token_cache=token_cache)
    sleeps: list[float] = []
    client._shared.sleep = sleeps.append
    client._shared.requests_session.mount(BASE, fake)
    client._shared.requests_session.mount("http://internal.test", fake)
    return client, sleeps
