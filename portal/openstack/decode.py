"""Wire format to typed results: the only place that knows OpenStack's field names."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from portal.openstack.types import (
    Address,
    AddressKind,
    AvailabilityZone,
    ComputeQuota,
    ComputeService,
    Domain,
    FixedIP,
    Flavor,
    FloatingIP,
    Hypervisor,
    Image,
    Inventory,
    Keypair,
    Network,
    NetworkIpAvailability,
    PasswordRule,
    Port,
    PowerState,
    Project,
    QuotaUsage,
    ResourceProvider,
    Role,
    RoleAssignment,
    Router,
    SecurityGroup,
    SecurityGroupRule,
    Server,
    ServerFault,
    ServerFlavor,
    ServerStatus,
    Subnet,
    SubnetIpAvailability,
    User,
    VmState,
)

Json = Mapping[str, Any]


def parse_time(value: str | None) -> datetime | None:
    """An aware datetime from any ISO 8601 form the services send; a missing offset means UTC.

    Keystone sends ``...43.578887Z``, Nova ``created`` ``...03Z``, Nova ``launched_at``
    ``2020-10-16T06:26:08.000000`` (no offset, UTC by Nova's convention), the api-ref documents
    ``±hh:mm``. ``None`` and ``""`` (Nova uses both for "never") stay None.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed


def _str_or_none(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def _int_or_none(value: Any) -> int | None:
    if value is None or value == "":
        return None
    return int(value)


def decode_power_state(raw: Any) -> tuple[PowerState, int | None]:
    """The named power state, and the raw number (kept so an unknown one can be shown)."""
    number = _int_or_none(raw)
    if number is None:
        return PowerState.UNKNOWN, None
    try:
        return PowerState(number), number
    except ValueError:
        return PowerState.UNKNOWN, number


def decode_status(raw: Any) -> ServerStatus:
    try:
        return ServerStatus(str(raw).upper())
    except ValueError:
        return ServerStatus.UNKNOWN


def decode_vm_state(raw: Any) -> VmState:
    try:
        return VmState(str(raw))
    except ValueError:
        return VmState.UNKNOWN


def decode_addresses(raw: Mapping[str, Any] | None) -> tuple[Address, ...]:
    """Nova's ``addresses`` map, flattened; fixed vs floating from ``OS-EXT-IPS:type``."""
    result: list[Address] = []
    for network, entries in (raw or {}).items():
        for entry in entries or ():
            kind = (
                AddressKind.FLOATING
                if entry.get("OS-EXT-IPS:type") == "floating"
                else AddressKind.FIXED
            )
            result.append(
                Address(
                    network=network,
                    addr=str(entry["addr"]),
                    version=int(entry.get("version") or (6 if ":" in entry["addr"] else 4)),
                    kind=kind,
                    mac=_str_or_none(entry.get("OS-EXT-IPS-MAC:mac_addr")),
                )
            )
    return tuple(result)


def _server_flavor(raw: Any) -> ServerFlavor | None:
    if not isinstance(raw, Mapping):
        return None
    # Before 2.47: {"id", "links"}; from 2.47: {"original_name", "vcpus", "ram", "disk", ...}.
    return ServerFlavor(
        id=_str_or_none(raw.get("id")),
        name=_str_or_none(raw.get("original_name")),
        vcpus=_int_or_none(raw.get("vcpus")),
        ram_mib=_int_or_none(raw.get("ram")),
        disk_gib=_int_or_none(raw.get("disk")),
    )


def _server_fault(raw: Any) -> ServerFault | None:
    if not isinstance(raw, Mapping):
        return None
    return ServerFault(
        code=_int_or_none(raw.get("code")),
        message=str(raw.get("message", "")),
        created=parse_time(raw.get("created")),
    )


def decode_server(raw: Json) -> Server:
    power_state, power_raw = decode_power_state(raw.get("OS-EXT-STS:power_state"))
    image = raw.get("image")
    metadata = raw.get("metadata") or {}
    return Server(
        id=str(raw["id"]),
        name=str(raw.get("name", "")),
        status=decode_status(raw.get("status")),
        status_raw=str(raw.get("status", "")),
        vm_state=decode_vm_state(raw.get("OS-EXT-STS:vm_state")),
        task_state=_str_or_none(raw.get("OS-EXT-STS:task_state")),
        power_state=power_state,
        power_state_raw=power_raw,
        project_id=str(raw.get("tenant_id") or raw.get("project_id") or ""),
        user_id=str(raw.get("user_id") or ""),
        created=parse_time(raw.get("created")),
        updated=parse_time(raw.get("updated")),
        launched_at=parse_time(raw.get("OS-SRV-USG:launched_at")),
        terminated_at=parse_time(raw.get("OS-SRV-USG:terminated_at")),
        addresses=decode_addresses(raw.get("addresses")),
        flavor=_server_flavor(raw.get("flavor")),
        # "" when booted from a volume.
        image_id=_str_or_none(image.get("id")) if isinstance(image, Mapping) else None,
        key_name=_str_or_none(raw.get("key_name")),
        security_groups=tuple(
            str(group.get("name", "")) for group in raw.get("security_groups") or ()
        ),
        availability_zone=_str_or_none(raw.get("OS-EXT-AZ:availability_zone")),
        host=_str_or_none(raw.get("OS-EXT-SRV-ATTR:host")),
        hypervisor_hostname=_str_or_none(raw.get("OS-EXT-SRV-ATTR:hypervisor_hostname")),
        fault=_server_fault(raw.get("fault")),
        metadata=MappingProxyType({str(k): str(v) for k, v in metadata.items()}),
        launched_at_raw=str(raw.get("OS-SRV-USG:launched_at") or ""),
        terminated_at_raw=str(raw.get("OS-SRV-USG:terminated_at") or ""),
    )


def decode_flavor(raw: Json) -> Flavor:
    swap = raw.get("swap")
    return Flavor(
        id=str(raw["id"]),
        name=str(raw.get("name", "")),
        vcpus=int(raw.get("vcpus") or 0),
        ram_mib=int(raw.get("ram") or 0),
        disk_gib=int(raw.get("disk") or 0),
        ephemeral_gib=int(raw.get("OS-FLV-EXT-DATA:ephemeral") or 0),
        # "" before compute 2.75, 0 from 2.75.
        swap_mib=_int_or_none(swap) or 0,
        is_public=bool(raw.get("os-flavor-access:is_public", True)),
        description=_str_or_none(raw.get("description")),
    )


def decode_keypair(raw: Json) -> Keypair:
    return Keypair(
        name=str(raw["name"]),
        public_key=str(raw.get("public_key") or ""),
        fingerprint=str(raw.get("fingerprint") or ""),
        # "type" is new in compute 2.2; every earlier key pair is an SSH key.
        type=str(raw.get("type") or "ssh"),
        user_id=_str_or_none(raw.get("user_id")),
    )


def decode_image(raw: Json) -> Image:
    return Image(
        id=str(raw["id"]),
        name=str(raw.get("name") or ""),
        status=str(raw.get("status", "")),
        visibility=str(raw.get("visibility", "")),
        owner=_str_or_none(raw.get("owner")),
        disk_format=_str_or_none(raw.get("disk_format")),
        container_format=_str_or_none(raw.get("container_format")),
        min_disk_gib=int(raw.get("min_disk") or 0),
        min_ram_mib=int(raw.get("min_ram") or 0),
        size_bytes=_int_or_none(raw.get("size")),
        created_at=parse_time(raw.get("created_at")),
        updated_at=parse_time(raw.get("updated_at")),
        tags=tuple(str(t) for t in raw.get("tags") or ()),
    )


def decode_domain(raw: Json) -> Domain:
    return Domain(id=str(raw["id"]), name=str(raw["name"]), enabled=bool(raw.get("enabled", True)))


def decode_password_rule(raw: Json) -> PasswordRule:
    """``{"config": {"security_compliance": {...}}}`` of Keystone's domain config API."""
    group = (raw.get("config") or {}).get("security_compliance") or {}
    regex, description = group.get("password_regex"), group.get("password_regex_description")
    return PasswordRule(
        regex=str(regex) if regex else None, description=str(description) if description else None
    )


def decode_project(raw: Json) -> Project:
    return Project(
        id=str(raw["id"]),
        name=str(raw["name"]),
        domain_id=str(raw.get("domain_id", "")),
        description=str(raw.get("description") or ""),
        enabled=bool(raw.get("enabled", True)),
        parent_id=_str_or_none(raw.get("parent_id")),
    )


def decode_user(raw: Json) -> User:
    return User(
        id=str(raw["id"]),
        name=str(raw["name"]),
        domain_id=str(raw.get("domain_id", "")),
        enabled=bool(raw.get("enabled", True)),
        default_project_id=_str_or_none(raw.get("default_project_id")),
        email=_str_or_none(raw.get("email")),
        description=_str_or_none(raw.get("description")),
        password_expires_at=parse_time(raw.get("password_expires_at")),
    )


def decode_role(raw: Json) -> Role:
    return Role(
        id=str(raw["id"]), name=str(raw["name"]), domain_id=_str_or_none(raw.get("domain_id"))
    )


def decode_role_assignment(raw: Json) -> RoleAssignment:
    role = raw.get("role") or {}
    user = raw.get("user") or {}
    project = (raw.get("scope") or {}).get("project") or {}
    return RoleAssignment(
        role_id=str(role.get("id", "")),
        user_id=_str_or_none(user.get("id")),
        project_id=_str_or_none(project.get("id")),
        role_name=_str_or_none(role.get("name")),
        user_name=_str_or_none(user.get("name")),
        project_name=_str_or_none(project.get("name")),
    )


def _neutron_project_id(raw: Json) -> str | None:
    # Neutron still sends the legacy tenant_id beside project_id; older deployments only it.
    return _str_or_none(raw.get("project_id") or raw.get("tenant_id"))


def decode_network(raw: Json) -> Network:
    return Network(
        id=str(raw["id"]),
        name=str(raw.get("name") or ""),
        status=str(raw.get("status", "")),
        project_id=_neutron_project_id(raw),
        shared=bool(raw.get("shared", False)),
        external=bool(raw.get("router:external", False)),
        subnet_ids=tuple(str(s) for s in raw.get("subnets") or ()),
        admin_state_up=bool(raw.get("admin_state_up", True)),
        mtu=_int_or_none(raw.get("mtu")),
    )


def decode_subnet(raw: Json) -> Subnet:
    return Subnet(
        id=str(raw["id"]),
        name=str(raw.get("name") or ""),
        network_id=str(raw["network_id"]),
        cidr=str(raw["cidr"]),
        ip_version=int(raw.get("ip_version", 4)),
        gateway_ip=_str_or_none(raw.get("gateway_ip")),
        enable_dhcp=bool(raw.get("enable_dhcp", True)),
        dns_nameservers=tuple(str(s) for s in raw.get("dns_nameservers") or ()),
        project_id=_neutron_project_id(raw),
    )


def _fixed_ips(raw: Any) -> tuple[FixedIP, ...]:
    return tuple(
        FixedIP(subnet_id=str(ip.get("subnet_id", "")), ip_address=str(ip["ip_address"]))
        for ip in raw or ()
    )


def decode_router(raw: Json) -> Router:
    gateway = raw.get("external_gateway_info") or {}
    return Router(
        id=str(raw["id"]),
        name=str(raw.get("name") or ""),
        status=str(raw.get("status", "")),
        project_id=_neutron_project_id(raw),
        external_network_id=_str_or_none(gateway.get("network_id")),
        external_fixed_ips=_fixed_ips(gateway.get("external_fixed_ips")),
        admin_state_up=bool(raw.get("admin_state_up", True)),
    )


def _rule(raw: Json) -> SecurityGroupRule:
    return SecurityGroupRule(
        id=str(raw["id"]),
        direction=str(raw.get("direction", "")),
        ethertype=str(raw.get("ethertype", "")),
        protocol=_str_or_none(raw.get("protocol")),
        port_range_min=_int_or_none(raw.get("port_range_min")),
        port_range_max=_int_or_none(raw.get("port_range_max")),
        remote_ip_prefix=_str_or_none(raw.get("remote_ip_prefix")),
        remote_group_id=_str_or_none(raw.get("remote_group_id")),
    )


def decode_security_group(raw: Json) -> SecurityGroup:
    return SecurityGroup(
        id=str(raw["id"]),
        name=str(raw.get("name") or ""),
        description=str(raw.get("description") or ""),
        project_id=_neutron_project_id(raw),
        rules=tuple(_rule(r) for r in raw.get("security_group_rules") or ()),
    )


def decode_port(raw: Json) -> Port:
    return Port(
        id=str(raw["id"]),
        name=str(raw.get("name") or ""),
        network_id=str(raw.get("network_id", "")),
        mac_address=str(raw.get("mac_address", "")),
        fixed_ips=_fixed_ips(raw.get("fixed_ips")),
        device_id=str(raw.get("device_id") or ""),
        device_owner=str(raw.get("device_owner") or ""),
        status=str(raw.get("status", "")),
        project_id=_neutron_project_id(raw),
        security_group_ids=tuple(str(s) for s in raw.get("security_groups") or ()),
    )


def decode_floating_ip(raw: Json) -> FloatingIP:
    return FloatingIP(
        id=str(raw["id"]),
        floating_ip_address=str(raw.get("floating_ip_address", "")),
        floating_network_id=str(raw.get("floating_network_id", "")),
        fixed_ip_address=_str_or_none(raw.get("fixed_ip_address")),
        port_id=_str_or_none(raw.get("port_id")),
        router_id=_str_or_none(raw.get("router_id")),
        status=str(raw.get("status", "")),
        project_id=_neutron_project_id(raw),
        description=str(raw.get("description") or ""),
        created_at=parse_time(raw.get("created_at")),
        updated_at=parse_time(raw.get("updated_at")),
    )


def decode_compute_service(raw: Json) -> ComputeService:
    return ComputeService(
        id=str(raw["id"]),
        binary=str(raw.get("binary", "")),
        host=str(raw.get("host", "")),
        zone=str(raw.get("zone", "")),
        enabled=raw.get("status") == "enabled",
        up=raw.get("state") == "up",
        disabled_reason=_str_or_none(raw.get("disabled_reason")),
        updated_at=parse_time(raw.get("updated_at")),
    )


def decode_hypervisor(raw: Json) -> Hypervisor:
    return Hypervisor(
        id=str(raw["id"]),
        hostname=str(raw.get("hypervisor_hostname", "")),
        state=_str_or_none(raw.get("state")),
        status=_str_or_none(raw.get("status")),
    )


def decode_availability_zone(raw: Json) -> AvailabilityZone:
    hosts = raw.get("hosts") or {}
    return AvailabilityZone(
        name=str(raw["zoneName"]),
        available=bool((raw.get("zoneState") or {}).get("available", False)),
        hosts=tuple(sorted(hosts)),
    )


def _quota_usage(raw: Any, *, detailed: bool) -> QuotaUsage:
    if not detailed:
        return QuotaUsage(limit=int(raw if raw is not None else -1), in_use=0)
    raw = raw or {}
    return QuotaUsage(
        limit=int(raw.get("limit", -1)),
        in_use=int(raw.get("in_use", 0)),
        reserved=int(raw.get("reserved", 0) or 0),
    )


def decode_compute_quota(raw: Json, project_id: str, *, detailed: bool = True) -> ComputeQuota:
    """A ``quota_set``: ``{"cores": {"limit", "in_use", "reserved"}, ...}`` or bare numbers."""
    return ComputeQuota(
        project_id=str(raw.get("id") or project_id),
        instances=_quota_usage(raw.get("instances"), detailed=detailed),
        cores=_quota_usage(raw.get("cores"), detailed=detailed),
        ram_mib=_quota_usage(raw.get("ram"), detailed=detailed),
    )


def decode_network_ip_availability(raw: Json) -> NetworkIpAvailability:
    return NetworkIpAvailability(
        network_id=str(raw["network_id"]),
        network_name=str(raw.get("network_name") or ""),
        project_id=_neutron_project_id(raw),
        total_ips=int(raw.get("total_ips") or 0),
        used_ips=int(raw.get("used_ips") or 0),
        subnets=tuple(
            SubnetIpAvailability(
                subnet_id=str(s["subnet_id"]),
                subnet_name=str(s.get("subnet_name") or ""),
                cidr=str(s.get("cidr") or ""),
                ip_version=int(s.get("ip_version") or 4),
                total_ips=int(s.get("total_ips") or 0),
                used_ips=int(s.get("used_ips") or 0),
            )
            for s in raw.get("subnet_ip_availability") or ()
        ),
    )


def decode_resource_provider(raw: Json) -> ResourceProvider:
    return ResourceProvider(
        uuid=str(raw["uuid"]),
        name=str(raw.get("name") or ""),
        generation=int(raw.get("generation") or 0),
        parent_uuid=_str_or_none(raw.get("parent_provider_uuid")),
    )


def decode_inventories(raw: Json) -> dict[str, Inventory]:
    """``{"inventories": {"VCPU": {...}}}`` as one ``Inventory`` per resource class."""
    return {
        name: Inventory(
            resource_class=str(name),
            total=int(item.get("total") or 0),
            reserved=int(item.get("reserved") or 0),
            min_unit=int(item.get("min_unit") or 1),
            max_unit=int(item.get("max_unit") or item.get("total") or 0),
            step_size=int(item.get("step_size") or 1),
            allocation_ratio=float(item.get("allocation_ratio") or 1.0),
        )
        for name, item in (raw.get("inventories") or {}).items()
    }
