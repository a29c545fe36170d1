"""Nova v2.1: microversions, flavors, servers and their life cycle, hosts, quotas, key pairs."""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import re
import secrets
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from devcloud.core import (
    FALSE_WORDS,
    ApiError,
    Request,
    Response,
    Router,
    Service,
    iso_naive,
    iso_z,
    new_id,
    nova_error,
    now,
    parse_time,
)
from devcloud.network import STALE_ADDRESS

if TYPE_CHECKING:
    from devcloud.app import Cloud

Doc = dict[str, Any]

MIN_VERSION = (2, 1)
MAX_VERSION = (2, 96)
QUOTA_DEFAULTS = {
    "instances": 10,
    "cores": 20,
    "ram": 51200,
    "key_pairs": 100,
    "metadata_items": 128,
    "injected_files": 5,
    "injected_file_content_bytes": 10240,
    "injected_file_path_bytes": 255,
    "server_groups": 10,
    "server_group_members": 10,
}
CPU_RATIO = 16.0
RAM_RATIO = 1.5
NO_VALID_HOST = "No valid host was found. There are not enough hosts available."

# nova/api/openstack/common.py: status is derived from (vm_state, task_state).
STATE_MAP: dict[str, dict[str | None, str]] = {
    "building": {"default": "BUILD"},
    "active": {
        "default": "ACTIVE",
        "rebooting": "REBOOT",
        "reboot_pending": "REBOOT",
        "reboot_started": "REBOOT",
        "rebooting_hard": "HARD_REBOOT",
        "reboot_pending_hard": "HARD_REBOOT",
        "reboot_started_hard": "HARD_REBOOT",
    },
    "stopped": {"default": "SHUTOFF"},
    "error": {"default": "ERROR"},
    "deleted": {"default": "DELETED"},
    "soft-delete": {"default": "SOFT_DELETED"},
    "paused": {"default": "PAUSED"},
    "suspended": {"default": "SUSPENDED"},
}
STATUSES = {
    "ACTIVE",
    "BUILD",
    "DELETED",
    "ERROR",
    "HARD_REBOOT",
    "MIGRATING",
    "PASSWORD",
    "PAUSED",
    "REBOOT",
    "REBUILD",
    "RESCUE",
    "RESIZE",
    "REVERT_RESIZE",
    "SHELVED",
    "SHELVED_OFFLOADED",
    "SHUTOFF",
    "SOFT_DELETED",
    "SUSPENDED",
    "UNKNOWN",
    "VERIFY_RESIZE",
}
POWER_NOSTATE, POWER_RUNNING, POWER_SHUTDOWN = 0, 1, 4
SERVER_FIELDS = {
    "name",
    "imageRef",
    "flavorRef",
    "adminPass",
    "metadata",
    "networks",
    "security_groups",
    "availability_zone",
    "key_name",
    "user_data",
    "config_drive",
    "block_device_mapping",
    "block_device_mapping_v2",
    "OS-DCF:diskConfig",
    "accessIPv4",
    "accessIPv6",
    "min_count",
    "max_count",
    "return_reservation_id",
    "description",
    "tags",
    "trusted_image_certificates",
    "host",
    "hypervisor_hostname",
    "hostname",
    "personality",
    "hw_machine_type",
}

# Query parameters nova's servers index/detail schema accepts (api/openstack/compute/schemas).
SERVER_QUERY = {
    "user_id", "project_id", "tenant_id", "launch_index", "image_ref", "image", "kernel_id",
    "ramdisk_id", "hostname", "key_name", "power_state", "vm_state", "task_state", "host",
    "node", "flavor", "reservation_id", "launched_at", "terminated_at", "availability_zone",
    "name", "display_name", "description", "display_description", "locked_by", "uuid",
    "root_device_name", "config_drive", "access_ip_v4", "access_ip_v6", "auto_disk_config",
    "progress", "sort_key", "sort_dir", "all_tenants", "soft_deleted", "deleted", "status",
    "changes-since", "changes-before", "ip", "ip6", "created_at", "block_device_mapping",
    "services", "metadata", "pci_devices", "security_groups", "tags", "tags-any", "not-tags",
    "not-tags-any", "limit", "marker", "locked", "pinned_availability_zone", "system_metadata",
    "info_cache", "fault", "numa_topology", "vcpu_model", "trusted_certs", "key_pair",
}  # fmt: skip


def status_of(vm_state: str, task_state: str | None) -> str:
    states = STATE_MAP.get(vm_state)
    if states is None:
        return "UNKNOWN"
    return states.get(task_state, states["default"])


def _bad(field: str, value: Any, message: str) -> ApiError:
    """Nova's JSON-Schema wording, which names the failing field."""
    return nova_error(
        400, f"Invalid input for field/attribute {field}. Value: {json.dumps(value)}. {message}"
    )


def _policy(rule: str) -> ApiError:
    return nova_error(403, f"Policy doesn't allow {rule} to be performed.")


def _ver(req: Request, major: int, minor: int) -> bool:
    return req.microversion >= (major, minor)


def _parse_version(text: str) -> tuple[int, int]:
    text = text.strip()
    if text == "latest":
        return MAX_VERSION
    found = re.fullmatch(r"(\d+)\.(\d+)", text)
    if not found:
        raise nova_error(
            400,
            f"API Version String {text} is of invalid format. Must be of format MajorNum.MinorNum.",
        )
    return int(found.group(1)), int(found.group(2))


