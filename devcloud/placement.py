"""Placement: one resource provider per compute host, its inventory, and what servers use of it.

Read-only and admin-only, as Placement's default policy has it for resource providers. Usage is
derived from the servers devcloud's scheduler put on each host, so it moves with every boot and
delete. The inventory follows what nova-compute reports for a libvirt host with the default
initial allocation ratios (VCPU 4.0, MEMORY_MB 1.0 with 512 MiB reserved, DISK_GB 1.0).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from devcloud.core import ApiError, Request, Response, Router, Service, placement_error

if TYPE_CHECKING:
    from devcloud.app import Cloud

Doc = dict[str, Any]

MIN_VERSION = "1.0"
MAX_VERSION = "1.39"
VCPU_ALLOCATION_RATIO = 4.0
RESERVED_HOST_MEMORY_MB = 512


def provider_uuid(host: str) -> str:
    """A compute node's provider id, stable across restarts of devcloud."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"devcloud-resource-provider-{host}"))


class Placement(Service):
    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.store = cloud.store
        r = self.router = Router()
        r.add("GET", "", self.versions, public=True)
        r.add("GET", "/resource_providers", self.list_providers)
        r.add("GET", "/resource_providers/(?P<uuid>[^/]+)", self.show_provider)
        r.add("GET", "/resource_providers/(?P<uuid>[^/]+)/inventories", self.inventories)
        r.add("GET", "/resource_providers/(?P<uuid>[^/]+)/usages", self.usages)

    def after(self, req: Request, response: Response) -> None:
        # Placement names the microversion it answered with on every response.
        response.headers.setdefault("OpenStack-API-Version", f"placement {MIN_VERSION}")
        response.headers.setdefault("Vary", "openstack-api-version")

    # ---- discovery ---------------------------------------------------------------------------

    def versions(self, req: Request) -> Response:
        version = {
            "id": "v1.0",
            "max_version": MAX_VERSION,
            "min_version": MIN_VERSION,
            "status": "CURRENT",
            "links": [{"rel": "self", "href": ""}],
        }
        return Response(200, {"versions": [version]})

    # ---- resource providers ------------------------------------------------------------------

    def _admin(self, req: Request) -> None:
        if not req.token.is_admin:
            raise placement_error(
                403, "Forbidden", "Policy does not allow placement:resource_providers:list."
            )

    def _hosts(self) -> list[Doc]:
        return sorted(self.store.values("host"), key=lambda h: str(h["id"]))

    def _host(self, req: Request) -> Doc:
        wanted = req.params["uuid"]
        for host in self._hosts():
            if provider_uuid(host["id"]) == wanted:
                return host
        raise _not_found(wanted)

    def _servers_on(self, host: Doc) -> list[Doc]:
        return [
            s
            for s in self.store.values("server")
            if s.get("host") == host["id"] and s.get("vm_state") != "deleted"
        ]

    def _provider_view(self, req: Request, host: Doc) -> Doc:
        rp = provider_uuid(host["id"])
        base = f"/resource_providers/{rp}"
        return {
            "uuid": rp,
            "name": host["id"],
            # Placement bumps a provider's generation on every inventory or allocation change.
            "generation": 1 + len(self._servers_on(host)),
            "links": [
                {"rel": "self", "href": base},
                {"rel": "inventories", "href": base + "/inventories"},
                {"rel": "usages", "href": base + "/usages"},
            ],
        }

    def list_providers(self, req: Request) -> Response:
        self._admin(req)
        hosts = self._hosts()
        name, wanted_uuid = req.q("name"), req.q("uuid")
        if name is not None:
            hosts = [h for h in hosts if h["id"] == name]
        if wanted_uuid is not None:
            hosts = [h for h in hosts if provider_uuid(h["id"]) == wanted_uuid]
        return Response(200, {"resource_providers": [self._provider_view(req, h) for h in hosts]})

    def show_provider(self, req: Request) -> Response:
        self._admin(req)
        return Response(200, self._provider_view(req, self._host(req)))

    def inventories(self, req: Request) -> Response:
        self._admin(req)
        host = self._host(req)
        memory, vcpus, disk = int(host["memory_mb"]), int(host["vcpus"]), int(host["local_gb"])
        inventories = {
            "VCPU": _inventory(vcpus, 0, VCPU_ALLOCATION_RATIO),
            "MEMORY_MB": _inventory(memory, RESERVED_HOST_MEMORY_MB, 1.0),
            "DISK_GB": _inventory(disk, 0, 1.0),
        }
        generation = self._provider_view(req, host)["generation"]
        return Response(
            200, {"inventories": inventories, "resource_provider_generation": generation}
        )

    def usages(self, req: Request) -> Response:
        self._admin(req)
        host = self._host(req)
        used = {"VCPU": 0, "MEMORY_MB": 0, "DISK_GB": 0}
        for server in self._servers_on(host):
            flavor = server["flavor"]
            used["VCPU"] += int(flavor["vcpus"])
            used["MEMORY_MB"] += int(flavor["ram"])
            used["DISK_GB"] += int(flavor["disk"]) + int(flavor.get("ephemeral") or 0)
        generation = self._provider_view(req, host)["generation"]
        return Response(200, {"usages": used, "resource_provider_generation": generation})


def _inventory(total: int, reserved: int, ratio: float) -> Doc:
    return {
        "total": total,
        "reserved": reserved,
        "min_unit": 1,
        "max_unit": total,
        "step_size": 1,
        "allocation_ratio": ratio,
    }


def _not_found(ident: str) -> ApiError:
    return placement_error(404, "Not Found", f"No resource provider with uuid {ident} found")
