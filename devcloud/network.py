"""Neutron v2.0: networks, subnets, ports, routers, floating IPs, security groups, quotas."""

from __future__ import annotations

import ipaddress
import itertools
import json
import random
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from devcloud.core import (
    FALSE_WORDS,
    ApiError,
    Request,
    Response,
    Router,
    Service,
    iso_z,
    neutron_error,
    new_id,
    now,
)

if TYPE_CHECKING:
    from devcloud.app import Cloud

Doc = dict[str, Any]

QUOTA_DEFAULTS = {
    "network": 100,
    "subnet": 100,
    "port": 500,
    "router": 10,
    "floatingip": 50,
    "security_group": 10,
    "security_group_rule": 100,
    "rbac_policy": 10,
    "subnetpool": -1,
}
# Where each quota's usage lives in the store.
QUOTA_KINDS = {
    "network": "network",
    "subnet": "subnet",
    "port": "port",
    "router": "router",
    "floatingip": "floatingip",
    "security_group": "security_group",
}
EXTENSIONS = (
    ("router", "Neutron L3 Router", "Router abstraction for basic L3 forwarding"),
    ("external-net", "Neutron external network", "Adds external network attribute"),
    ("security-group", "security-group", "The security groups extension."),
    ("quotas", "Quota management support", "Expose functions for quotas management"),
    ("quota_details", "Quota details management support", "Expose functions for quota usage"),
    ("binding", "Port Binding", "Expose port bindings of a virtual port"),
    ("standard-attr-description", "standard-attr-description", "Extension to add descriptions"),
    ("standard-attr-timestamp", "Resource timestamps", "Adds created_at and updated_at fields"),
    ("standard-attr-revisions", "Resource revision numbers", "Adds revision_number"),
    ("standard-attr-tag", "Tag support for resources", "Enables to set tag on resources"),
    ("project-id", "project_id field enabled", "Extension that indicates project_id is enabled"),
    ("port-security", "Port Security", "Provides port security"),
    ("provider", "Provider Network", "Expose mapping of virtual networks to physical networks"),
    ("ext-gw-mode", "Neutron L3 Configurable external gateway mode", "Extension of the router"),
    ("net-mtu", "Network MTU", "Provides MTU attribute for a network resource."),
    ("availability_zone", "Availability Zone", "The availability zone extension."),
    ("empty-string-filtering", "Empty String Filtering Extension", "Allow filtering by empty"),
    ("network-ip-availability", "Network IP Availability", "Provides IP availability data"),
)
OWNER_ROUTER_INTERFACE = "network:router_interface"
OWNER_ROUTER_GATEWAY = "network:router_gateway"
OWNER_FLOATINGIP = "network:floatingip"
# Floating addresses Nova still lists for a port after their release (see _nova_forgets_later).
STALE_ADDRESS = "nova_stale_address"
PAGING_KEYS = {"fields", "limit", "marker", "sort_key", "sort_dir", "page_reverse"}


def _err(status: int, kind: str, message: str) -> ApiError:
    return neutron_error(status, kind, message)


def _bad(message: str) -> ApiError:
    return _err(400, "HTTPBadRequest", message)


def _mac() -> str:
    return "fa:16:3e:" + ":".join(f"{random.randint(0, 255):02x}" for _ in range(3))


def _matches(value: Any, wanted: list[str]) -> bool:
    if isinstance(value, bool):
        return any((w.lower() not in FALSE_WORDS) == value for w in wanted)
    if isinstance(value, list):
        return any(str(v) in wanted for v in value)
    return ("" if value is None else str(value)) in wanted