class Compute(Service):
    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.store = cloud.store
        self._pending: dict[str, float] = {}
        r = self.router = Router()
        v = "/v2.1"
        r.add("GET", "", self.versions, public=True)
        r.add("GET", v, self.version, public=True)
        r.add("GET", "/v2", self.version_v2, public=True)
        r.add("GET", v + "/flavors", self.list_flavors)
        r.add("GET", v + "/flavors/detail", self.list_flavors_detail)
        r.add("GET", v + "/flavors/(?P<flavor_id>[^/]+)", self.get_flavor)
        r.add("GET", v + "/flavors/(?P<flavor_id>[^/]+)/os-extra-specs", self.flavor_extra_specs)
        r.add("GET", v + "/images", self.proxy_images)
        r.add("GET", v + "/images/detail", self.proxy_images)
        r.add("GET", v + "/images/(?P<image_id>[^/]+)", self.proxy_image)
        r.add("GET", v + "/servers", self.list_servers)
        r.add("GET", v + "/servers/detail", self.list_servers_detail)
        r.add("POST", v + "/servers", self.create_server)
        s = v + "/servers/(?P<server_id>[^/]+)"
        r.add("GET", s, self.get_server)
        r.add("PUT", s, self.update_server)
        r.add("DELETE", s, self.delete_server)
        r.add("POST", s + "/action", self.server_action)
        r.add("GET", s + "/metadata", self.get_metadata)
        r.add("POST", s + "/metadata", self.merge_metadata)
        r.add("PUT", s + "/metadata", self.replace_metadata)
        r.add("GET", s + "/metadata/(?P<key>[^/]+)", self.get_meta_item)
        r.add("PUT", s + "/metadata/(?P<key>[^/]+)", self.put_meta_item)
        r.add("DELETE", s + "/metadata/(?P<key>[^/]+)", self.delete_meta_item)
        r.add("GET", s + "/ips", self.server_ips)
        r.add("GET", s + "/os-interface", self.server_interfaces)
        r.add("GET", v + "/os-services", self.list_services)
        r.add("GET", v + "/os-hypervisors", self.list_hypervisors)
        r.add("GET", v + "/os-hypervisors/detail", self.list_hypervisors_detail)
        r.add("GET", v + "/os-hypervisors/(?P<hv_id>[^/]+)", self.get_hypervisor)
        r.add("GET", v + "/os-availability-zone", self.list_azs)
        r.add("GET", v + "/os-availability-zone/detail", self.list_azs_detail)
        r.add("GET", v + "/os-quota-sets/(?P<project_id>[^/]+)", self.get_quota)
        r.add("GET", v + "/os-quota-sets/(?P<project_id>[^/]+)/detail", self.get_quota_detail)
        r.add("GET", v + "/os-quota-sets/(?P<project_id>[^/]+)/defaults", self.get_quota_defaults)
        r.add("PUT", v + "/os-quota-sets/(?P<project_id>[^/]+)", self.put_quota)
        r.add("DELETE", v + "/os-quota-sets/(?P<project_id>[^/]+)", self.delete_quota)
        r.add("GET", v + "/limits", self.limits)
        r.add("GET", v + "/os-keypairs", self.list_keypairs)
        r.add("POST", v + "/os-keypairs", self.create_keypair)
        r.add("GET", v + "/os-keypairs/(?P<name>[^/]+)", self.get_keypair)
        r.add("DELETE", v + "/os-keypairs/(?P<name>[^/]+)", self.delete_keypair)
        for server in self.store.values("server"):
            if server.get("pending"):
                self._pending[server["id"]] = server["pending"]["due"]

    # ---- microversions -----------------------------------------------------------------------

    def before(self, req: Request) -> None:
        if req.path == "":
            return
        text = None
        header = req.header("OpenStack-API-Version")
        if header:
            for part in header.split(","):
                service, _, value = part.strip().partition(" ")
                if service.lower() == "compute":
                    text = value
        if text is None:
            text = req.header("X-OpenStack-Nova-API-Version")
        if text is None:
            req.microversion = MIN_VERSION
            return
        version = _parse_version(text)
        if not MIN_VERSION <= version <= MAX_VERSION:
            raise nova_error(
                406,
                f"Version {version[0]}.{version[1]} is not supported by the API. Minimum is "
                f"{MIN_VERSION[0]}.{MIN_VERSION[1]} and maximum is {MAX_VERSION[0]}.{MAX_VERSION[1]}.",  # noqa: E501
            )
        req.microversion = version

    def after(self, req: Request, response: Response) -> None:
        response.headers["X-Compute-Request-Id"] = req.request_id
        if req.path == "":
            return
        text = f"{req.microversion[0]}.{req.microversion[1]}"
        response.headers["OpenStack-API-Version"] = f"compute {text}"
        response.headers["X-OpenStack-Nova-API-Version"] = text
        response.headers["Vary"] = "OpenStack-API-Version, X-OpenStack-Nova-API-Version"

    # ---- discovery ---------------------------------------------------------------------------

    def _version_doc(self, req: Request, v21: bool) -> Doc:
        if v21:
            ident, href, status = "v2.1", f"{req.base_url}/compute/v2.1/", "CURRENT"
            version, min_version = "{}.{}".format(*MAX_VERSION), "{}.{}".format(*MIN_VERSION)
        else:
            ident, href, status = "v2.0", f"{req.base_url}/compute/v2/", "SUPPORTED"
            version, min_version = "", ""
        return {
            "id": ident,
            "status": status,
            "version": version,
            "min_version": min_version,
            "updated": "2013-07-23T11:33:21Z" if v21 else "2011-01-21T11:33:21Z",
            "links": [{"rel": "self", "href": href}],
            "media-types": [
                {
                    "base": "application/json",
                    "type": "application/vnd.openstack.compute+json;version=2.1",
                }
            ],
        }

    def versions(self, req: Request) -> Response:
        docs = [self._version_doc(req, False), self._version_doc(req, True)]
        for doc in docs:
            doc.pop("media-types")
        return Response(200, {"versions": docs})

    def version(self, req: Request) -> Response:
        return Response(200, {"version": self._version_doc(req, True)})

    def version_v2(self, req: Request) -> Response:
        return Response(200, {"version": self._version_doc(req, False)})

    # ---- helpers -----------------------------------------------------------------------------

    @property
    def action_seconds(self) -> float:
        return self.cloud.config.build_seconds / 2

    def _body(self, req: Request) -> Doc:
        try:
            body = json.loads(req.body or b"null")
        except ValueError as exc:
            raise nova_error(400, "Malformed request body") from exc
        if not isinstance(body, dict):
            raise nova_error(400, "Malformed request body")
        return body

    def _member(self, req: Request, rule: str) -> None:
        if not req.token.is_member:
            raise _policy(f"os_compute_api:{rule}")

    def _admin(self, req: Request, rule: str) -> None:
        if not req.token.is_admin:
            raise _policy(f"os_compute_api:{rule}")

    def _link(self, req: Request, path: str) -> list[Doc]:
        return [
            {"rel": "self", "href": f"{req.base_url}/compute/v2.1/{path}"},
            {"rel": "bookmark", "href": f"{req.base_url}/compute/{path}"},
        ]

    def _project(self, req: Request) -> str:
        if not req.token.project_id:
            raise _policy("os_compute_api:servers:index")
        return str(req.token.project_id)

    # ---- flavors -----------------------------------------------------------------------------

    def _flavors(self, req: Request) -> list[Doc]:
        flavors = sorted(self.store.values("flavor"), key=lambda f: (len(f["id"]), f["id"]))
        is_public = (req.q("is_public") or "true").lower()
        if is_public == "none" and not req.token.is_admin:
            is_public = "true"
        if is_public != "none":
            want = is_public not in FALSE_WORDS
            flavors = [f for f in flavors if f["is_public"] == want]
        for param, attr in (("minDisk", "disk"), ("minRam", "ram")):
            value = req.q(param)
            if value is not None:
                try:
                    floor = int(value)
                except ValueError as exc:
                    raise nova_error(400, f"Invalid {param} filter [{value}]") from exc
                flavors = [f for f in flavors if f[attr] >= floor]
        name = req.q("name")
        if name is not None and _ver(req, 2, 102):
            flavors = [f for f in flavors if f["name"] == name]
        return self._paginate_simple(req, flavors)

    def _paginate_simple(self, req: Request, items: list[Doc]) -> list[Doc]:
        marker = req.q("marker")
        if marker:
            ids = [i["id"] for i in items]
            if marker not in ids:
                raise nova_error(400, f"marker [{marker}] not found")
            items = items[ids.index(marker) + 1 :]
        limit = self._limit(req)
        return items[:limit]

    def _limit(self, req: Request) -> int:
        text = req.q("limit")
        max_limit = self.cloud.config.max_limit
        if text is None:
            return max_limit
        try:
            value = int(text)
        except ValueError as exc:
            raise _bad("limit", text, f"'{text}' is not of type 'integer'") from exc
        if value < 0:
            raise nova_error(400, "limit param must be positive")
        return min(value, max_limit)

    def flavor_view(self, req: Request, flavor: Doc, detail: bool) -> Doc:
        view: Doc = {
            "id": flavor["id"],
            "name": flavor["name"],
            "links": self._link(req, f"flavors/{flavor['id']}"),
        }
        if _ver(req, 2, 55):
            view["description"] = flavor.get("description")
        if not detail:
            return view
        view.update(
            {
                "ram": flavor["ram"],
                "disk": flavor["disk"],
                "vcpus": flavor["vcpus"],
                "swap": flavor["swap"] if (flavor["swap"] or _ver(req, 2, 75)) else "",
                "OS-FLV-EXT-DATA:ephemeral": flavor["ephemeral"],
                "os-flavor-access:is_public": flavor["is_public"],
            }
        )
        if not _ver(req, 2, 102):
            view["OS-FLV-DISABLED:disabled"] = flavor["disabled"]
            view["rxtx_factor"] = flavor["rxtx_factor"]
        if _ver(req, 2, 61):
            view["extra_specs"] = flavor.get("extra_specs", {})
        return view

    def _flavor_links(self, req: Request, flavors: list[Doc], detail: bool) -> Doc:
        body: Doc = {"flavors": [self.flavor_view(req, f, detail) for f in flavors]}
        limit = self._limit(req)
        if flavors and len(flavors) == limit:
            path = "flavors/detail" if detail else "flavors"
            query = urlencode({"limit": limit, "marker": flavors[-1]["id"]})
            href = f"{req.base_url}/compute/v2.1/{path}?{query}"
            body["flavors_links"] = [{"rel": "next", "href": href}]
        return body

    def list_flavors(self, req: Request) -> Response:
        return Response(200, self._flavor_links(req, self._flavors(req), False))

    def list_flavors_detail(self, req: Request) -> Response:
        return Response(200, self._flavor_links(req, self._flavors(req), True))

    def _get_flavor(self, flavor_id: str) -> Doc:
        flavor = self.store.get("flavor", flavor_id)
        if flavor is None:
            raise nova_error(404, f"Flavor {flavor_id} could not be found.")
        return flavor

    def get_flavor(self, req: Request) -> Response:
        flavor = self._get_flavor(req.params["flavor_id"])
        return Response(200, {"flavor": self.flavor_view(req, flavor, True)})

    def flavor_extra_specs(self, req: Request) -> Response:
        flavor = self._get_flavor(req.params["flavor_id"])
        return Response(200, {"extra_specs": flavor.get("extra_specs", {})})

    # ---- image proxy (gone from 2.36) --------------------------------------------------------

    def _proxy_gate(self, req: Request) -> None:
        if _ver(req, 2, 36):
            raise nova_error(404, "The resource could not be found.")

    def _proxy_view(self, req: Request, image: Doc, detail: bool) -> Doc:
        view: Doc = {
            "id": image["id"],
            "name": image["name"],
            "links": self._link(req, f"images/{image['id']}"),
        }
        if detail:
            view.update(
                {
                    "status": image["status"].upper(),
                    "progress": 100,
                    "minDisk": image["min_disk"],
                    "minRam": image["min_ram"],
                    "created": iso_z(image["created_at"]),
                    "updated": iso_z(image["updated_at"]),
                    "metadata": {},
                    "OS-EXT-IMG-SIZE:size": image["size"],
                }
            )
        return view

    def proxy_images(self, req: Request) -> Response:
        self._proxy_gate(req)
        images = [i for i in self.cloud.image.visible(req) if i["status"] == "active"]
        detail = req.path.endswith("/detail")
        return Response(200, {"images": [self._proxy_view(req, i, detail) for i in images]})

    def proxy_image(self, req: Request) -> Response:
        self._proxy_gate(req)
        image = next(
            (i for i in self.cloud.image.visible(req) if i["id"] == req.params["image_id"]), None
        )
        if image is None:
            raise nova_error(404, "Image not found.")
        return Response(200, {"image": self._proxy_view(req, image, True)})

    # ---- server views ------------------------------------------------------------------------

    def _phase(self, server: Doc) -> str | None:
        """The task_state shown right now: build steps are spread over the build time."""
        pending = server.get("pending")
        if server["vm_state"] == "building" and pending and pending["op"] == "build":
            span = max(pending["due"] - pending["start"], 1e-9)
            done = (now() - pending["start"]) / span
            if done < 1 / 3:
                return "scheduling"
            if done < 2 / 3:
                return "networking"
            return "spawning"
        task: str | None = server.get("task_state")
        return task

    def _net_index(
        self, servers: list[Doc]
    ) -> tuple[dict[str, list[Doc]], dict[str, list[Doc]], dict[str, str]]:
        """Ports by server, floating IPs by port and network names, for these servers only."""
        ports: dict[str, list[Doc]] = {}
        for server in servers:
            for ref in server.get("ports", []):
                port = self.store.get("port", ref["id"])
                if port is not None and port["device_id"] == server["id"]:
                    ports.setdefault(server["id"], []).append(port)
        # Nova's cached view, which lags Neutron (devcloud.network._nova_forgets_later).
        moment = now()
        fips: dict[str, list[Doc]] = {}
        for fip in self.store.values("floatingip"):
            if fip.get("port_id") and moment >= (fip.get("_nova_after") or 0.0):
                fips.setdefault(fip["port_id"], []).append(fip)
        for stale in self.store.values(STALE_ADDRESS):
            shown = fips.setdefault(stale["port_id"], [])
            if moment < stale["until"] and all(
                f["floating_ip_address"] != stale["floating_ip_address"] for f in shown
            ):
                shown.append(stale)
        names = {n["id"]: n["name"] for n in self.store.values("network")}
        return ports, fips, names

    def _server_index(
        self, server: Doc
    ) -> tuple[dict[str, list[Doc]], dict[str, list[Doc]], dict[str, str]]:
        """The same index as _net_index, for one server: it reaches its ports directly."""
        return self._net_index([server])

    def _addresses(
        self, server: Doc, index: tuple[dict[str, list[Doc]], dict[str, list[Doc]], dict[str, str]]
    ) -> Doc:
        ports, fips, names = index
        out: dict[str, list[Doc]] = {}
        for port in ports.get(server["id"], []):
            entries = out.setdefault(str(names.get(port["network_id"]) or port["network_id"]), [])
            for ip in port["fixed_ips"]:
                entries.append(
                    {
                        "version": ipaddress.ip_address(ip["ip_address"]).version,
                        "addr": ip["ip_address"],
                        "OS-EXT-IPS:type": "fixed",
                        "OS-EXT-IPS-MAC:mac_addr": port["mac_address"],
                    }
                )
            for fip in fips.get(port["id"], []):
                entries.append(
                    {
                        "version": 4,
                        "addr": fip["floating_ip_address"],
                        "OS-EXT-IPS:type": "floating",
                        "OS-EXT-IPS-MAC:mac_addr": port["mac_address"],
                    }
                )
        return out

    def server_view(self, req: Request, server: Doc, index: Any = None) -> Doc:
        admin = req.token.is_admin
        task = self._phase(server)
        status = status_of(server["vm_state"], task)
        building = server["vm_state"] == "building"
        host = None if building else server.get("host")
        flavor = server["flavor"]
        if _ver(req, 2, 47):
            flavor_view: Doc = {
                "vcpus": flavor["vcpus"],
                "ram": flavor["ram"],
                "disk": flavor["disk"],
                "ephemeral": flavor["ephemeral"],
                "swap": flavor["swap"],
                "original_name": flavor["name"],
                "extra_specs": flavor.get("extra_specs", {}),
            }
        else:
            flavor_view = {
                "id": flavor["id"],
                "links": self._link(req, f"flavors/{flavor['id']}")[1:],
            }
        view: Doc = {
            "id": server["id"],
            "name": server["name"],
            "status": status,
            "tenant_id": server["project_id"],
            "user_id": server["user_id"],
            "metadata": dict(server["metadata"]),
            "hostId": hashlib.sha224((server["project_id"] + host).encode()).hexdigest()
            if host
            else "",
            "image": {
                "id": server["image_id"],
                "links": self._link(req, f"images/{server['image_id']}")[1:],
            },
            "flavor": flavor_view,
            "created": iso_z(server["created_at"]),
            "updated": iso_z(server["updated_at"]),
            "addresses": {}
            if building or server["vm_state"] == "deleted"
            else self._addresses(server, index or self._server_index(server)),
            "accessIPv4": "",
            "accessIPv6": "",
            "links": self._link(req, f"servers/{server['id']}"),
            "key_name": server.get("key_name"),
            "config_drive": server.get("config_drive", ""),
            "OS-DCF:diskConfig": "MANUAL",
            "OS-EXT-AZ:availability_zone": server["availability_zone"] if not building else "",
            "OS-EXT-STS:vm_state": server["vm_state"],
            "OS-EXT-STS:task_state": task,
            "OS-EXT-STS:power_state": server["power_state"],
            "OS-SRV-USG:launched_at": iso_naive(server.get("launched_at")),
            "OS-SRV-USG:terminated_at": iso_naive(server.get("terminated_at")),
            "os-extended-volumes:volumes_attached": [],
        }
        if status in ("ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING"):
            view["progress"] = 0
        if server.get("security_groups") and server["vm_state"] != "deleted":
            view["security_groups"] = [{"name": n} for n in server["security_groups"]]
        if server.get("fault") and status in ("ERROR", "DELETED"):
            fault = dict(server["fault"])
            fault["created"] = iso_z(fault["created"])
            if not admin:
                fault.pop("details", None)
            view["fault"] = fault
        if admin:
            view["OS-EXT-SRV-ATTR:host"] = host
            view["OS-EXT-SRV-ATTR:hypervisor_hostname"] = host
            view["OS-EXT-SRV-ATTR:instance_name"] = server["instance_name"]
            if _ver(req, 2, 3):
                view.update(
                    {
                        "OS-EXT-SRV-ATTR:reservation_id": server["reservation_id"],
                        "OS-EXT-SRV-ATTR:launch_index": 0,
                        "OS-EXT-SRV-ATTR:hostname": server["hostname"],
                        "OS-EXT-SRV-ATTR:kernel_id": "",
                        "OS-EXT-SRV-ATTR:ramdisk_id": "",
                        "OS-EXT-SRV-ATTR:root_device_name": "/dev/vda",
                        "OS-EXT-SRV-ATTR:user_data": server.get("user_data"),
                    }
                )
        if _ver(req, 2, 3):
            view["os-extended-volumes:volumes_attached"] = []
        if _ver(req, 2, 9):
            view["locked"] = server.get("locked", False)
        if _ver(req, 2, 16) and admin:
            view["host_status"] = "UP" if host else ""
        if _ver(req, 2, 19):
            view["description"] = server.get("description")
        if _ver(req, 2, 26):
            view["tags"] = list(server.get("tags", []))
        if _ver(req, 2, 63):
            view["trusted_image_certificates"] = None
        if _ver(req, 2, 71):
            view["server_groups"] = []
        if _ver(req, 2, 73):
            view["locked_reason"] = server.get("locked_reason")
        if _ver(req, 2, 90):
            view["OS-EXT-SRV-ATTR:hostname"] = server["hostname"]
        if _ver(req, 2, 96):
            view["pinned_availability_zone"] = server.get("pinned_az")
        return view

    def _visible_server(self, req: Request, server_id: str) -> Doc:
        server = self.store.get("server", server_id)
        if (
            server is None
            or server["vm_state"] == "deleted"
            or (not req.token.is_admin and server["project_id"] != req.token.project_id)
        ):
            raise nova_error(404, f"Instance {server_id} could not be found.")
        return server

    # ---- server lists ------------------------------------------------------------------------

    def list_servers(self, req: Request) -> Response:
        return self._list(req, detail=False)

    def list_servers_detail(self, req: Request) -> Response:
        return self._list(req, detail=True)

    def _list(self, req: Request, *, detail: bool) -> Response:
        project_id = self._project(req)
        admin = req.token.is_admin
        if _ver(req, 2, 75):
            # From 2.75 Nova's query schema refuses parameters it does not know.
            unknown = sorted(set(req.query) - SERVER_QUERY)
            if unknown:
                raise nova_error(
                    400,
                    f"Invalid input for query parameters {unknown[0]}. Value: "
                    f"{req.q(unknown[0])}. Additional properties are not allowed "
                    f"('{unknown[0]}' was unexpected)",
                )
        rule = "detail" if detail else "index"
        all_tenants = False
        if "all_tenants" in req.query:
            value = (req.q("all_tenants") or "").lower()
            all_tenants = value == "" or value not in FALSE_WORDS
            if all_tenants and not admin:
                raise _policy(f"os_compute_api:servers:{rule}:get_all_tenants")
        servers = list(self.store.values("server"))
        if all_tenants:
            wanted = req.q("project_id") or req.q("tenant_id")
            if wanted:
                servers = [s for s in servers if s["project_id"] == wanted]
        else:
            servers = [s for s in servers if s["project_id"] == project_id]

        show_deleted = False
        since_text = req.q("changes-since")
        if since_text is not None:
            try:
                since = parse_time(since_text)
            except ValueError as exc:
                raise nova_error(
                    400,
                    f"Invalid input for query parameters changes-since. Value: {since_text}. "
                    f"'{since_text}' is not a 'date-time'",
                ) from exc
            servers = [s for s in servers if s["updated_at"] >= since]
            show_deleted = True
        before_text = req.q("changes-before")
        if before_text is not None and _ver(req, 2, 66):
            try:
                before = parse_time(before_text)
            except ValueError as exc:
                raise nova_error(
                    400,
                    f"Invalid input for query parameters changes-before. Value: {before_text}. "
                    f"'{before_text}' is not a 'date-time'",
                ) from exc
            servers = [s for s in servers if s["updated_at"] <= before]
            show_deleted = True
        deleted = req.q("deleted")
        if deleted is not None and admin and deleted.lower() not in FALSE_WORDS:
            servers = [s for s in servers if s["vm_state"] == "deleted"]
        elif not show_deleted:
            servers = [s for s in servers if s["vm_state"] != "deleted"]

        name = req.q("name")
        if name is not None:
            try:
                pattern = re.compile(name)
                servers = [s for s in servers if pattern.search(s["name"])]
            except re.error:
                servers = [s for s in servers if name in s["name"]]
        status = req.q("status")
        if status is not None:
            wanted_status = status.upper()
            if wanted_status not in STATUSES:
                if _ver(req, 2, 38):
                    raise nova_error(400, f"Invalid status value: {status}")
                servers = []
            else:
                servers = [
                    s for s in servers if status_of(s["vm_state"], self._phase(s)) == wanted_status
                ]
        # Below 2.83 Nova silently drops these filters for non-admins.
        privileged = admin or _ver(req, 2, 83)
        for param, attr in (
            ("user_id", "user_id"),
            ("availability_zone", "availability_zone"),
            ("key_name", "key_name"),
            ("vm_state", "vm_state"),
        ):
            wanted_value = req.q(param)
            if wanted_value is not None and privileged:
                servers = [s for s in servers if s.get(attr) == wanted_value]
        power = req.q("power_state")
        if power is not None and privileged:
            servers = [s for s in servers if str(s["power_state"]) == power]
        for param, attr in (("host", "host"), ("node", "host")):
            wanted_host = req.q(param)
            if wanted_host is not None and admin:
                servers = [s for s in servers if s.get(attr) == wanted_host]
        image = req.q("image")
        if image is not None:
            servers = [s for s in servers if s["image_id"] == image]
        flavor = req.q("flavor")
        if flavor is not None:
            servers = [s for s in servers if s["flavor"]["id"] == flavor]
        ip = req.q("ip")
        if ip is not None:
            pattern = re.compile(re.escape(ip))
            index = self._net_index(servers)
            servers = [
                s
                for s in servers
                if any(
                    pattern.search(fixed["ip_address"])
                    for p in index[0].get(s["id"], [])
                    for fixed in p["fixed_ips"]
                )
            ]

        servers = self._sorted(req, servers)
        marker = req.q("marker")
        if marker:
            ids = [s["id"] for s in servers]
            if marker not in ids:
                raise nova_error(400, f"marker [{marker}] not found")
            servers = servers[ids.index(marker) + 1 :]
        limit = self._limit(req)
        chunk = servers[:limit]
        index = self._net_index(chunk)
        if detail:
            views = [self.server_view(req, s, index) for s in chunk]
        else:
            views = [
                {"id": s["id"], "name": s["name"], "links": self._link(req, f"servers/{s['id']}")}
                for s in chunk
            ]
        body: Doc = {"servers": views}
        # Like Nova, a full page always carries a next link, even when nothing follows it.
        if chunk and len(chunk) == limit:
            params = [
                (k, v) for k, vs in req.query.items() if k not in ("marker", "limit") for v in vs
            ]
            params += [("limit", str(limit)), ("marker", chunk[-1]["id"])]
            path = "servers/detail" if detail else "servers"
            href = f"{req.base_url}/compute/v2.1/{path}?{urlencode(params)}"
            body["servers_links"] = [{"rel": "next", "href": href}]
        return Response(200, body)

    def _sorted(self, req: Request, servers: list[Doc]) -> list[Doc]:
        sort_key = req.q("sort_key") or "created_at"
        if sort_key in ("host", "node") and not req.token.is_admin:
            raise _policy("os_compute_api:servers:allow_all_filters")
        attr = {
            "created_at": "created_at",
            "updated_at": "updated_at",
            "launched_at": "launched_at",
            "display_name": "name",
            "uuid": "id",
            "host": "host",
            "node": "host",
        }.get(sort_key, "created_at")
        descending = (req.q("sort_dir") or "desc").lower() == "desc"
        text_key = attr in ("name", "id", "host")

        def key(server: Doc) -> tuple[Any, str]:
            value = server.get(attr)
            return (value or "", server["id"]) if text_key else (value or 0.0, server["id"])

        return sorted(servers, key=key, reverse=descending)

    def get_server(self, req: Request) -> Response:
        server = self._visible_server(req, req.params["server_id"])
        return Response(200, {"server": self.server_view(req, server)})

    def update_server(self, req: Request) -> Response:
        self._member(req, "servers:update")
        server = self._visible_server(req, req.params["server_id"])
        body = self._body(req)
        section = body.get("server")
        if not isinstance(section, dict):
            raise _bad("server", section, "'server' is a required property")
        for key, value in section.items():
            if key == "name":
                if not isinstance(value, str) or not value.strip() or len(value) > 255:
                    raise _bad("name", value, "is not a valid name")
                server["name"] = value
            elif key == "description" and _ver(req, 2, 19):
                server["description"] = value
            elif key not in ("accessIPv4", "accessIPv6", "OS-DCF:diskConfig", "hostname"):
                raise _bad(
                    "server",
                    section,
                    f"Additional properties are not allowed ('{key}' was unexpected)",
                )
        self._touch(server)
        return Response(200, {"server": self.server_view(req, server)})

    def _touch(self, server: Doc, when: float | None = None) -> None:
        server["updated_at"] = when or now()
        self.store.put("server", server)

    # ---- server create -----------------------------------------------------------------------

    def _quota(self, project_id: str) -> dict[str, int]:
        limits = dict(QUOTA_DEFAULTS)
        limits.update((self.store.get("nova_quota", project_id) or {}).get("limits", {}))
        return limits

    def _usage(self, project_id: str) -> dict[str, int]:
        used = {"instances": 0, "cores": 0, "ram": 0}
        for server in self.store.values("server"):
            if server["project_id"] == project_id and server["vm_state"] != "deleted":
                used["instances"] += 1
                used["cores"] += server["flavor"]["vcpus"]
                used["ram"] += server["flavor"]["ram"]
        return used

    def _check_quota(self, project_id: str, flavor: Doc, count: int) -> None:
        limits = self._quota(project_id)
        used = self._usage(project_id)
        wanted = {
            "instances": count,
            "cores": flavor["vcpus"] * count,
            "ram": flavor["ram"] * count,
        }
        over = [
            r
            for r in ("cores", "instances", "ram")
            if limits[r] >= 0 and used[r] + wanted[r] > limits[r]
        ]
        if over:
            requested = ", ".join(str(wanted[r]) for r in over)
            usage = ", ".join(str(used[r]) for r in over)
            allowed = ", ".join(str(limits[r]) for r in over)
            names = ", ".join(over)
            raise nova_error(
                403,
                f"Quota exceeded for {names}: Requested {requested}, but already used {usage} of "
                f"{allowed} {names}",
            )

    def _ref_id(self, value: Any) -> str:
        text = str(value)
        return text.rstrip("/").rsplit("/", 1)[-1]

    def create_server(self, req: Request) -> Response:
        project_id = self._project(req)
        self._member(req, "servers:create")
        body = self._body(req)
        section = body.get("server")
        if not isinstance(section, dict):
            raise _bad(
                "server",
                section,
                "'server' is a required property"
                if section is None
                else f"{json.dumps(section)} is not of type 'object'",
            )
        unknown = sorted(set(section) - SERVER_FIELDS)
        if unknown:
            raise _bad(
                "server",
                section,
                f"Additional properties are not allowed ({', '.join(repr(u) for u in unknown)} "
                f"{'was' if len(unknown) == 1 else 'were'} unexpected)",
            )
        name = section.get("name")
        if "name" not in section:
            raise _bad("server", section, "'name' is a required property")
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise _bad("name", name, f"{json.dumps(name)} is not a valid server name")
        if "flavorRef" not in section:
            raise _bad("server", section, "'flavorRef' is a required property")
        if "imageRef" not in section and not section.get("block_device_mapping_v2"):
            raise _bad("server", section, "'imageRef' is a required property")
        if section.get("block_device_mapping_v2") and not section.get("imageRef"):
            raise nova_error(
                400, "Block Device Mapping is Invalid: devcloud has no volume service to boot from."
            )
        image_ref = self._ref_id(section["imageRef"])
        try:
            uuid.UUID(image_ref)
        except ValueError as exc:
            raise _bad(
                "imageRef",
                section["imageRef"],
                f"{json.dumps(section['imageRef'])} is not a 'uuid'",
            ) from exc
        flavor_id = self._ref_id(section["flavorRef"])
        metadata = section.get("metadata", {})
        if not isinstance(metadata, dict):
            raise _bad("metadata", metadata, f"{json.dumps(metadata)} is not of type 'object'")
        for key, value in metadata.items():
            if not isinstance(value, str) or len(key) > 255 or len(value) > 255 or not key:
                raise _bad(
                    f"metadata/{key}",
                    value,
                    "Metadata keys and values must be strings of at most 255 characters",
                )
        self._meta_quota({"project_id": project_id}, metadata)
        networks = section.get("networks")
        if networks is None and _ver(req, 2, 37):
            raise _bad("server", section, "'networks' is a required property")
        if isinstance(networks, str) and (networks not in ("auto", "none") or not _ver(req, 2, 37)):
            raise _bad("networks", networks, f"{json.dumps(networks)} is not of type 'array'")
        if networks is not None and not isinstance(networks, (list, str)):
            raise _bad("networks", networks, f"{json.dumps(networks)} is not of type 'array'")
        count = 1
        for key in ("min_count", "max_count"):
            if key in section:
                try:
                    value = int(section[key])
                except (TypeError, ValueError) as exc:
                    raise _bad(
                        key, section[key], f"{json.dumps(section[key])} is not of type 'integer'"
                    ) from exc
                if value < 1:
                    raise _bad(key, section[key], f"{value} is less than the minimum of 1")
                if key == "max_count":
                    count = value

        # Availability zone and forced host (admin only: it bypasses the scheduler).
        zone = "nova"
        forced_host = None
        az = section.get("availability_zone")
        if az is not None:
            if not isinstance(az, str):
                raise _bad("availability_zone", az, f"{json.dumps(az)} is not of type 'string'")
            parts = az.split(":")
            if len(parts) > 3:
                raise nova_error(400, "Unable to parse availability_zone")
            zone = parts[0] or "nova"
            if len(parts) > 1:
                if not req.token.is_admin:
                    raise _policy("os_compute_api:servers:create:forced_host")
                forced_host = parts[1] or (parts[2] if len(parts) > 2 else None)
            if zone != "nova":
                raise nova_error(400, f"The requested availability zone is not available: {zone}")
        requested_host = section.get("host")
        if requested_host is not None or section.get("hypervisor_hostname") is not None:
            if not _ver(req, 2, 74):
                raise _bad(
                    "server",
                    section,
                    "Additional properties are not allowed ('host' was unexpected)",
                )
            if not req.token.is_admin:
                raise _policy("compute:servers:create:requested_destination")
            wanted = requested_host or section.get("hypervisor_hostname")
            if self.store.get("host", str(wanted)) is None:
                raise nova_error(400, f"Compute host {wanted} could not be found.")
            forced_host = str(wanted)

        flavor = self.store.get("flavor", flavor_id)
        if flavor is None:
            raise nova_error(400, f"Flavor {flavor_id} could not be found.")
        image = next((i for i in self.cloud.image.visible(req) if i["id"] == image_ref), None)
        if image is None:
            raise nova_error(400, "Can not find requested image")
        if image["status"] != "active":
            raise nova_error(400, f"Image {image_ref} is not active.")
        if (
            flavor["disk"]
            and image.get("virtual_size")
            and image["virtual_size"] > flavor["disk"] * 1024**3
        ):
            raise nova_error(
                400,
                "Flavor's disk is too small for requested image. Flavor disk is "
                f"{flavor['disk'] * 1024**3} bytes, image is {image['virtual_size']} bytes.",
            )
        if image.get("min_disk") and flavor["disk"] and image["min_disk"] > flavor["disk"]:
            raise nova_error(
                400,
                "Flavor's disk is too small for requested image. Flavor disk is "
                f"{flavor['disk'] * 1024**3} bytes, image is {image['min_disk'] * 1024**3} bytes.",
            )
        if image.get("min_ram") and image["min_ram"] > flavor["ram"]:
            raise nova_error(400, "Flavor's memory is too small for requested image.")

        key_name = section.get("key_name")
        keypair_id = f"{req.token.user_id}:{key_name}"
        if key_name is not None and self.store.get("keypair", keypair_id) is None:
            raise nova_error(400, "Invalid key_name provided.")
        user_data = section.get("user_data")
        if user_data is not None:
            try:
                base64.b64decode(str(user_data), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise _bad("user_data", user_data, "is not a base64 string") from exc
            if len(str(user_data)) > 65535:
                raise _bad("user_data", "...", "is too long")

        net = self.cloud.network
        sg_names: list[str] = []
        sg_ids: list[str] = []
        wanted_groups = section.get("security_groups") or [{"name": "default"}]
        if not isinstance(wanted_groups, list):
            raise _bad("security_groups", wanted_groups, "is not of type 'array'")
        project_groups = [
            g for g in self.store.values("security_group") if g["project_id"] == project_id
        ]
        for ref in wanted_groups:
            wanted_name = ref.get("name") if isinstance(ref, dict) else None
            if not wanted_name:
                raise _bad("security_groups", wanted_groups, "'name' is a required property")
            if wanted_name == "default":
                net.ensure_default_sg(project_id)
                project_groups = [
                    g for g in self.store.values("security_group") if g["project_id"] == project_id
                ]
            found = [g for g in project_groups if g["id"] == wanted_name] or [
                g for g in project_groups if g["name"] == wanted_name
            ]
            if not found:
                raise nova_error(400, f"Security group {wanted_name} not found.")
            if len(found) > 1:
                raise nova_error(409, "No Unique Match Found.")
            sg_names.append(found[0]["name"])
            sg_ids.append(found[0]["id"])

        plan = self._plan_networks(req, project_id, networks)
        self._check_quota(project_id, flavor, count)

        created_ids = []
        admin_pass = section.get("adminPass") or secrets.token_urlsafe(9)[:12]
        for number in range(count):
            server_name = name if count == 1 else f"{name}-{number + 1}"
            server = self._new_server(
                req,
                project_id=project_id,
                name=server_name,
                image_id=image_ref,
                flavor=flavor,
                metadata=metadata,
                key_name=key_name,
                forced_host=forced_host,
                zone=zone,
                zone_requested=az is not None,
                sg_names=sg_names,
                sg_ids=sg_ids,
                plan=plan,
                description=section.get("description"),
                tags=section.get("tags") or [],
                user_data=user_data,
            )
            created_ids.append(server["id"])
        first = created_ids[0]
        if section.get("return_reservation_id"):
            server = self.store.get("server", first) or {}
            return Response(202, {"reservation_id": server.get("reservation_id")})
        location = f"{req.base_url}/compute/v2.1/servers/{first}"
        reply: Doc = {
            "id": first,
            "links": self._link(req, f"servers/{first}"),
            "OS-DCF:diskConfig": "MANUAL",
            "security_groups": [{"name": n} for n in sg_names],
            "adminPass": admin_pass,
        }
        return Response(202, {"server": reply}, {"Location": location})

    def _plan_networks(self, req: Request, project_id: str, networks: Any) -> list[Doc]:
        """Validate the requested NICs the way nova-api asks Neutron before it answers 202."""
        net = self.cloud.network
        if networks == "none":
            return []
        if networks is None or networks == "auto":
            own = [
                n
                for n in self.store.values("network")
                if n["project_id"] == project_id and not n["router:external"] and n["subnets"]
            ]
            candidates = own or [
                n
                for n in self.store.values("network")
                if n["shared"] and not n["router:external"] and n["subnets"]
            ]
            if not candidates:
                if networks == "auto":
                    raise nova_error(400, "Unable to automatically allocate a network for project")
                return []
            if len(candidates) > 1:
                raise nova_error(
                    409,
                    "More than one possible network found. Specify network ID(s) to select which "
                    "one(s) to connect to.",
                )
            return [{"network_id": candidates[0]["id"]}]
        plan = []
        for entry in networks:
            if not isinstance(entry, dict):
                raise _bad("networks", networks, f"{json.dumps(entry)} is not of type 'object'")
            if entry.get("port"):
                port = self.store.get("port", str(entry["port"]))
                if port is None or (port["project_id"] != project_id and not req.token.is_admin):
                    raise nova_error(400, f"Port {entry['port']} could not be found.")
                if port["device_id"]:
                    raise nova_error(409, f"Port {port['id']} is still in use.")
                plan.append({"network_id": port["network_id"], "port_id": port["id"]})
                continue
            network_id = entry.get("uuid")
            if not network_id:
                raise nova_error(400, "Bad network format: missing 'uuid'")
            try:
                uuid.UUID(str(network_id))
            except ValueError as exc:
                raise _bad(
                    "networks/uuid", network_id, f"{json.dumps(network_id)} is not a 'uuid'"
                ) from exc
            network = self.store.get("network", str(network_id))
            if network is None or not (
                network["project_id"] == project_id
                or network["shared"]
                or network["router:external"]
                or req.token.is_admin
            ):
                raise nova_error(400, f"Network {network_id} could not be found.")
            if network["router:external"] and not req.token.is_admin:
                raise nova_error(
                    403,
                    f"It is not allowed to create an interface on external network {network_id}",
                )
            if not network["subnets"]:
                raise nova_error(
                    400, f"Network {network_id} requires a subnet in order to boot instances on."
                )
            item: Doc = {"network_id": network["id"]}
            fixed = entry.get("fixed_ip")
            if fixed:
                try:
                    address = ipaddress.ip_address(fixed)
                except ValueError as exc:
                    raise _bad(
                        "networks/fixed_ip", fixed, f"{json.dumps(fixed)} is not a 'ipv4'"
                    ) from exc
                subnet = next(
                    (
                        s
                        for s in (self.store.get("subnet", i) for i in network["subnets"])
                        if s and address in ipaddress.ip_network(s["cidr"])
                    ),
                    None,
                )
                if subnet is None:
                    raise nova_error(
                        400, f"Fixed IP address {fixed} is not valid for network {network_id}."
                    )
                if str(address) in net.used_ips(subnet["id"]):
                    raise nova_error(
                        409, f"Fixed IP address {fixed} is already in use on instance."
                    )
                item["fixed_ips"] = [{"subnet_id": subnet["id"], "ip_address": str(address)}]
            plan.append(item)
        return plan

    def _new_server(
        self,
        req: Request,
        *,
        project_id: str,
        name: str,
        image_id: str,
        flavor: Doc,
        metadata: Doc,
        key_name: str | None,
        forced_host: str | None,
        zone: str,
        zone_requested: bool,
        sg_names: list[str],
        sg_ids: list[str],
        plan: list[Doc],
        description: str | None,
        tags: list[str],
        user_data: str | None,
    ) -> Doc:
        moment = now()
        server_id = new_id()
        counters = self.store.get("meta", "nova") or {"id": "nova", "instance_seq": 0}
        counters["instance_seq"] += 1
        self.store.put("meta", counters)
        failure = self.cloud.faults.next_build_failure()
        host = self._schedule(flavor, forced_host)
        server: Doc = {
            "id": server_id,
            "name": name,
            "project_id": project_id,
            "user_id": req.token.user_id,
            "image_id": image_id,
            "flavor": {
                k: flavor[k]
                for k in ("id", "name", "vcpus", "ram", "disk", "ephemeral", "swap", "extra_specs")
            },
            "metadata": dict(metadata),
            "key_name": key_name,
            "availability_zone": zone,
            "host": host,
            "created_at": moment,
            "updated_at": moment,
            "launched_at": None,
            "terminated_at": None,
            "vm_state": "building",
            "task_state": "scheduling",
            "power_state": POWER_NOSTATE,
            "fault": None,
            "locked": False,
            "locked_reason": None,
            "description": description,
            "tags": list(tags),
            # Security groups live on ports: a server without NICs shows none.
            "security_groups": sg_names if plan else [],
            "instance_name": f"instance-{counters['instance_seq']:08x}",
            "hostname": re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63] or "server",
            "reservation_id": "r-" + secrets.token_hex(4),
            "user_data": user_data,
            "config_drive": "",
            "ports": [],
            # Nova pins the zone the user asked for; an unrequested default stays unpinned.
            "pinned_az": zone if zone_requested else None,
            "build_failure": failure if failure is not None else (None if host else NO_VALID_HOST),
            "pending": None,
        }
        # nova-compute creates the ports while the server builds.
        net = self.cloud.network
        for item in plan:
            if item.get("port_id"):
                port = self.store.get("port", item["port_id"])
                assert port is not None
                port.update({"device_id": server_id, "device_owner": f"compute:{zone}"})
                self.store.put("port", port)
                server["ports"].append({"id": port["id"], "created": False})
                continue
            network = self.store.get("network", item["network_id"])
            assert network is not None
            port = net.create_port_record(
                network=network,
                project_id=project_id,
                device_id=server_id,
                device_owner=f"compute:{zone}",
                fixed_ips=item.get("fixed_ips"),
                security_groups=sg_ids if network.get("port_security_enabled", True) else [],
            )
            server["ports"].append({"id": port["id"], "created": True})
        self._set_pending(server, "build", self.cloud.config.build_seconds, moment)
        self.store.put("server", server)
        return server

    def _schedule(self, flavor: Doc, forced_host: str | None) -> str | None:
        hosts = sorted(self.store.values("host"), key=lambda h: h["id"])
        if forced_host is not None:
            host = self.store.get("host", forced_host)
            return host["id"] if host else None
        fitting = [
            h
            for h in hosts
            if flavor["vcpus"] <= h["vcpus"] * CPU_RATIO
            and flavor["ram"] <= h["memory_mb"] * RAM_RATIO
            and flavor["disk"] <= h["local_gb"]
        ]
        if not fitting:
            return None
        load = {h["id"]: 0 for h in fitting}
        for server in self.store.values("server"):
            if server.get("host") in load and server["vm_state"] != "deleted":
                load[server["host"]] += 1
        return min(fitting, key=lambda h: (load[h["id"]], h["id"]))["id"]

    # ---- life cycle ----------------------------------------------------------------------------

    def _set_pending(
        self, server: Doc, op: str, seconds: float, start: float | None = None
    ) -> None:
        begin = start or now()
        server["pending"] = {"op": op, "start": begin, "due": begin + max(seconds, 0.0)}
        self._pending[server["id"]] = server["pending"]["due"]

    def tick(self) -> None:
        """Finish every transition whose time has come (called under the store lock)."""
        if not self._pending:
            return
        moment = now()
        due = [sid for sid, when in self._pending.items() if when <= moment]
        for server_id in sorted(due, key=lambda s: self._pending[s]):
            self._pending.pop(server_id, None)
            server = self.store.get("server", server_id)
            if server is None or not server.get("pending"):
                continue
            self._finish(server)

    def _finish(self, server: Doc) -> None:
        pending = server["pending"]
        server["pending"] = None
        when = pending["due"]
        op = pending["op"]
        if op == "build":
            failure = server.get("build_failure")
            image = self.store.get("image", server["image_id"])
            if failure is None and (image is None or image["status"] != "active"):
                failure = f"Image {server['image_id']} could not be found."
            if failure is not None:
                self._fail(server, failure, when)
            else:
                server.update(
                    {
                        "vm_state": "active",
                        "task_state": None,
                        "power_state": POWER_RUNNING,
                        "launched_at": when,
                    }
                )
                for ref in server["ports"]:
                    port = self.store.get("port", ref["id"])
                    if port:
                        port.update(
                            {
                                "status": "ACTIVE",
                                "binding:host_id": server["host"],
                                "binding:vif_type": "ovs",
                            }
                        )
                        self.store.put("port", port)
        elif op == "stop":
            server.update(
                {"vm_state": "stopped", "task_state": None, "power_state": POWER_SHUTDOWN}
            )
        elif op in ("start", "reboot"):
            server.update({"vm_state": "active", "task_state": None, "power_state": POWER_RUNNING})
        elif op == "delete" and self.cloud.config.reclaim_instance_interval > 0:
            # Deferred delete: powered off and kept, then reclaimed after the interval.
            server.update(
                {"vm_state": "soft-delete", "task_state": None, "power_state": POWER_NOSTATE}
            )
            self._set_pending(
                server, "reclaim", self.cloud.config.reclaim_instance_interval, start=when
            )
        elif op in ("delete", "reclaim"):
            self._release_ports(server)
            server.update(
                {
                    "vm_state": "deleted",
                    "task_state": None,
                    "power_state": POWER_NOSTATE,
                    "terminated_at": when,
                }
            )
        self._touch(server, when)

    def _fail(self, server: Doc, message: str, when: float) -> None:
        server.update(
            {
                "vm_state": "error",
                "task_state": None,
                "power_state": POWER_NOSTATE,
                "fault": {
                    "code": 500,
                    "created": when,
                    "message": message,
                    # Admins see where the build failed, as nova shows them the traceback.
                    "details": f"nova.exception.BuildAbortException: {message}",
                },
            }
        )
        # A build that fails is cleaned up: its network is deallocated.
        self._release_ports(server)

    def _release_ports(self, server: Doc) -> None:
        net = self.cloud.network
        for ref in server.get("ports", []):
            port = self.store.get("port", ref["id"])
            if port is None:
                continue
            if ref["created"]:
                net.remove_port(port)
            else:
                port.update(
                    {"device_id": "", "device_owner": "", "status": "DOWN", "binding:host_id": ""}
                )
                self.store.put("port", port)
        server["ports"] = []

    def _conflict(self, server: Doc, action: str) -> ApiError:
        task = self._phase(server)
        if task is not None:
            return nova_error(
                409, f"Cannot '{action}' instance {server['id']} while it is in task_state {task}"
            )
        return nova_error(
            409,
            f"Cannot '{action}' instance {server['id']} while it is in vm_state "
            f"{server['vm_state']}",
        )

    def server_action(self, req: Request) -> Response:
        server = self._visible_server(req, req.params["server_id"])
        body = self._body(req)
        if len(body) != 1:
            raise nova_error(400, "Malformed request body")
        action, argument = next(iter(body.items()))
        locked = server.get("locked") and not req.token.is_admin
        task = self._phase(server)
        vm = server["vm_state"]
        if action == "os-start":
            self._member(req, "servers:start")
            if locked:
                raise nova_error(409, f"Instance {server['id']} is locked")
            if vm != "stopped" or task is not None:
                raise self._conflict(server, "start")
            server["task_state"] = "powering-on"
            self._set_pending(server, "start", self.action_seconds)
        elif action == "os-stop":
            self._member(req, "servers:stop")
            if locked:
                raise nova_error(409, f"Instance {server['id']} is locked")
            if vm not in ("active", "error") or task is not None:
                raise self._conflict(server, "stop")
            server["task_state"] = "powering-off"
            self._set_pending(server, "stop", self.action_seconds)
        elif action == "reboot":
            self._member(req, "servers:reboot")
            kind = argument.get("type") if isinstance(argument, dict) else None
            if not isinstance(kind, str) or kind.upper() not in ("SOFT", "HARD"):
                raise _bad(
                    "type",
                    kind,
                    f"{json.dumps(kind)} is not one of ['HARD', 'Hard', 'hard', 'SOFT', 'Soft', "
                    "'soft']",
                )
            if locked:
                raise nova_error(409, f"Instance {server['id']} is locked")
            if kind.upper() == "SOFT":
                if vm != "active" or task is not None:
                    raise self._conflict(server, "reboot")
                server["task_state"] = "rebooting"
            else:
                if vm not in ("active", "stopped", "paused", "suspended", "error") or task not in (
                    None,
                    "rebooting",
                    "reboot_pending",
                    "reboot_started",
                ):
                    raise self._conflict(server, "reboot")
                server["task_state"] = "rebooting_hard"
            self._set_pending(server, "reboot", self.action_seconds)
        elif action in ("lock", "unlock"):
            self._member(req, f"os-lock-server:{action}")
            server["locked"] = action == "lock"
            reason = argument.get("locked_reason") if isinstance(argument, dict) else None
            server["locked_reason"] = reason if action == "lock" else None
        else:
            raise nova_error(400, f"There is no such action: {action}")
        self._touch(server)
        return Response(202)

    def delete_server(self, req: Request) -> Response:
        self._member(req, "servers:delete")
        server = self._visible_server(req, req.params["server_id"])
        if server.get("locked") and not req.token.is_admin:
            raise nova_error(409, f"Instance {server['id']} is locked")
        if server["task_state"] != "deleting":
            # The record keeps its status with task_state "deleting" until the delete finishes;
            # deleting a server that is still building cancels the build.
            server["task_state"] = "deleting"
            self._set_pending(server, "delete", self.action_seconds)
            self._touch(server)
        return Response(204)

    # ---- metadata, ips, interfaces -----------------------------------------------------------

    def get_metadata(self, req: Request) -> Response:
        server = self._visible_server(req, req.params["server_id"])
        return Response(200, {"metadata": dict(server["metadata"])})

    def _meta_body(self, req: Request, key: str) -> Doc:
        body = self._body(req)
        value = body.get(key)
        if not isinstance(value, dict):
            raise _bad(key, value, f"'{key}' is a required property")
        for k, v in value.items():
            if not isinstance(v, str) or len(k) > 255 or len(v) > 255 or not k:
                raise _bad(
                    f"{key}/{k}",
                    v,
                    "Metadata keys and values must be strings of at most 255 characters",
                )
        return value

    def _meta_quota(self, server: Doc, metadata: Doc) -> None:
        limit = self._quota(server["project_id"])["metadata_items"]
        if len(metadata) > limit:
            raise nova_error(
                403,
                f"Quota exceeded for metadata_items: Requested {len(metadata)}, but already used "
                f"0 of {limit} metadata_items",
            )

    def merge_metadata(self, req: Request) -> Response:
        self._member(req, "server-metadata:create")
        server = self._visible_server(req, req.params["server_id"])
        merged = {**server["metadata"], **self._meta_body(req, "metadata")}
        self._meta_quota(server, merged)
        server["metadata"] = merged
        self._touch(server)
        return Response(200, {"metadata": dict(merged)})

    def replace_metadata(self, req: Request) -> Response:
        self._member(req, "server-metadata:update_all")
        server = self._visible_server(req, req.params["server_id"])
        metadata = self._meta_body(req, "metadata")
        self._meta_quota(server, metadata)
        server["metadata"] = dict(metadata)
        self._touch(server)
        return Response(200, {"metadata": dict(metadata)})

    def get_meta_item(self, req: Request) -> Response:
        server = self._visible_server(req, req.params["server_id"])
        key = req.params["key"]
        if key not in server["metadata"]:
            raise nova_error(404, "Metadata item was not found")
        return Response(200, {"meta": {key: server["metadata"][key]}})

    def put_meta_item(self, req: Request) -> Response:
        self._member(req, "server-metadata:update")
        server = self._visible_server(req, req.params["server_id"])
        key = req.params["key"]
        meta = self._meta_body(req, "meta")
        if len(meta) != 1:
            raise nova_error(400, "Request body contains too many items")
        if key not in meta:
            raise nova_error(400, "Request body and URI mismatch")
        merged = {**server["metadata"], key: meta[key]}
        self._meta_quota(server, merged)
        server["metadata"] = merged
        self._touch(server)
        return Response(200, {"meta": {key: meta[key]}})

    def delete_meta_item(self, req: Request) -> Response:
        self._member(req, "server-metadata:delete")
        server = self._visible_server(req, req.params["server_id"])
        key = req.params["key"]
        if key not in server["metadata"]:
            raise nova_error(404, "Metadata item was not found")
        del server["metadata"][key]
        self._touch(server)
        return Response(204)

    def server_ips(self, req: Request) -> Response:
        server = self._visible_server(req, req.params["server_id"])
        addresses = (
            {}
            if server["vm_state"] == "building"
            else self._addresses(server, self._server_index(server))
        )
        trimmed = {
            net: [{"version": a["version"], "addr": a["addr"]} for a in entries]
            for net, entries in addresses.items()
        }
        return Response(200, {"addresses": trimmed})

    def server_interfaces(self, req: Request) -> Response:
        server = self._visible_server(req, req.params["server_id"])
        attachments = []
        for port in self.store.values("port"):
            if port["device_id"] == server["id"]:
                attachments.append(
                    {
                        "port_id": port["id"],
                        "net_id": port["network_id"],
                        "mac_addr": port["mac_address"],
                        "port_state": port["status"],
                        "fixed_ips": [dict(ip) for ip in port["fixed_ips"]],
                    }
                )
        return Response(200, {"interfaceAttachments": attachments})

    # ---- hosts, services, zones --------------------------------------------------------------

    def _service_rows(self, req: Request) -> list[Doc]:
        updated = iso_naive(now())
        rows = [
            {
                "id": 1,
                "binary": "nova-scheduler",
                "host": "codesquare-devstack",
                "zone": "internal",
            },
            {
                "id": 2,
                "binary": "nova-conductor",
                "host": "codesquare-devstack",
                "zone": "internal",
            },
        ]
        for host in sorted(self.store.values("host"), key=lambda h: h["id"]):
            rows.append(
                {
                    "id": host["service_id"],
                    "binary": "nova-compute",
                    "host": host["id"],
                    "zone": host["zone"],
                }
            )
        for row in rows:
            row.update(
                {"status": "enabled", "state": "up", "updated_at": updated, "disabled_reason": None}
            )
            if _ver(req, 2, 11):
                row["forced_down"] = False
            if _ver(req, 2, 53):
                row["id"] = str(
                    uuid.uuid5(
                        uuid.NAMESPACE_URL, f"devcloud-service-{row['host']}-{row['binary']}"
                    )
                )
        return rows

    def list_services(self, req: Request) -> Response:
        self._admin(req, "os-services:list")
        rows = self._service_rows(req)
        for param in ("binary", "host"):
            value = req.q(param)
            if value is not None:
                rows = [r for r in rows if r[param] == value]
        return Response(200, {"services": rows})

    def _hypervisor(self, req: Request, host: Doc, detail: bool) -> Doc:
        hv_id: Any = host["hypervisor_id"]
        if _ver(req, 2, 53):
            hv_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"devcloud-hypervisor-{host['id']}"))
        view: Doc = {
            "id": hv_id,
            "hypervisor_hostname": host["id"],
            "state": "up",
            "status": "enabled",
        }
        if not detail:
            return view
        servers = [
            s
            for s in self.store.values("server")
            if s.get("host") == host["id"] and s["vm_state"] not in ("deleted", "error")
        ]
        service_id: Any = host["service_id"]
        if _ver(req, 2, 53):
            service_id = str(
                uuid.uuid5(uuid.NAMESPACE_URL, f"devcloud-service-{host['id']}-nova-compute")
            )
        view.update(
            {
                "host_ip": host["host_ip"],
                "hypervisor_type": "QEMU",
                "hypervisor_version": 8002002,
                "service": {"host": host["id"], "id": service_id, "disabled_reason": None},
            }
        )
        if not _ver(req, 2, 88):
            ram_used = sum(s["flavor"]["ram"] for s in servers) + 512
            disk_used = sum(s["flavor"]["disk"] for s in servers)
            view.update(
                {
                    "vcpus": host["vcpus"],
                    "memory_mb": host["memory_mb"],
                    "local_gb": host["local_gb"],
                    "vcpus_used": sum(s["flavor"]["vcpus"] for s in servers),
                    "memory_mb_used": ram_used,
                    "local_gb_used": disk_used,
                    "free_ram_mb": host["memory_mb"] - ram_used,
                    "free_disk_gb": host["local_gb"] - disk_used,
                    "running_vms": len(servers),
                    "current_workload": 0,
                    "disk_available_least": host["local_gb"] - disk_used,
                    "cpu_info": json.dumps(
                        {
                            "arch": "x86_64",
                            "model": "Nehalem",
                            "vendor": "Intel",
                            "topology": {
                                "cells": 1,
                                "sockets": 1,
                                "cores": host["vcpus"],
                                "threads": 1,
                            },
                        }
                    ),
                }
            )
        else:
            view["uptime"] = None
        return view

    def list_hypervisors(self, req: Request) -> Response:
        self._admin(req, "os-hypervisors:list")
        hosts = sorted(self.store.values("host"), key=lambda h: h["id"])
        return Response(200, {"hypervisors": [self._hypervisor(req, h, False) for h in hosts]})

    def list_hypervisors_detail(self, req: Request) -> Response:
        self._admin(req, "os-hypervisors:list-detail")
        hosts = sorted(self.store.values("host"), key=lambda h: h["id"])
        return Response(200, {"hypervisors": [self._hypervisor(req, h, True) for h in hosts]})

    def get_hypervisor(self, req: Request) -> Response:
        self._admin(req, "os-hypervisors:show")
        for host in self.store.values("host"):
            ids = {
                str(host["hypervisor_id"]),
                str(uuid.uuid5(uuid.NAMESPACE_URL, f"devcloud-hypervisor-{host['id']}")),
            }
            if req.params["hv_id"] in ids:
                return Response(200, {"hypervisor": self._hypervisor(req, host, True)})
        raise nova_error(404, f"Hypervisor with ID {req.params['hv_id']} could not be found.")

    def list_azs(self, req: Request) -> Response:
        zone = {"zoneName": "nova", "zoneState": {"available": True}, "hosts": None}
        return Response(200, {"availabilityZoneInfo": [zone]})

    def list_azs_detail(self, req: Request) -> Response:
        self._admin(req, "os-availability-zone:detail")
        updated = iso_naive(now())
        zones: dict[str, Doc] = {}
        for row in self._service_rows(req):
            hosts = zones.setdefault(row["zone"], {})
            hosts.setdefault(row["host"], {})[row["binary"]] = {
                "available": True,
                "active": True,
                "updated_at": updated,
            }
        info = [
            {"zoneName": name, "zoneState": {"available": True}, "hosts": hosts}
            for name, hosts in zones.items()
        ]
        return Response(200, {"availabilityZoneInfo": info})

    # ---- quotas and limits ----------------------------------------------------------------------

    def _quota_target(self, req: Request) -> str:
        project_id = req.params["project_id"]
        if project_id != req.token.project_id:
            self._admin(req, "os-quota-sets:show")
        return project_id

    def _quota_view(self, req: Request, limits: dict[str, int]) -> Doc:
        view: Doc = dict(limits)
        if not _ver(req, 2, 36):
            view.update(
                {
                    "floating_ips": 10,
                    "fixed_ips": -1,
                    "security_groups": 10,
                    "security_group_rules": 20,
                }
            )
        if _ver(req, 2, 57):
            view.pop("injected_files", None)
            view.pop("injected_file_content_bytes", None)
            view.pop("injected_file_path_bytes", None)
        return view

    def get_quota(self, req: Request) -> Response:
        project_id = self._quota_target(req)
        view = self._quota_view(req, self._quota(project_id))
        view["id"] = project_id
        return Response(200, {"quota_set": view})

    def get_quota_defaults(self, req: Request) -> Response:
        project_id = req.params["project_id"]
        view = self._quota_view(req, dict(QUOTA_DEFAULTS))
        view["id"] = project_id
        return Response(200, {"quota_set": view})

    def get_quota_detail(self, req: Request) -> Response:
        project_id = self._quota_target(req)
        used = self._usage(project_id)
        view = self._quota_view(req, self._quota(project_id))
        detail: Doc = {
            k: {"limit": v, "in_use": used.get(k, 0), "reserved": 0} for k, v in view.items()
        }
        detail["id"] = project_id
        return Response(200, {"quota_set": detail})

    def put_quota(self, req: Request) -> Response:
        self._admin(req, "os-quota-sets:update")
        project_id = req.params["project_id"]
        section = self._body(req).get("quota_set")
        if not isinstance(section, dict):
            raise _bad("quota_set", section, "'quota_set' is a required property")
        doc = self.store.get("nova_quota", project_id) or {"id": project_id, "limits": {}}
        for key, value in section.items():
            if key == "force":
                continue
            if key not in QUOTA_DEFAULTS:
                raise _bad(
                    "quota_set",
                    section,
                    f"Additional properties are not allowed ('{key}' was unexpected)",
                )
            try:
                number = int(value)
            except (TypeError, ValueError) as exc:
                raise _bad(
                    f"quota_set/{key}", value, f"{json.dumps(value)} is not of type 'integer'"
                ) from exc
            if number < -1:
                raise _bad(f"quota_set/{key}", value, f"{number} is less than the minimum of -1")
            doc["limits"][key] = number
        self.store.put("nova_quota", doc)
        return Response(200, {"quota_set": self._quota_view(req, self._quota(project_id))})

    def delete_quota(self, req: Request) -> Response:
        self._admin(req, "os-quota-sets:delete")
        self.store.delete("nova_quota", req.params["project_id"])
        return Response(202)

    def limits(self, req: Request) -> Response:
        project_id = self._project(req)
        limits = self._quota(project_id)
        used = self._usage(project_id)
        absolute = {
            "maxTotalInstances": limits["instances"],
            "maxTotalCores": limits["cores"],
            "maxTotalRAMSize": limits["ram"],
            "maxServerMeta": limits["metadata_items"],
            "maxTotalKeypairs": limits["key_pairs"],
            "maxServerGroups": limits["server_groups"],
            "maxServerGroupMembers": limits["server_group_members"],
            "totalInstancesUsed": used["instances"],
            "totalCoresUsed": used["cores"],
            "totalRAMUsed": used["ram"],
            "totalServerGroupsUsed": 0,
        }
        if not _ver(req, 2, 57):
            absolute.update({"maxPersonality": 5, "maxPersonalitySize": 10240})
        if not _ver(req, 2, 39):
            absolute["maxImageMeta"] = 128
        return Response(200, {"limits": {"rate": [], "absolute": absolute}})

    # ---- key pairs ---------------------------------------------------------------------------

    def _keypair_view(self, doc: Doc, full: bool) -> Doc:
        view = {
            "name": doc["name"],
            "public_key": doc["public_key"],
            "fingerprint": doc["fingerprint"],
            "type": doc["type"],
        }
        if full:
            view.update(
                {
                    "user_id": doc["user_id"],
                    "id": doc["seq"],
                    "created_at": iso_naive(doc["created_at"]),
                    "deleted": False,
                    "deleted_at": None,
                    "updated_at": None,
                }
            )
        return view

    def _keypair_owner(self, req: Request, action: str, wanted: str | None) -> str:
        """Whose key pairs a call is about, under Nova's ``admin_or_owner`` policy.

        ``user_id`` (query string, or body for a create) is read from 2.10 only; a member naming
        another user is refused, an admin may name anyone (Nova does not check the user exists).
        """
        if wanted is None or not _ver(req, 2, 10):
            return str(req.token.user_id)
        if wanted != req.token.user_id and not req.token.is_admin:
            raise _policy(f"os_compute_api:os-keypairs:{action}")
        return wanted

    def list_keypairs(self, req: Request) -> Response:
        user_id = self._keypair_owner(req, "index", req.q("user_id"))
        pairs = sorted(
            (d for d in self.store.values("keypair") if d["user_id"] == user_id),
            key=lambda d: d["name"],
        )
        full = _ver(req, 2, 2)
        views = []
        for doc in pairs:
            view = self._keypair_view(doc, False)
            if not full:
                view.pop("type")
            views.append({"keypair": view})
        return Response(200, {"keypairs": views})

    def create_keypair(self, req: Request) -> Response:
        section = self._body(req).get("keypair")
        if not isinstance(section, dict) or not section.get("name"):
            raise _bad("keypair", section, "'name' is a required property")
        if "user_id" in section and not _ver(req, 2, 10):
            # The schema of 2.1-2.9 has no user_id and forbids extra properties.
            raise nova_error(
                400,
                "Invalid input for field/attribute keypair. Value: "
                f"{json.dumps(section)}. Additional properties are not allowed "
                "('user_id' was unexpected)",
            )
        user_id = self._keypair_owner(req, "create", section.get("user_id"))
        name = str(section["name"])
        key = f"{user_id}:{name}"
        if self.store.get("keypair", key) is not None:
            raise nova_error(409, f"Key pair '{name}' already exists.")
        public_key = section.get("public_key")
        if not public_key:
            # Generating a real key pair needs a crypto library; the server stays stdlib-only.
            raise _bad(
                "keypair",
                section,
                "'public_key' is a required property (devcloud does not generate key pairs)",
            )
        parts = str(public_key).split()
        if len(parts) < 2:
            raise nova_error(400, "Keypair data is invalid: failed to generate fingerprint")
        try:
            raw = base64.b64decode(parts[1], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise nova_error(
                400, "Keypair data is invalid: failed to generate fingerprint"
            ) from exc
        digest = hashlib.md5(raw, usedforsecurity=False).hexdigest()
        counters = self.store.get("meta", "nova") or {"id": "nova", "instance_seq": 0}
        counters["keypair_seq"] = counters.get("keypair_seq", 0) + 1
        self.store.put("meta", counters)
        doc = {
            "id": key,
            "name": name,
            "user_id": user_id,
            "public_key": public_key,
            "fingerprint": ":".join(digest[i : i + 2] for i in range(0, 32, 2)),
            "type": section.get("type", "ssh"),
            "created_at": now(),
            "seq": counters["keypair_seq"],
        }
        self.store.put("keypair", doc)
        view = self._keypair_view(doc, False)
        view["user_id"] = user_id
        if not _ver(req, 2, 2):
            view.pop("type")
        return Response(201 if _ver(req, 2, 2) else 200, {"keypair": view})

    def _get_keypair(self, req: Request, action: str) -> Doc:
        user_id = self._keypair_owner(req, action, req.q("user_id"))
        doc = self.store.get("keypair", f"{user_id}:{req.params['name']}")
        if doc is None:
            raise nova_error(404, f"Keypair {req.params['name']} not found for user {user_id}")
        return doc

    def get_keypair(self, req: Request) -> Response:
        view = self._keypair_view(self._get_keypair(req, "show"), True)
        if not _ver(req, 2, 2):
            view.pop("type")
        return Response(200, {"keypair": view})

    def delete_keypair(self, req: Request) -> Response:
        doc = self._get_keypair(req, "delete")
        self.store.delete("keypair", doc["id"])
        return Response(204 if _ver(req, 2, 2) else 202)

    # ---- bulk population (control endpoint) --------------------------------------------------

    def bulk_create(
        self,
        *,
        project_id: str,
        user_id: str,
        count: int,
        name_prefix: str,
        flavor_id: str,
        image_id: str,
        network_id: str,
        metadata: Doc,
        status: str,
    ) -> list[str]:
        """ACTIVE (or SHUTOFF) servers with ports, created at once for large-scale tests."""
        flavor = self.store.get("flavor", flavor_id)
        network = self.store.get("network", network_id)
        if flavor is None or network is None or self.store.get("image", image_id) is None:
            raise ValueError("unknown flavor, image or network")
        net = self.cloud.network
        sg = net.ensure_default_sg(project_id)
        hosts = sorted(h["id"] for h in self.store.values("host"))
        base = now()
        ids = []
        counters = self.store.get("meta", "nova") or {"id": "nova", "instance_seq": 0}
        for number in range(count):
            moment = base + number * 1e-6
            server_id = new_id()
            counters["instance_seq"] += 1
            host = hosts[number % len(hosts)]
            stopped = status == "SHUTOFF"
            port = net.create_port_record(
                network=network,
                project_id=project_id,
                device_id=server_id,
                device_owner="compute:nova",
                security_groups=[sg["id"]],
                status="ACTIVE",
                host=host,
            )
            name = f"{name_prefix}-{number + 1:04d}"
            self.store.put(
                "server",
                {
                    "id": server_id,
                    "name": name,
                    "project_id": project_id,
                    "user_id": user_id,
                    "image_id": image_id,
                    "flavor": {
                        k: flavor[k]
                        for k in (
                            "id",
                            "name",
                            "vcpus",
                            "ram",
                            "disk",
                            "ephemeral",
                            "swap",
                            "extra_specs",
                        )
                    },
                    "metadata": dict(metadata),
                    "key_name": None,
                    "availability_zone": "nova",
                    "host": host,
                    "created_at": moment,
                    "updated_at": moment,
                    "launched_at": moment,
                    "terminated_at": None,
                    "vm_state": "stopped" if stopped else "active",
                    "task_state": None,
                    "power_state": POWER_SHUTDOWN if stopped else POWER_RUNNING,
                    "fault": None,
                    "locked": False,
                    "locked_reason": None,
                    "description": None,
                    "tags": [],
                    "security_groups": ["default"],
                    "instance_name": f"instance-{counters['instance_seq']:08x}",
                    "hostname": name.lower(),
                    "reservation_id": "r-" + secrets.token_hex(4),
                    "user_data": None,
                    "config_drive": "",
                    "ports": [{"id": port["id"], "created": True}],
                    "pinned_az": None,
                    "build_failure": None,
                    "pending": None,
                },
            )
            ids.append(server_id)
        self.store.put("meta", counters)
        return ids
