"""The admin-only control endpoint under /_devcloud: faults, request log, bulk data.

Every call needs an X-Auth-Token carrying the admin role; bodies and answers are JSON.

    GET    /_devcloud/faults                 list active fault rules
    POST   /_devcloud/faults                 add one: {"method", "path", "status", "fraction",
                                             "count", "latency", "action", "message", "after",
                                             "defer", "skip"}
    DELETE /_devcloud/faults                 remove every rule and pending build failure
    DELETE /_devcloud/faults/{id}            remove one rule
    POST   /_devcloud/build-failures         {"count", "message"}: the next builds end in ERROR
    GET    /_devcloud/settings               the settings below
    PATCH  /_devcloud/settings               {"reclaim_instance_interval": seconds}: Nova's
                                             deferred delete (0: off)
    POST   /_devcloud/revoke-tokens          every token issued so far answers 401
    GET    /_devcloud/secrets                {"secrets": [...]}: every password, application
                                             credential secret and token the cloud was given or
                                             issued, in clear (leak tests search for them)
    GET    /_devcloud/requests?since=SEQ     the request log (see devcloud.testing for fields)
    DELETE /_devcloud/requests               empty the request log
    GET    /_devcloud/security-compliance    Keystone's password rule: {"password_regex",
    PUT    /_devcloud/security-compliance    "password_regex_description"} (nulls: no rule)
    POST   /_devcloud/bulk-servers           {"project_id", "count", "name_prefix", "flavor_id",
                                             "image_id", "network_id", "user_id", "status",
                                             "metadata"}: ACTIVE servers with ports, at once
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from devcloud.core import Request, Response, Router, Service, keystone_error
from devcloud.faults import Fault

if TYPE_CHECKING:
    from devcloud.app import Cloud

MAX_BULK = 20_000


def _bad(message: str) -> Exception:
    return keystone_error(400, message)


class Control(Service):
    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        r = self.router = Router()
        r.add("GET", "/faults", self.list_faults)
        r.add("POST", "/faults", self.add_fault)
        r.add("DELETE", "/faults", self.reset_faults)
        r.add("DELETE", "/faults/(?P<fault_id>[^/]+)", self.remove_fault)
        r.add("POST", "/build-failures", self.build_failures)
        r.add("GET", "/settings", self.get_settings)
        r.add("PATCH", "/settings", self.update_settings)
        r.add("POST", "/revoke-tokens", self.revoke_tokens)
        r.add("GET", "/secrets", self.list_secrets)
        r.add("GET", "/requests", self.list_requests)
        r.add("DELETE", "/requests", self.clear_requests)
        r.add("POST", "/bulk-servers", self.bulk_servers)
        r.add("GET", "/security-compliance", self.get_security_compliance)
        r.add("PUT", "/security-compliance", self.put_security_compliance)

    def before(self, req: Request) -> None:
        if not req.token.is_admin:
            raise keystone_error(403, "The devcloud control endpoint needs an admin token.")

    def _body(self, req: Request) -> dict[str, Any]:
        try:
            body = json.loads(req.body or b"{}")
        except ValueError as exc:
            raise _bad(f"Malformed JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise _bad("The body must be a JSON object.")
        return body

    def list_faults(self, req: Request) -> Response:
        return Response(200, {"faults": self.cloud.faults.list()})

    def add_fault(self, req: Request) -> Response:
        body = self._body(req)
        allowed = {
            "method",
            "path",
            "status",
            "fraction",
            "count",
            "latency",
            "action",
            "message",
            "after",
            "defer",
            "skip",
        }
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise _bad(f"Unknown fault field(s): {', '.join(unknown)}")
        try:
            fault = Fault(
                method=str(body.get("method", "*")).upper(),
                path=str(body.get("path", ".*")),
                status=None if body.get("status", 503) is None else int(body.get("status", 503)),
                fraction=float(body.get("fraction", 1.0)),
                count=None if body.get("count") is None else int(body["count"]),
                latency=float(body.get("latency", 0.0)),
                action=str(body.get("action", "error")),
                message=body.get("message"),
                after=bool(body.get("after", False)),
                defer=float(body.get("defer", 0.0)),
                skip=int(body.get("skip", 0)),
            )
            self.cloud.faults.add(fault)
        except (TypeError, ValueError) as exc:  # includes re.error, a ValueError subclass
            raise _bad(f"Invalid fault: {exc}") from exc
        return Response(201, {"fault": fault.as_dict()})

    def remove_fault(self, req: Request) -> Response:
        if not self.cloud.faults.remove(req.params["fault_id"]):
            raise keystone_error(404, f"Could not find fault: {req.params['fault_id']}.")
        return Response(204)

    def reset_faults(self, req: Request) -> Response:
        self.cloud.faults.reset()
        return Response(204)

    def build_failures(self, req: Request) -> Response:
        body = self._body(req)
        try:
            count = int(body.get("count", 1))
        except (TypeError, ValueError) as exc:
            raise _bad("count must be an integer") from exc
        if count < 1:
            raise _bad("count must be at least 1")
        message = str(body.get("message") or "Build of instance aborted: devcloud injected failure")
        self.cloud.faults.fail_builds(count, message)
        return Response(202, {"pending": self.cloud.faults.pending_build_failures()})

    def _settings(self) -> dict[str, Any]:
        return {"reclaim_instance_interval": self.cloud.config.reclaim_instance_interval}

    def get_settings(self, req: Request) -> Response:
        return Response(200, {"settings": self._settings()})

    def update_settings(self, req: Request) -> Response:
        body = self._body(req)
        unknown = sorted(set(body) - {"reclaim_instance_interval"})
        if unknown:
            raise _bad(f"Unknown setting(s): {', '.join(unknown)}")
        if "reclaim_instance_interval" in body:
            try:
                interval = float(body["reclaim_instance_interval"])
            except (TypeError, ValueError) as exc:
                raise _bad("reclaim_instance_interval must be a number of seconds") from exc
            if interval < 0:
                raise _bad("reclaim_instance_interval must not be negative")
            self.cloud.config.reclaim_instance_interval = interval
        return Response(200, {"settings": self._settings()})

    def revoke_tokens(self, req: Request) -> Response:
        identity = self.cloud.identity
        counters = identity._counters()
        counters["revoke_all_seq"] = counters["token_seq"]
        self.cloud.store.put("meta", counters)
        return Response(204)

    def list_secrets(self, req: Request) -> Response:
        return Response(200, {"secrets": self.cloud.identity.seen_secrets()})

    def get_security_compliance(self, req: Request) -> Response:
        return Response(200, {"security_compliance": self.cloud.identity.security_compliance()})

    def put_security_compliance(self, req: Request) -> Response:
        body = self._body(req)
        unknown = sorted(set(body) - {"password_regex", "password_regex_description"})
        if unknown:
            raise _bad(f"Unknown field(s): {', '.join(unknown)}")
        values = [body.get("password_regex"), body.get("password_regex_description")]
        if any(v is not None and not isinstance(v, str) for v in values):
            raise _bad("password_regex and password_regex_description are strings or null")
        try:
            self.cloud.identity.set_security_compliance(*values)
        except re.error as exc:
            raise _bad(f"Invalid password_regex: {exc}") from exc
        return Response(200, {"security_compliance": self.cloud.identity.security_compliance()})

    def list_requests(self, req: Request) -> Response:
        try:
            since = int(req.q("since") or 0)
        except ValueError as exc:
            raise _bad("since must be an integer") from exc
        return Response(200, {"requests": self.cloud.log.entries(since)})

    def clear_requests(self, req: Request) -> Response:
        self.cloud.log.clear()
        return Response(204)

    def bulk_servers(self, req: Request) -> Response:
        body = self._body(req)
        store = self.cloud.store
        project_id = body.get("project_id") or req.token.project_id
        if store.get("project", str(project_id)) is None:
            raise keystone_error(404, f"Could not find project: {project_id}.")
        try:
            count = int(body.get("count", 1))
        except (TypeError, ValueError) as exc:
            raise _bad("count must be an integer") from exc
        if not 1 <= count <= MAX_BULK:
            raise _bad(f"count must be between 1 and {MAX_BULK}")
        image_id = body.get("image_id") or next(
            (i["id"] for i in store.values("image") if i["name"].startswith("cirros")), None
        )
        network_id = body.get("network_id") or next(
            (n["id"] for n in store.values("network") if n["name"] == "private"), None
        )
        status = str(body.get("status", "ACTIVE")).upper()
        if status not in ("ACTIVE", "SHUTOFF"):
            raise _bad("status must be ACTIVE or SHUTOFF")
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise _bad("metadata must be an object")
        try:
            ids = self.cloud.compute.bulk_create(
                project_id=str(project_id),
                user_id=str(body.get("user_id") or req.token.user_id),
                count=count,
                name_prefix=str(body.get("name_prefix") or "bulk"),
                flavor_id=str(body.get("flavor_id") or "1"),
                image_id=str(image_id),
                network_id=str(network_id),
                metadata={str(k): str(v) for k, v in metadata.items()},
                status=status,
            )
        except ValueError as exc:
            raise _bad(str(exc)) from exc
        return Response(201, {"servers": ids})