class Network(Service):
    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.store = cloud.store
        self._used: dict[str, set[str]] = {}
        self._next_ip: dict[str, int] = {}
        r = self.router = Router()
        r.add("GET", "", self.versions, public=True)
        r.add("GET", "/v2.0", self.resources)
        r.add("GET", "/v2.0/extensions", self.list_extensions)
        r.add("GET", "/v2.0/extensions/(?P<alias>[^/]+)", self.get_extension)
        self._crud(
            "networks", "network", self.create_network, self.update_network, self.delete_network
        )
        self._crud("subnets", "subnet", self.create_subnet, self.update_subnet, self.delete_subnet)
        self._crud("ports", "port", self.create_port, self.update_port, self.delete_port)
        self._crud("routers", "router", self.create_router, self.update_router, self.delete_router)
        self._crud("floatingips", "floatingip", self.create_fip, self.update_fip, self.delete_fip)
        self._crud(
            "security-groups", "security_group", self.create_sg, self.update_sg, self.delete_sg
        )
        self._crud(
            "security-group-rules",
            "security_group_rule",
            self.create_rule,
            None,
            self.delete_rule,
        )
        r.add("PUT", "/v2.0/routers/(?P<id>[^/]+)/add_router_interface", self.add_router_interface)
        r.add(
            "PUT",
            "/v2.0/routers/(?P<id>[^/]+)/remove_router_interface",
            self.remove_router_interface,
        )
        r.add("GET", "/v2.0/quotas", self.list_quotas)
        r.add("GET", "/v2.0/quotas/(?P<project_id>[^/]+)", self.get_quota)
        r.add("GET", "/v2.0/quotas/(?P<project_id>[^/]+)/details", self.get_quota_details)
        r.add("GET", "/v2.0/quotas/(?P<project_id>[^/]+)/default", self.get_quota_default)
        r.add("PUT", "/v2.0/quotas/(?P<project_id>[^/]+)", self.put_quota)
        r.add("DELETE", "/v2.0/quotas/(?P<project_id>[^/]+)", self.delete_quota)
        r.add("GET", "/v2.0/availability_zones", self.list_azs)
        r.add("GET", "/v2.0/network-ip-availabilities", self.list_ip_availabilities)
        r.add("GET", "/v2.0/network-ip-availabilities/(?P<id>[^/]+)", self.show_ip_availability)

    def _crud(
        self,
        collection: str,
        kind: str,
        create: Callable[[Request], Response],
        update: Callable[[Request], Response] | None,
        delete: Callable[[Request], Response],
    ) -> None:
        base = f"/v2.0/{collection}"
        self.router.add("GET", base, lambda req: self._list(req, kind, collection))
        self.router.add("POST", base, create)
        self.router.add("GET", base + "/(?P<id>[^/]+)", lambda req: self._show(req, kind))
        if update is not None:
            self.router.add("PUT", base + "/(?P<id>[^/]+)", update)
        self.router.add("DELETE", base + "/(?P<id>[^/]+)", delete)

    # ---- discovery ---------------------------------------------------------------------------

    def versions(self, req: Request) -> Response:
        link = {"rel": "self", "href": f"{req.base_url}/networking/v2.0/"}
        return Response(200, {"versions": [{"id": "v2.0", "status": "CURRENT", "links": [link]}]})

    def resources(self, req: Request) -> Response:
        names = ("network", "subnet", "port", "router", "floatingip", "security_group")
        resources = [
            {
                "name": name,
                "collection": name + "s",
                "links": [{"rel": "self", "href": f"{req.base_url}/networking/v2.0/{name}s"}],
            }
            for name in names
        ]
        return Response(200, {"resources": resources})

    def list_extensions(self, req: Request) -> Response:
        return Response(200, {"extensions": [self._ext(e) for e in EXTENSIONS]})

    def get_extension(self, req: Request) -> Response:
        for ext in EXTENSIONS:
            if ext[0] == req.params["alias"]:
                return Response(200, {"extension": self._ext(ext)})
        raise _err(
            404, "HTTPNotFound", f"Extension with alias {req.params['alias']} does not exist"
        )

    @staticmethod
    def _ext(ext: tuple[str, str, str]) -> Doc:
        alias, name, description = ext
        return {
            "alias": alias,
            "name": name,
            "description": description,
            "updated": "2013-01-20T00:00:00-00:00",
            "links": [],
        }

    # ---- generic list/show -------------------------------------------------------------------

    def _visible(self, req: Request, kind: str, doc: Doc) -> bool:
        token = req.token
        if token.is_admin:
            return True
        if doc.get("project_id") == token.project_id:
            return True
        if kind == "network":
            return bool(doc.get("shared") or doc.get("router:external"))
        if kind == "subnet":
            network = self.store.get("network", doc["network_id"]) or {}
            return bool(network.get("shared"))
        return False

    def _get(self, req: Request, kind: str, doc_id: str) -> Doc:
        doc = self.store.get(kind, doc_id)
        if doc is None or not self._visible(req, kind, doc):
            raise self._not_found(kind, doc_id)
        return doc

    @staticmethod
    def _not_found(kind: str, doc_id: str) -> ApiError:
        messages = {
            "network": ("NetworkNotFound", f"Network {doc_id} could not be found."),
            "subnet": ("SubnetNotFound", f"Subnet {doc_id} could not be found."),
            "port": ("PortNotFound", f"Port {doc_id} could not be found."),
            "router": ("RouterNotFound", f"Router {doc_id} could not be found."),
            "floatingip": ("FloatingIPNotFound", f"Floating IP {doc_id} could not be found"),
            "security_group": ("SecurityGroupNotFound", f"Security group {doc_id} does not exist"),
            "security_group_rule": (
                "SecurityGroupRuleNotFound",
                f"Security group rule {doc_id} does not exist",
            ),
        }
        kind_name, message = messages[kind]
        return _err(404, kind_name, message)

    def view(self, req: Request, kind: str, doc: Doc) -> Doc:
        out = {k: v for k, v in doc.items() if not k.startswith("_")}
        out["tenant_id"] = doc.get("project_id")
        for key in ("created_at", "updated_at"):
            if isinstance(out.get(key), float):
                out[key] = iso_z(out[key])
        if kind == "network":
            if not req.token.is_admin:
                out = {k: v for k, v in out.items() if not k.startswith("provider:")}
        elif kind == "port":
            if not req.token.is_admin:
                out = {k: v for k, v in out.items() if not k.startswith("binding:")}
        elif kind == "floatingip":
            out["status"] = self._fip_status(doc)
            out["port_details"] = self._port_details(doc)
        elif kind == "router":
            out["interfaces_info"] = [
                {
                    "port_id": p["id"],
                    "subnet_id": p["fixed_ips"][0]["subnet_id"],
                    "ip_address": p["fixed_ips"][0]["ip_address"],
                }
                for p in self.store.values("port")
                if p["device_id"] == doc["id"] and p["device_owner"] == OWNER_ROUTER_INTERFACE
            ]
            if not req.token.is_admin:
                out.pop("interfaces_info")
        elif kind == "security_group":
            out["security_group_rules"] = [
                self.view(req, "security_group_rule", rule)
                for rule in self.store.values("security_group_rule")
                if rule["security_group_id"] == doc["id"]
            ]
        return out

    def _fields(self, req: Request, view: Doc) -> Doc:
        fields = req.q_all("fields")
        if not fields:
            return view
        return {k: v for k, v in view.items() if k in fields}

    def _list(self, req: Request, kind: str, collection: str) -> Response:
        if kind == "security_group":
            # Neutron creates a project's default group the first time anyone lists groups.
            self.ensure_default_sg(
                req.q("project_id") or req.q("tenant_id") or req.token.project_id
            )
        docs = [d for d in self.store.values(kind) if self._visible(req, kind, d)]
        computed: list[tuple[str, list[str]]] = []
        # Filter the stored documents first and build views only for what is left: a port
        # list by device_id stays cheap with thousands of ports.
        for key, wanted in req.query.items():
            if key in PAGING_KEYS:
                continue
            if key == "tenant_id":
                key = "project_id"
            if key == "fixed_ips" and kind == "port":
                docs = [d for d in docs if self._fixed_ip_filter(d, wanted)]
            elif kind == "port" and key in ("ip_address", "subnet_id"):
                docs = [d for d in docs if any(ip[key] in wanted for ip in d["fixed_ips"])]
            elif kind == "floatingip" and key == "status":
                computed.append((key, wanted))
            elif docs and key in docs[0]:
                docs = [d for d in docs if _matches(d.get(key), wanted)]
            # Other keys are ignored, as Neutron does without strict filter validation.
        views = [self.view(req, kind, d) for d in docs]
        for key, wanted in computed:
            views = [v for v in views if _matches(v.get(key), wanted)]
        sort_key = req.q("sort_key")
        if sort_key:
            reverse = (req.q("sort_dir") or "asc").lower() == "desc"
            views.sort(key=lambda v: str(v.get(sort_key, "")), reverse=reverse)
        body: Doc = {}
        limit_text = req.q("limit")
        marker = req.q("marker")
        if limit_text is not None or marker:
            try:
                limit = int(limit_text) if limit_text is not None else None
            except ValueError as exc:
                raise _bad(
                    "Bad limit request: Limit must be an integer 0 or greater and not "
                    f"'{limit_text}'."
                ) from exc
            start = 0
            if marker:
                ids = [v["id"] for v in views]
                if marker not in ids:
                    raise self._not_found(kind, marker)
                start = ids.index(marker) + 1
            rest = views[start:]
            chunk = rest if not limit else rest[:limit]
            links = []
            base = f"{req.base_url}/networking/v2.0/{collection}"
            if limit and len(rest) > limit and chunk:
                links.append(
                    {"rel": "next", "href": f"{base}?limit={limit}&marker={chunk[-1]['id']}"}
                )
            if start and chunk:
                links.append(
                    {
                        "rel": "previous",
                        "href": f"{base}?limit={limit or ''}&marker={chunk[0]['id']}"
                        "&page_reverse=True",
                    }
                )
            views = chunk
            if links:
                body[f"{kind}s_links" if kind != "security_group" else "security_groups_links"] = (
                    links
                )
        body[collection.replace("-", "_")] = [self._fields(req, v) for v in views]
        return Response(200, body)

    @staticmethod
    def _fixed_ip_filter(view: Doc, wanted: list[str]) -> bool:
        for condition in wanted:
            key, _, value = condition.partition("=")
            if not any(ip.get(key) == value for ip in view["fixed_ips"]):
                return False
        return True

    def _show(self, req: Request, kind: str) -> Response:
        doc = self._get(req, kind, req.params["id"])
        return Response(200, {kind: self._fields(req, self.view(req, kind, doc))})

    # ---- body helpers ------------------------------------------------------------------------

    def _body(
        self, req: Request, kind: str, allowed: Iterable[str], required: Iterable[str] = ()
    ) -> Doc:
        try:
            body = json.loads(req.body or b"null")
        except ValueError as exc:
            raise _bad("Malformed request body") from exc
        if not isinstance(body, dict) or not isinstance(body.get(kind), dict):
            raise _bad(f"Failed to parse request. Resource body required: '{kind}'")
        section: Doc = body[kind]
        unknown = sorted(
            set(section) - set(allowed) - {"project_id", "tenant_id", "description", "tags"}
        )
        if unknown:
            raise _bad(f"Unrecognized attribute(s) '{', '.join(unknown)}'")
        for key in required:
            if key not in section:
                raise _bad(f"Failed to parse request. Required attribute '{key}' not specified")
        return section

    def _owner(self, req: Request, section: Doc) -> str:
        owner = section.get("project_id") or section.get("tenant_id") or req.token.project_id
        if owner != req.token.project_id and not req.token.is_admin:
            raise _err(
                403,
                "HTTPForbidden",
                "Specifying 'project_id' or 'tenant_id' other than the authenticated project in "
                "request requires admin privileges",
            )
        return str(owner)

    def _check_quota(self, project_id: str, resource: str, extra: int = 1) -> None:
        limit = self.quota_for(project_id)[resource]
        if limit < 0:
            return
        used = sum(
            1 for d in self.store.values(QUOTA_KINDS[resource]) if d.get("project_id") == project_id
        )
        if used + extra > limit:
            raise _err(409, "OverQuota", f"Quota exceeded for resources: ['{resource}'].")

    def _admin_only(self, req: Request, rule: str) -> None:
        if not req.token.is_admin:
            raise _err(403, "PolicyNotAuthorized", f"({rule}) is disallowed by policy")

    def _member(self, req: Request, rule: str) -> None:
        if not req.token.is_member:
            raise _err(403, "PolicyNotAuthorized", f"rule:{rule} is disallowed by policy")

    @staticmethod
    def _stamp(doc: Doc, *, new: bool = False) -> Doc:
        moment = now()
        if new:
            doc["created_at"] = moment
            doc["revision_number"] = 0
        else:
            doc["revision_number"] = doc.get("revision_number", 0) + 1
        doc["updated_at"] = moment
        return doc

    # ---- networks ----------------------------------------------------------------------------

    def create_network_record(
        self,
        *,
        project_id: str,
        name: str,
        shared: bool = False,
        external: bool = False,
        network_type: str = "geneve",
        admin_state_up: bool = True,
        description: str = "",
        port_security: bool = True,
        mtu: int | None = None,
    ) -> Doc:
        doc: Doc = {
            "id": new_id(),
            "name": name,
            "status": "ACTIVE",
            "admin_state_up": admin_state_up,
            "shared": shared,
            "router:external": external,
            "subnets": [],
            "project_id": project_id,
            "mtu": mtu or (1500 if network_type == "flat" else 1442),
            "availability_zones": ["nova"],
            "availability_zone_hints": [],
            "port_security_enabled": port_security,
            "is_default": external,
            "description": description,
            "tags": [],
            "ipv4_address_scope": None,
            "ipv6_address_scope": None,
            "provider:network_type": network_type,
            "provider:physical_network": "public" if network_type == "flat" else None,
            "provider:segmentation_id": None
            if network_type == "flat"
            else random.randint(1, 65000),
        }
        self._stamp(doc, new=True)
        return self.store.put("network", doc)

    def create_network(self, req: Request) -> Response:
        self._member(req, "create_network")
        section = self._body(
            req,
            "network",
            (
                "name",
                "admin_state_up",
                "shared",
                "router:external",
                "port_security_enabled",
                "mtu",
                "provider:network_type",
                "provider:physical_network",
                "provider:segmentation_id",
                "availability_zone_hints",
                "dns_domain",
                "qos_policy_id",
                "is_default",
            ),
        )
        if section.get("shared"):
            self._admin_only(req, "rule:create_network:shared")
        if section.get("router:external"):
            self._admin_only(req, "rule:create_network:router:external")
        if any(k.startswith("provider:") for k in section):
            self._admin_only(req, "rule:create_network:provider:network_type")
        owner = self._owner(req, section)
        self._check_quota(owner, "network")
        doc = self.create_network_record(
            project_id=owner,
            name=str(section.get("name", "")),
            shared=bool(section.get("shared", False)),
            external=bool(section.get("router:external", False)),
            network_type=str(section.get("provider:network_type") or "geneve"),
            admin_state_up=bool(section.get("admin_state_up", True)),
            description=str(section.get("description", "")),
            port_security=bool(section.get("port_security_enabled", True)),
            mtu=section.get("mtu"),
        )
        if section.get("tags"):
            doc["tags"] = list(section["tags"])
        return Response(201, {"network": self.view(req, "network", doc)})

    def update_network(self, req: Request) -> Response:
        doc = self._get(req, "network", req.params["id"])
        self._owns(req, doc, "update_network")
        section = self._body(
            req,
            "network",
            ("name", "admin_state_up", "shared", "router:external", "port_security_enabled", "mtu"),
        )
        if "shared" in section or "router:external" in section:
            self._admin_only(req, "rule:update_network:shared")
        for key, value in section.items():
            if key not in ("project_id", "tenant_id"):
                doc[key] = value
        self.store.put("network", self._stamp(doc))
        return Response(200, {"network": self.view(req, "network", doc)})

    def _owns(self, req: Request, doc: Doc, rule: str) -> None:
        if doc.get("project_id") != req.token.project_id and not req.token.is_admin:
            raise _err(403, "PolicyNotAuthorized", f"rule:{rule} is disallowed by policy")
        self._member(req, rule)

    def delete_network(self, req: Request) -> Response:
        doc = self._get(req, "network", req.params["id"])
        self._owns(req, doc, "delete_network")
        busy = [
            p
            for p in self.store.values("port")
            if p["network_id"] == doc["id"] and p["device_owner"] not in ("network:dhcp",)
        ]
        if busy:
            raise _err(
                409,
                "NetworkInUse",
                f"Unable to complete operation on network {doc['id']}. There are one or more "
                "ports still in use on the network.",
            )
        for subnet_id in doc["subnets"]:
            self.store.delete("subnet", subnet_id)
        self.store.delete("network", doc["id"])
        return Response(204)

    # ---- subnets -----------------------------------------------------------------------------

    def create_subnet_record(
        self,
        *,
        network: Doc,
        name: str,
        cidr: str,
        ip_version: int,
        enable_dhcp: bool = True,
        gateway_ip: str | bool | None = True,
        allocation_pools: list[Doc] | None = None,
        ipv6_mode: str | None = None,
        project_id: str | None = None,
        dns_nameservers: list[str] | None = None,
        description: str = "",
    ) -> Doc:
        net = ipaddress.ip_network(cidr)
        hosts = net.hosts() if net.version == 4 else iter(net)
        first = next(hosts)
        if net.version == 6 and first == net.network_address:
            first = first + 1
        gateway = str(first) if gateway_ip is True else (gateway_ip or None)
        if allocation_pools is None:
            last = net.broadcast_address - (1 if net.version == 4 else 0)
            start = ipaddress.ip_address(gateway) + 1 if gateway else first
            allocation_pools = [{"start": str(start), "end": str(last)}]
        doc: Doc = {
            "id": new_id(),
            "name": name,
            "network_id": network["id"],
            "ip_version": ip_version,
            "cidr": str(net),
            "gateway_ip": gateway,
            "allocation_pools": allocation_pools,
            "enable_dhcp": enable_dhcp,
            "dns_nameservers": dns_nameservers or [],
            "host_routes": [],
            "ipv6_ra_mode": ipv6_mode,
            "ipv6_address_mode": ipv6_mode,
            "subnetpool_id": None,
            "service_types": [],
            "segment_id": None,
            "dns_publish_fixed_ip": False,
            "project_id": project_id or network["project_id"],
            "description": description,
            "tags": [],
        }
        self._stamp(doc, new=True)
        network["subnets"].append(doc["id"])
        self.store.put("network", network)
        return self.store.put("subnet", doc)

    def create_subnet(self, req: Request) -> Response:
        self._member(req, "create_subnet")
        section = self._body(
            req,
            "subnet",
            (
                "name",
                "network_id",
                "cidr",
                "ip_version",
                "gateway_ip",
                "allocation_pools",
                "enable_dhcp",
                "dns_nameservers",
                "host_routes",
                "ipv6_ra_mode",
                "ipv6_address_mode",
                "subnetpool_id",
                "prefixlen",
                "segment_id",
                "service_types",
                "dns_publish_fixed_ip",
                "use_default_subnetpool",
            ),
            ("network_id", "ip_version"),
        )
        network = self._get(req, "network", str(section["network_id"]))
        if network["project_id"] != req.token.project_id and not req.token.is_admin:
            raise _err(403, "PolicyNotAuthorized", "rule:create_subnet is disallowed by policy")
        if "cidr" not in section:
            raise _bad(
                "Bad subnet request: a subnetpool must be specified in the absence of a cidr."
            )
        ip_version = section["ip_version"]
        if ip_version not in (4, 6, "4", "6"):
            raise _bad(
                f"Invalid input for ip_version. Reason: {ip_version} is not in valid_values."
            )
        cidr = str(section["cidr"])
        try:
            net = ipaddress.ip_network(cidr)
        except ValueError as exc:
            raise _bad(
                f"Invalid input for cidr. Reason: '{cidr}' is not a valid IP subnet."
            ) from exc
        if net.version != int(ip_version):
            raise _bad("Invalid input for operation: cidr and ip_version must match.")
        for other_id in network["subnets"]:
            other = self.store.get("subnet", other_id)
            if (
                other
                and ipaddress.ip_network(other["cidr"]).version == net.version
                and ipaddress.ip_network(other["cidr"]).overlaps(net)
            ):
                raise _bad(
                    f"Invalid input for operation: Requested subnet with cidr: {net} for network: "
                    f"{network['id']} overlaps with another subnet."
                )
        owner = self._owner(req, section)
        self._check_quota(owner, "subnet")
        gateway: str | bool | None = True
        if "gateway_ip" in section:
            gateway = section["gateway_ip"]
            if gateway is not None:
                try:
                    if ipaddress.ip_address(gateway) not in net:
                        raise _bad(
                            f"Invalid input for operation: Gateway IP {gateway} conflicts with "
                            "allocation pool or is outside the subnet."
                        )
                except ValueError as exc:
                    raise _bad(
                        f"Invalid input for gateway_ip. Reason: '{gateway}' is not a valid IP "
                        "address."
                    ) from exc
        doc = self.create_subnet_record(
            network=network,
            name=str(section.get("name", "")),
            cidr=str(net),
            ip_version=int(ip_version),
            enable_dhcp=bool(section.get("enable_dhcp", True)),
            gateway_ip=gateway,
            allocation_pools=section.get("allocation_pools"),
            ipv6_mode=section.get("ipv6_address_mode"),
            project_id=owner,
            dns_nameservers=section.get("dns_nameservers"),
            description=str(section.get("description", "")),
        )
        return Response(201, {"subnet": self.view(req, "subnet", doc)})

    def update_subnet(self, req: Request) -> Response:
        doc = self._get(req, "subnet", req.params["id"])
        self._owns(req, doc, "update_subnet")
        section = self._body(
            req,
            "subnet",
            (
                "name",
                "enable_dhcp",
                "dns_nameservers",
                "host_routes",
                "gateway_ip",
                "allocation_pools",
            ),
        )
        doc.update({k: v for k, v in section.items() if k not in ("project_id", "tenant_id")})
        self.store.put("subnet", self._stamp(doc))
        return Response(200, {"subnet": self.view(req, "subnet", doc)})

    def delete_subnet(self, req: Request) -> Response:
        doc = self._get(req, "subnet", req.params["id"])
        self._owns(req, doc, "delete_subnet")
        if any(
            ip["subnet_id"] == doc["id"] for p in self.store.values("port") for ip in p["fixed_ips"]
        ):
            raise _err(
                409,
                "SubnetInUse",
                f"Unable to complete operation on subnet {doc['id']}: One or more ports have an "
                "IP allocation from this subnet.",
            )
        network = self.store.get("network", doc["network_id"])
        if network:
            network["subnets"] = [s for s in network["subnets"] if s != doc["id"]]
            self.store.put("network", self._stamp(network))
        self.store.delete("subnet", doc["id"])
        return Response(204)

    # ---- network IP availability (admin only, like Neutron's default policy) ------------------

    def _pool_size(self, subnet: Doc) -> int:
        kind = ipaddress.IPv4Address if subnet["ip_version"] == 4 else ipaddress.IPv6Address
        return sum(
            int(kind(pool["end"])) - int(kind(pool["start"])) + 1
            for pool in subnet["allocation_pools"]
        )

    def ip_availability_view(self, network: Doc) -> Doc:
        """Neutron's numbers: allocation-pool sizes, and every allocated address as used."""
        subnets = []
        for subnet_id in network["subnets"]:
            subnet = self.store.get("subnet", subnet_id)
            if subnet is None:
                continue
            subnets.append(
                {
                    "subnet_id": subnet["id"],
                    "subnet_name": subnet["name"],
                    "cidr": subnet["cidr"],
                    "ip_version": subnet["ip_version"],
                    "total_ips": self._pool_size(subnet),
                    "used_ips": len(self.used_ips(subnet["id"])),
                }
            )
        return {
            "network_id": network["id"],
            "network_name": network["name"],
            "project_id": network["project_id"],
            "tenant_id": network["project_id"],
            "total_ips": sum(s["total_ips"] for s in subnets),
            "used_ips": sum(s["used_ips"] for s in subnets),
            "subnet_ip_availability": subnets,
        }

    def list_ip_availabilities(self, req: Request) -> Response:
        self._admin_only(req, "get_network_ip_availability")
        networks = sorted(self.store.values("network"), key=lambda n: n["created_at"])
        for key in ("network_id", "network_name", "project_id", "tenant_id"):
            wanted = req.q_all(key)
            if wanted:
                field = {"network_id": "id", "network_name": "name", "tenant_id": "project_id"}
                networks = [n for n in networks if str(n.get(field.get(key, key))) in wanted]
        views = [self.ip_availability_view(n) for n in networks]
        versions = req.q_all("ip_version")
        if versions:
            for view in views:
                view["subnet_ip_availability"] = [
                    s for s in view["subnet_ip_availability"] if str(s["ip_version"]) in versions
                ]
        return Response(200, {"network_ip_availabilities": views})

    def show_ip_availability(self, req: Request) -> Response:
        self._admin_only(req, "get_network_ip_availability")
        network = self.store.get("network", req.params["id"])
        if network is None:
            raise _err(404, "NetworkNotFound", f"Network {req.params['id']} could not be found.")
        return Response(200, {"network_ip_availability": self.ip_availability_view(network)})

    # ---- IP allocation -----------------------------------------------------------------------

    def used_ips(self, subnet_id: str) -> set[str]:
        """Addresses taken in a subnet (a cache kept in step with port creation and deletion)."""
        taken = self._used.get(subnet_id)
        if taken is None:
            taken = {
                ip["ip_address"]
                for p in self.store.values("port")
                for ip in p["fixed_ips"]
                if ip["subnet_id"] == subnet_id
            }
            self._used[subnet_id] = taken
        return taken

    def delete_port_record(self, port: Doc) -> None:
        for ip in port["fixed_ips"]:
            self._used.get(ip["subnet_id"], set()).discard(ip["ip_address"])
        self.store.delete("port", port["id"])

    def allocate_ip(self, subnet: Doc, used: set[str] | None = None) -> str | None:
        taken = used if used is not None else self.used_ips(subnet["id"])
        kind = ipaddress.IPv4Address if subnet["ip_version"] == 4 else ipaddress.IPv6Address
        # Resume after the last address handed out, then wrap around to reuse freed ones.
        hint = self._next_ip.get(subnet["id"], 0)
        for pool in subnet["allocation_pools"]:
            first, last = int(kind(pool["start"])), int(kind(pool["end"]))
            start = hint if first <= hint <= last else first
            for number in itertools.chain(range(start, last + 1), range(first, start)):
                text = str(kind(number))
                if text not in taken and text != subnet.get("gateway_ip"):
                    taken.add(text)
                    self._next_ip[subnet["id"]] = number + 1
                    return text
        return None

    def subnet_for_ip(self, network: Doc, address: str) -> Doc | None:
        """The subnet of `network` whose CIDR holds `address`."""
        try:
            wanted = ipaddress.ip_address(address)
        except ValueError:
            return None
        for subnet_id in network["subnets"]:
            subnet = self.store.get("subnet", subnet_id)
            if subnet and wanted in ipaddress.ip_network(subnet["cidr"]):
                return subnet
        return None

    # ---- ports -------------------------------------------------------------------------------

    def create_port_record(
        self,
        *,
        network: Doc,
        project_id: str,
        device_id: str = "",
        device_owner: str = "",
        name: str = "",
        fixed_ips: list[Doc] | None = None,
        security_groups: list[str] | None = None,
        status: str = "DOWN",
        host: str = "",
    ) -> Doc:
        """A port with one address from each subnet of its network (or the requested ones).

        Raises the Neutron error when a subnet is full.
        """
        if fixed_ips is None:
            fixed_ips = []
            for subnet_id in network["subnets"]:
                subnet = self.store.get("subnet", subnet_id)
                if subnet is None:
                    continue
                address = self.allocate_ip(subnet)
                if address is None:
                    raise _err(
                        409,
                        "IpAddressGenerationFailure",
                        f"No more IP addresses available on network {network['id']}.",
                    )
                fixed_ips.append({"subnet_id": subnet_id, "ip_address": address})
        for ip in fixed_ips:
            self.used_ips(ip["subnet_id"]).add(ip["ip_address"])
        if security_groups is None:
            security_groups = []
            plain = device_owner == "" or device_owner.startswith("compute:")
            if network.get("port_security_enabled", True) and plain:
                security_groups = [self.ensure_default_sg(project_id)["id"]]
        doc: Doc = {
            "id": new_id(),
            "name": name,
            "network_id": network["id"],
            "mac_address": _mac(),
            "fixed_ips": fixed_ips,
            "device_id": device_id,
            "device_owner": device_owner,
            "status": status,
            "admin_state_up": True,
            "security_groups": security_groups,
            "port_security_enabled": network.get("port_security_enabled", True),
            "allowed_address_pairs": [],
            "extra_dhcp_opts": [],
            "project_id": project_id,
            "description": "",
            "tags": [],
            "binding:host_id": host,
            "binding:vif_type": "ovs" if host else "unbound",
            "binding:vnic_type": "normal",
            "binding:profile": {},
            "binding:vif_details": {},
        }
        self._stamp(doc, new=True)
        return self.store.put("port", doc)

    def create_port(self, req: Request) -> Response:
        self._member(req, "create_port")
        section = self._body(
            req,
            "port",
            (
                "name",
                "network_id",
                "fixed_ips",
                "device_id",
                "device_owner",
                "admin_state_up",
                "security_groups",
                "mac_address",
                "port_security_enabled",
                "allowed_address_pairs",
                "binding:host_id",
                "binding:vnic_type",
                "binding:profile",
                "dns_name",
                "extra_dhcp_opts",
            ),
            ("network_id",),
        )
        network = self._get(req, "network", str(section["network_id"]))
        owner = self._owner(req, section)
        if network["project_id"] != owner and not network.get("shared") and not req.token.is_admin:
            raise self._not_found("network", network["id"])
        self._check_quota(owner, "port")
        fixed_ips = None
        if section.get("fixed_ips"):
            fixed_ips = []
            for entry in section["fixed_ips"]:
                subnet_id = entry.get("subnet_id")
                if subnet_id is None and entry.get("ip_address"):
                    holder = self.subnet_for_ip(network, str(entry["ip_address"]))
                    subnet_id = holder["id"] if holder else None
                if subnet_id not in network["subnets"]:
                    raise _bad(
                        "Invalid input for operation: IP allocation requires subnets for network "
                        f"{network['id']}."
                    )
                subnet = self.store.get("subnet", subnet_id)
                assert subnet is not None
                address = entry.get("ip_address")
                if address:
                    if address in self.used_ips(subnet_id):
                        raise _err(
                            409,
                            "IpAddressAlreadyAllocated",
                            f"IP address {address} already allocated in subnet {subnet_id}",
                        )
                else:
                    address = self.allocate_ip(subnet)
                fixed_ips.append({"subnet_id": subnet_id, "ip_address": address})
        security_groups = section.get("security_groups")
        if security_groups is not None:
            for sg_id in security_groups:
                self._get(req, "security_group", sg_id)
        doc = self.create_port_record(
            network=network,
            project_id=owner,
            device_id=str(section.get("device_id", "")),
            device_owner=str(section.get("device_owner", "")),
            name=str(section.get("name", "")),
            fixed_ips=fixed_ips,
            security_groups=security_groups,
        )
        if "mac_address" in section:
            doc["mac_address"] = section["mac_address"]
        doc["description"] = str(section.get("description", ""))
        return Response(201, {"port": self.view(req, "port", doc)})

    def update_port(self, req: Request) -> Response:
        doc = self._get(req, "port", req.params["id"])
        self._owns(req, doc, "update_port")
        section = self._body(
            req,
            "port",
            (
                "name",
                "admin_state_up",
                "security_groups",
                "device_id",
                "device_owner",
                "port_security_enabled",
                "allowed_address_pairs",
                "binding:host_id",
            ),
        )
        doc.update({k: v for k, v in section.items() if k not in ("project_id", "tenant_id")})
        self.store.put("port", self._stamp(doc))
        return Response(200, {"port": self.view(req, "port", doc)})

    def delete_port(self, req: Request) -> Response:
        doc = self._get(req, "port", req.params["id"])
        self._owns(req, doc, "delete_port")
        if doc["device_owner"] == OWNER_ROUTER_INTERFACE:
            raise _err(
                409,
                "L3PortInUse",
                f"Port {doc['id']} has owner network:router_interface and therefore cannot be "
                "deleted directly via the port API.",
            )
        self.remove_port(doc)
        return Response(204)

    def remove_port(self, port: Doc) -> None:
        """Delete a port; floating IPs on it are disassociated but stay allocated."""
        for fip in self.store.values("floatingip"):
            if fip.get("port_id") == port["id"]:
                self._disassociate(fip)
        self.delete_port_record(port)

    def _disassociate(self, fip: Doc) -> None:
        self._nova_forgets_later(fip)
        fip.update(
            {"port_id": None, "fixed_ip_address": None, "router_id": None, "_active_after": None}
        )
        self.store.put("floatingip", self._stamp(fip))

    # ---- routers -----------------------------------------------------------------------------

    def create_router_record(self, *, project_id: str, name: str, description: str = "") -> Doc:
        doc: Doc = {
            "id": new_id(),
            "name": name,
            "status": "ACTIVE",
            "admin_state_up": True,
            "external_gateway_info": None,
            "routes": [],
            "project_id": project_id,
            "description": description,
            "distributed": False,
            "ha": False,
            "availability_zones": ["nova"],
            "availability_zone_hints": [],
            "flavor_id": None,
            "tags": [],
        }
        self._stamp(doc, new=True)
        return self.store.put("router", doc)

    def set_router_gateway(
        self, router: Doc, network_id: str | None, enable_snat: bool = True
    ) -> None:
        for port in self.store.values("port"):
            if port["device_id"] == router["id"] and port["device_owner"] == OWNER_ROUTER_GATEWAY:
                self.delete_port_record(port)
        if network_id is None:
            router["external_gateway_info"] = None
        else:
            network = self.store.get("network", network_id)
            assert network is not None
            port = self.create_port_record(
                network=network,
                project_id="",
                device_id=router["id"],
                device_owner=OWNER_ROUTER_GATEWAY,
                security_groups=[],
                status="ACTIVE",
                fixed_ips=self._first_v4(network),
            )
            router["external_gateway_info"] = {
                "network_id": network_id,
                "enable_snat": enable_snat,
                "external_fixed_ips": port["fixed_ips"],
            }
        self.store.put("router", self._stamp(router))

    def _first_v4(self, network: Doc) -> list[Doc]:
        for subnet_id in network["subnets"]:
            subnet = self.store.get("subnet", subnet_id)
            if subnet and subnet["ip_version"] == 4:
                address = self.allocate_ip(subnet)
                if address is None:
                    raise _err(
                        409,
                        "IpAddressGenerationFailure",
                        f"No more IP addresses available on network {network['id']}.",
                    )
                return [{"subnet_id": subnet_id, "ip_address": address}]
        raise _bad(f"Bad router request: Network {network['id']} has no IPv4 subnet.")

    def add_interface(self, router: Doc, subnet: Doc) -> Doc:
        network = self.store.get("network", subnet["network_id"])
        assert network is not None
        for port in self.store.values("port"):
            if port["device_id"] == router["id"] and any(
                ip["subnet_id"] == subnet["id"] for ip in port["fixed_ips"]
            ):
                raise _bad(
                    f"Bad router request: Router already has a port on subnet {subnet['id']}."
                )
        gateway = subnet.get("gateway_ip")
        if not gateway:
            raise _bad(f"Bad router request: Subnet {subnet['id']} does not have a gateway IP.")
        if gateway in self.used_ips(subnet["id"]):
            raise _err(
                409,
                "IpAddressInUse",
                f"Unable to complete operation for network {network['id']}. The IP address "
                f"{gateway} is in use.",
            )
        port = self.create_port_record(
            network=network,
            project_id=router["project_id"],
            device_id=router["id"],
            device_owner=OWNER_ROUTER_INTERFACE,
            fixed_ips=[{"subnet_id": subnet["id"], "ip_address": gateway}],
            security_groups=[],
            status="ACTIVE",
        )
        self.store.put("router", self._stamp(router))
        return port

    def _router_reply(self, router: Doc, port: Doc) -> Response:
        subnet_ids = [ip["subnet_id"] for ip in port["fixed_ips"]]
        return Response(
            200,
            {
                "id": router["id"],
                "subnet_id": subnet_ids[0] if subnet_ids else None,
                "subnet_ids": subnet_ids,
                "port_id": port["id"],
                "network_id": port["network_id"],
                "tenant_id": router["project_id"],
                "project_id": router["project_id"],
            },
        )

    def _gateway_body(self, req: Request, info: Any) -> str | None:
        if not info:
            return None
        if not isinstance(info, dict) or "network_id" not in info:
            raise _bad(
                "Invalid input for external_gateway_info. Reason: Validation of dictionary's "
                "keys failed. Expected keys: {'network_id'}."
            )
        network = self._get(req, "network", str(info["network_id"]))
        if not network.get("router:external"):
            raise _bad(f"Bad router request: Network {network['id']} is not an external network.")
        return str(network["id"])

    def create_router(self, req: Request) -> Response:
        self._member(req, "create_router")
        section = self._body(
            req,
            "router",
            (
                "name",
                "admin_state_up",
                "external_gateway_info",
                "distributed",
                "ha",
                "availability_zone_hints",
                "flavor_id",
            ),
        )
        owner = self._owner(req, section)
        gateway = self._gateway_body(req, section.get("external_gateway_info"))
        self._check_quota(owner, "router")
        router = self.create_router_record(
            project_id=owner,
            name=str(section.get("name", "")),
            description=str(section.get("description", "")),
        )
        if gateway:
            snat = (section.get("external_gateway_info") or {}).get("enable_snat", True)
            self.set_router_gateway(router, gateway, bool(snat))
        return Response(201, {"router": self.view(req, "router", router)})

    def update_router(self, req: Request) -> Response:
        router = self._get(req, "router", req.params["id"])
        self._owns(req, router, "update_router")
        section = self._body(
            req, "router", ("name", "admin_state_up", "external_gateway_info", "routes")
        )
        if "external_gateway_info" in section:
            gateway = self._gateway_body(req, section["external_gateway_info"])
            current = (router.get("external_gateway_info") or {}).get("network_id")
            if (
                current
                and gateway != current
                and any(f.get("router_id") == router["id"] for f in self.store.values("floatingip"))
            ):
                raise _err(
                    409,
                    "RouterExternalGatewayInUseByFloatingIp",
                    f"Gateway cannot be updated for router {router['id']}, since a gateway to "
                    f"external network {current} is required by one or more floating IPs.",
                )
            if gateway != current:
                self.set_router_gateway(router, gateway)
        for key in ("name", "admin_state_up", "routes", "description"):
            if key in section:
                router[key] = section[key]
        self.store.put("router", self._stamp(router))
        return Response(200, {"router": self.view(req, "router", router)})

    def delete_router(self, req: Request) -> Response:
        router = self._get(req, "router", req.params["id"])
        self._owns(req, router, "delete_router")
        if any(
            p["device_id"] == router["id"] and p["device_owner"] == OWNER_ROUTER_INTERFACE
            for p in self.store.values("port")
        ):
            raise _err(409, "RouterInUse", f"Router {router['id']} still has ports")
        self.set_router_gateway(router, None)
        self.store.delete("router", router["id"])
        return Response(204)

    def _interface_body(self, req: Request) -> Doc:
        try:
            body = json.loads(req.body or b"null")
        except ValueError as exc:
            raise _bad("Malformed request body") from exc
        if not isinstance(body, dict) or not ({"subnet_id", "port_id"} & set(body)):
            raise _bad("Bad router request: Either subnet_id or port_id must be specified.")
        if "subnet_id" in body and "port_id" in body:
            raise _bad("Bad router request: Cannot specify both subnet-id and port-id.")
        return body

    def add_router_interface(self, req: Request) -> Response:
        router = self._get(req, "router", req.params["id"])
        self._owns(req, router, "add_router_interface")
        body = self._interface_body(req)
        if "port_id" in body:
            port = self._get(req, "port", str(body["port_id"]))
            if port["device_id"]:
                raise _err(
                    409,
                    "PortInUse",
                    f"Unable to complete operation on port {port['id']} for network "
                    f"{port['network_id']}. Port already has an attached device "
                    f"{port['device_id']}.",
                )
            port.update(
                {
                    "device_id": router["id"],
                    "device_owner": OWNER_ROUTER_INTERFACE,
                    "status": "ACTIVE",
                }
            )
            self.store.put("port", self._stamp(port))
            return self._router_reply(router, port)
        subnet = self._get(req, "subnet", str(body["subnet_id"]))
        if subnet["project_id"] != router["project_id"] and not req.token.is_admin:
            network = self.store.get("network", subnet["network_id"]) or {}
            if not network.get("shared"):
                raise self._not_found("subnet", subnet["id"])
        port = self.add_interface(router, subnet)
        return self._router_reply(router, port)

    def remove_router_interface(self, req: Request) -> Response:
        router = self._get(req, "router", req.params["id"])
        self._owns(req, router, "remove_router_interface")
        body = self._interface_body(req)
        ports = [
            p
            for p in self.store.values("port")
            if p["device_id"] == router["id"] and p["device_owner"] == OWNER_ROUTER_INTERFACE
        ]
        if "port_id" in body:
            port = next((p for p in ports if p["id"] == body["port_id"]), None)
            if port is None:
                raise _err(
                    404,
                    "RouterInterfaceNotFound",
                    f"Router {router['id']} does not have an interface with id {body['port_id']}",
                )
        else:
            port = next(
                (
                    p
                    for p in ports
                    if any(ip["subnet_id"] == body["subnet_id"] for ip in p["fixed_ips"])
                ),
                None,
            )
            if port is None:
                raise _err(
                    404,
                    "RouterInterfaceNotFoundForSubnet",
                    f"Router {router['id']} has no interface on subnet {body['subnet_id']}",
                )
        subnet_ids = {ip["subnet_id"] for ip in port["fixed_ips"]}
        for fip in self.store.values("floatingip"):
            if fip.get("router_id") == router["id"] and fip.get("port_id"):
                served = self.store.get("port", fip["port_id"]) or {"fixed_ips": []}
                if any(ip["subnet_id"] in subnet_ids for ip in served["fixed_ips"]):
                    raise _err(
                        409,
                        "RouterInterfaceInUseByFloatingIP",
                        f"Router interface for subnet {next(iter(subnet_ids))} on router "
                        f"{router['id']} cannot be deleted, as it is required by one or more "
                        "floating IPs.",
                    )
        self.delete_port_record(port)
        self.store.put("router", self._stamp(router))
        return self._router_reply(router, port)

    # ---- floating IPs ------------------------------------------------------------------------

    def _fip_status(self, fip: Doc) -> str:
        # Created DOWN; the L3 agent makes an associated address ACTIVE a moment later.
        after = fip.get("_active_after")
        if fip.get("port_id") and after is not None and now() >= after:
            return "ACTIVE"
        return "DOWN"

    def _port_details(self, fip: Doc) -> Doc | None:
        port = self.store.get("port", fip["port_id"]) if fip.get("port_id") else None
        if port is None:
            return None
        return {
            "name": port["name"],
            "network_id": port["network_id"],
            "mac_address": port["mac_address"],
            "admin_state_up": port["admin_state_up"],
            "status": port["status"],
            "device_id": port["device_id"],
            "device_owner": port["device_owner"],
        }

    def _resolve_association(
        self,
        req: Request,
        fip_project: str,
        network: Doc,
        port_id: str,
        fixed_ip: str | None,
        fip: Doc | None,
    ) -> tuple[Doc, str, str]:
        """Neutron's checks before a floating IP may point at a port: (port, fixed IP, router)."""
        # Neutron looks the port up with an elevated context: someone else's port is a 400.
        port = self.store.get("port", port_id)
        if port is None:
            raise self._not_found("port", port_id)
        if port["project_id"] != fip_project and not req.token.is_admin:
            raise _bad(
                "Bad floatingip request: Cannot process floating IP association with Port "
                f"{port_id}, since that port is owned by a different project."
            )
        if port["device_owner"].startswith("network:"):
            raise _bad(
                f"Bad floatingip request: Port {port_id} is unable to be assigned a floating IP."
            )
        v4 = [ip for ip in port["fixed_ips"] if ipaddress.ip_address(ip["ip_address"]).version == 4]
        if fixed_ip is not None:
            match = next((ip for ip in v4 if ip["ip_address"] == fixed_ip), None)
            if match is None:
                raise _bad(
                    f"Bad floatingip request: Port {port_id} does not have fixed ip {fixed_ip}."
                )
        elif not v4:
            raise _bad(
                f"Bad floatingip request: Port {port_id} does not have any IPv4 address. A "
                "floating IP cannot be associated with it."
            )
        elif len(v4) > 1:
            raise _bad(
                f"Bad floatingip request: Port {port_id} has multiple fixed IPv4 addresses. Must "
                "provide a specific IPv4 address when assigning a floating IP."
            )
        else:
            match = v4[0]
        subnet_id = match["subnet_id"]
        router_id = None
        for router in self.store.values("router"):
            gw = router.get("external_gateway_info") or {}
            if gw.get("network_id") != network["id"]:
                continue
            if any(
                p["device_id"] == router["id"]
                and p["device_owner"] == OWNER_ROUTER_INTERFACE
                and any(ip["subnet_id"] == subnet_id for ip in p["fixed_ips"])
                for p in self.store.values("port")
            ):
                router_id = router["id"]
                break
        if router_id is None:
            raise _err(
                404,
                "ExternalGatewayForFloatingIPNotFound",
                f"External network {network['id']} is not reachable from subnet {subnet_id}.  "
                f"Therefore, cannot associate Port {port_id} with a Floating IP.",
            )
        for other in self.store.values("floatingip"):
            if fip is not None and other["id"] == fip["id"]:
                continue
            if (
                other.get("port_id") == port_id
                and other.get("fixed_ip_address") == match["ip_address"]
                and other["floating_network_id"] == network["id"]
            ):
                raise _err(
                    409,
                    "FloatingIPPortAlreadyAssociated",
                    f"Cannot associate floating IP {(fip or {}).get('floating_ip_address', '')} "
                    f"({(fip or {}).get('id', '')}) with port {port_id} using fixed IP "
                    f"{match['ip_address']}, as that fixed IP already has a floating IP on "
                    f"external network {network['id']}.",
                )
        return port, match["ip_address"], router_id

    def _associate(self, fip: Doc, assoc: tuple[Doc, str, str]) -> None:
        port, fixed, router_id = assoc
        if fip.get("port_id") != port["id"]:
            self._nova_forgets_later(fip)
            fip["_nova_after"] = now() + self.cloud.config.address_refresh_seconds
        fip.update(
            {
                "port_id": port["id"],
                "fixed_ip_address": fixed,
                "router_id": router_id,
                "_active_after": now() + min(self.cloud.config.build_seconds, 1.0) / 2,
            }
        )

    # Nova lists floating IPs in a server's addresses from its network info cache, which
    # Neutron's network-changed event refreshes about a second after every association
    # change: a new address appears late (fip["_nova_after"]) and a released one lingers.
    def _nova_forgets_later(self, fip: Doc) -> None:
        """Keep a released address in Nova's view of its port for the refresh delay."""
        port_id = fip.get("port_id")
        moment = now()
        if not port_id or moment < (fip.get("_nova_after") or 0.0):
            return  # Nova never showed it, so it has nothing to forget
        for stale in self.store.values(STALE_ADDRESS):
            if stale["until"] <= moment:
                self.store.delete(STALE_ADDRESS, stale["id"])
        self.store.put(
            STALE_ADDRESS,
            {
                "id": f"{fip['id']}:{port_id}",
                "port_id": port_id,
                "floating_ip_address": fip["floating_ip_address"],
                "until": moment + self.cloud.config.address_refresh_seconds,
            },
        )

    def create_fip(self, req: Request) -> Response:
        self._member(req, "create_floatingip")
        section = self._body(
            req,
            "floatingip",
            (
                "floating_network_id",
                "port_id",
                "fixed_ip_address",
                "floating_ip_address",
                "subnet_id",
                "dns_name",
                "dns_domain",
                "qos_policy_id",
            ),
            ("floating_network_id",),
        )
        network = self._get(req, "network", str(section["floating_network_id"]))
        if not network.get("router:external"):
            raise _bad(
                f"Bad floatingip request: Network {network['id']} is not a valid external network."
            )
        owner = self._owner(req, section)
        if section.get("fixed_ip_address") and not section.get("port_id"):
            raise _bad(
                "Bad floatingip request: fixed_ip_address cannot be specified without a port_id."
            )
        wanted = section.get("floating_ip_address")
        if wanted:
            self._admin_only(req, "rule:create_floatingip:floating_ip_address")
        self._check_quota(owner, "floatingip")
        assoc = None
        draft: Doc = {"id": new_id()}
        if section.get("port_id"):
            assoc = self._resolve_association(
                req, owner, network, str(section["port_id"]), section.get("fixed_ip_address"), None
            )
        subnet = next(
            (
                s
                for s in (self.store.get("subnet", i) for i in network["subnets"])
                if s and s["ip_version"] == 4
            ),
            None,
        )
        if subnet is None:
            raise _bad(
                f"Bad floatingip request: Network {network['id']} does not contain any IPv4 subnet."
            )
        if wanted:
            if wanted in self.used_ips(subnet["id"]):
                raise _err(
                    409,
                    "IpAddressAlreadyAllocated",
                    f"IP address {wanted} already allocated in subnet {subnet['id']}",
                )
            address = str(wanted)
        else:
            found = self.allocate_ip(subnet)
            if found is None:
                raise _err(
                    409,
                    "ExternalIpAddressExhausted",
                    f"Unable to find any IP address on external network {network['id']}.",
                )
            address = found
        self.create_port_record(
            network=network,
            project_id="",
            device_id=draft["id"],
            device_owner=OWNER_FLOATINGIP,
            fixed_ips=[{"subnet_id": subnet["id"], "ip_address": address}],
            security_groups=[],
            status="N/A",
        )
        fip: Doc = {
            "id": draft["id"],
            "floating_ip_address": address,
            "floating_network_id": network["id"],
            "fixed_ip_address": None,
            "port_id": None,
            "router_id": None,
            "project_id": owner,
            "description": str(section.get("description", "")),
            "dns_name": "",
            "dns_domain": "",
            "port_forwardings": [],
            "qos_policy_id": None,
            "qos_network_policy_id": None,
            "tags": [],
            "_active_after": None,
        }
        if assoc:
            self._associate(fip, assoc)
        self._stamp(fip, new=True)
        self.store.put("floatingip", fip)
        return Response(201, {"floatingip": self.view(req, "floatingip", fip)})

    def update_fip(self, req: Request) -> Response:
        fip = self._get(req, "floatingip", req.params["id"])
        self._owns(req, fip, "update_floatingip")
        section = self._body(req, "floatingip", ("port_id", "fixed_ip_address", "qos_policy_id"))
        # Only an explicit null (or an empty body) disassociates; other keys keep the port.
        if not section or ("port_id" in section and section["port_id"] is None):
            self._disassociate(fip)
        elif section.get("port_id"):
            network = self.store.get("network", fip["floating_network_id"])
            assert network is not None
            assoc = self._resolve_association(
                req,
                fip["project_id"],
                network,
                str(section["port_id"]),
                section.get("fixed_ip_address"),
                fip,
            )
            self._associate(fip, assoc)
        if "description" in section:
            fip["description"] = section["description"]
        self.store.put("floatingip", self._stamp(fip))
        return Response(200, {"floatingip": self.view(req, "floatingip", fip)})

    def delete_fip(self, req: Request) -> Response:
        fip = self._get(req, "floatingip", req.params["id"])
        self._owns(req, fip, "delete_floatingip")
        for port in self.store.values("port"):
            if port["device_id"] == fip["id"] and port["device_owner"] == OWNER_FLOATINGIP:
                self.delete_port_record(port)
        self._nova_forgets_later(fip)
        self.store.delete("floatingip", fip["id"])
        return Response(204)

    # ---- security groups ---------------------------------------------------------------------

    def _rule(
        self,
        sg_id: str,
        project_id: str,
        direction: str,
        ethertype: str,
        remote_group: str | None = None,
        **extra: Any,
    ) -> Doc:
        rule: Doc = {
            "id": new_id(),
            "security_group_id": sg_id,
            "project_id": project_id,
            "direction": direction,
            "ethertype": ethertype,
            "protocol": extra.get("protocol"),
            "port_range_min": extra.get("port_range_min"),
            "port_range_max": extra.get("port_range_max"),
            "remote_ip_prefix": extra.get("remote_ip_prefix"),
            "remote_group_id": remote_group,
            "remote_address_group_id": None,
            "normalized_cidr": extra.get("remote_ip_prefix"),
            "description": extra.get("description", ""),
            "tags": [],
        }
        self._stamp(rule, new=True)
        return self.store.put("security_group_rule", rule)

    def create_sg_record(
        self, project_id: str, name: str, description: str, *, default: bool = False
    ) -> Doc:
        sg: Doc = {
            "id": new_id(),
            "name": name,
            "description": description,
            "project_id": project_id,
            "stateful": True,
            "shared": False,
            "tags": [],
        }
        self._stamp(sg, new=True)
        self.store.put("security_group", sg)
        for ethertype in ("IPv4", "IPv6"):
            self._rule(sg["id"], project_id, "egress", ethertype)
            if default:
                self._rule(sg["id"], project_id, "ingress", ethertype, remote_group=sg["id"])
        return sg

    def ensure_default_sg(self, project_id: str | None) -> Doc:
        """The project's "default" group, created on first need as Neutron does."""
        for sg in self.store.values("security_group"):
            if sg["project_id"] == project_id and sg["name"] == "default":
                return sg
        return self.create_sg_record(
            str(project_id or ""), "default", "Default security group", default=True
        )

    def create_sg(self, req: Request) -> Response:
        self._member(req, "create_security_group")
        section = self._body(req, "security_group", ("name", "stateful"))
        owner = self._owner(req, section)
        self.ensure_default_sg(owner)
        if section.get("name") == "default":
            raise _err(
                409, "SecurityGroupDefaultAlreadyExists", "Default security group already exists."
            )
        self._check_quota(owner, "security_group")
        sg = self.create_sg_record(
            owner, str(section.get("name", "")), str(section.get("description", ""))
        )
        return Response(201, {"security_group": self.view(req, "security_group", sg)})

    def update_sg(self, req: Request) -> Response:
        sg = self._get(req, "security_group", req.params["id"])
        self._owns(req, sg, "update_security_group")
        section = self._body(req, "security_group", ("name", "stateful"))
        sg.update({k: v for k, v in section.items() if k not in ("project_id", "tenant_id")})
        self.store.put("security_group", self._stamp(sg))
        return Response(200, {"security_group": self.view(req, "security_group", sg)})

    def delete_sg(self, req: Request) -> Response:
        sg = self._get(req, "security_group", req.params["id"])
        self._owns(req, sg, "delete_security_group")
        if sg["name"] == "default" and not req.token.is_admin:
            raise _err(
                409,
                "SecurityGroupCannotRemoveDefault",
                "Removing default security group not allowed.",
            )
        if any(sg["id"] in p["security_groups"] for p in self.store.values("port")):
            raise _err(409, "SecurityGroupInUse", f"Security Group {sg['id']} in use.")
        for rule in self.store.values("security_group_rule"):
            if rule["security_group_id"] == sg["id"]:
                self.store.delete("security_group_rule", rule["id"])
        self.store.delete("security_group", sg["id"])
        return Response(204)

    def create_rule(self, req: Request) -> Response:
        self._member(req, "create_security_group_rule")
        section = self._body(
            req,
            "security_group_rule",
            (
                "security_group_id",
                "direction",
                "ethertype",
                "protocol",
                "port_range_min",
                "port_range_max",
                "remote_ip_prefix",
                "remote_group_id",
                "remote_address_group_id",
            ),
            ("security_group_id", "direction"),
        )
        sg = self._get(req, "security_group", str(section["security_group_id"]))
        self._owns(req, sg, "create_security_group_rule")
        if section["direction"] not in ("ingress", "egress"):
            raise _bad(
                f"Invalid input for direction. Reason: {section['direction']} is not in "
                "valid_values."
            )
        extra = {
            k: section.get(k)
            for k in ("protocol", "port_range_min", "port_range_max", "remote_ip_prefix")
        }
        extra["description"] = section.get("description", "")
        rule = self._rule(
            sg["id"],
            sg["project_id"],
            section["direction"],
            section.get("ethertype", "IPv4"),
            section.get("remote_group_id"),
            **extra,
        )
        return Response(201, {"security_group_rule": self.view(req, "security_group_rule", rule)})

    def delete_rule(self, req: Request) -> Response:
        rule = self._get(req, "security_group_rule", req.params["id"])
        self._owns(req, rule, "delete_security_group_rule")
        self.store.delete("security_group_rule", rule["id"])
        return Response(204)

    # ---- quotas ------------------------------------------------------------------------------

    def quota_for(self, project_id: str) -> dict[str, int]:
        limits = dict(QUOTA_DEFAULTS)
        limits.update((self.store.get("neutron_quota", project_id) or {}).get("limits", {}))
        return limits

    def _quota_access(self, req: Request) -> str:
        project_id = req.params["project_id"]
        if project_id != req.token.project_id:
            self._admin_only(req, "rule:get_quota")
        return project_id

    def get_quota(self, req: Request) -> Response:
        return Response(200, {"quota": self.quota_for(self._quota_access(req))})

    def get_quota_default(self, req: Request) -> Response:
        self._quota_access(req)
        return Response(200, {"quota": dict(QUOTA_DEFAULTS)})

    def get_quota_details(self, req: Request) -> Response:
        project_id = self._quota_access(req)
        details = {}
        for resource, limit in self.quota_for(project_id).items():
            kind = QUOTA_KINDS.get(resource)
            used = (
                sum(1 for d in self.store.values(kind) if d.get("project_id") == project_id)
                if kind
                else 0
            )
            details[resource] = {"limit": limit, "used": used, "reserved": 0}
        return Response(200, {"quota": details})

    def put_quota(self, req: Request) -> Response:
        self._admin_only(req, "rule:update_quota")
        project_id = req.params["project_id"]
        section = self._body(req, "quota", [*QUOTA_DEFAULTS, "check_limit", "force"])
        limits = {}
        for key, value in section.items():
            if key in ("check_limit", "force"):
                continue
            try:
                limits[key] = int(value)
            except (TypeError, ValueError) as exc:
                raise _bad(
                    f"Invalid input for {key}. Reason: '{value}' is not an integer."
                ) from exc
            if limits[key] < -1:
                raise _bad(
                    f"Invalid input for {key}. Reason: '{value}' should be greater than or equal "
                    "to -1."
                )
        doc = self.store.get("neutron_quota", project_id) or {"id": project_id, "limits": {}}
        doc["limits"].update(limits)
        self.store.put("neutron_quota", doc)
        return Response(200, {"quota": self.quota_for(project_id)})

    def delete_quota(self, req: Request) -> Response:
        self._admin_only(req, "rule:delete_quota")
        self.store.delete("neutron_quota", req.params["project_id"])
        return Response(204)

    def list_quotas(self, req: Request) -> Response:
        self._admin_only(req, "rule:get_quota")
        quotas = [
            {**self.quota_for(d["id"]), "project_id": d["id"], "tenant_id": d["id"]}
            for d in self.store.values("neutron_quota")
        ]
        return Response(200, {"quotas": quotas})

    def list_azs(self, req: Request) -> Response:
        zones = [
            {"name": "nova", "resource": resource, "state": "available"}
            for resource in ("network", "router")
        ]
        return Response(200, {"availability_zones": zones})
