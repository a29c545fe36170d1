"""Typed results of cloud calls: frozen dataclasses and enums, no wire names above this line.

Everything the portal reads from OpenStack arrives as one of these. They are decoded once, in
``portal.openstack.decode``; nothing above this package sees ``"OS-EXT-STS:power_state"`` or a raw
time string.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

_EMPTY: Mapping[str, str] = MappingProxyType({})


class PowerState(enum.IntEnum):
    """Nova's ``OS-EXT-STS:power_state`` (nova/objects/fields.py); UNKNOWN keeps no number.

    An ``IntEnum``, so the portal's mirror (which stores Nova's number) compares with it.
    """

    NOSTATE = 0
    RUNNING = 1
    PAUSED = 3
    SHUTDOWN = 4
    CRASHED = 6
    SUSPENDED = 7
    UNKNOWN = -1

    @property
    def label(self) -> str:
        return _POWER_LABELS[self]


_POWER_LABELS = {
    PowerState.NOSTATE: "No state",
    PowerState.RUNNING: "Running",
    PowerState.PAUSED: "Paused",
    PowerState.SHUTDOWN: "Shutdown",
    PowerState.CRASHED: "Crashed",
    PowerState.SUSPENDED: "Suspended",
    PowerState.UNKNOWN: "Unknown",
}


class ServerStatus(enum.StrEnum):
    """Nova's server ``status`` (derived by Nova from vm_state and task_state)."""

    ACTIVE = "ACTIVE"
    BUILD = "BUILD"
    DELETED = "DELETED"
    ERROR = "ERROR"
    HARD_REBOOT = "HARD_REBOOT"
    MIGRATING = "MIGRATING"
    PASSWORD = "PASSWORD"  # noqa: S105 -- a Nova status name
    PAUSED = "PAUSED"
    REBOOT = "REBOOT"
    REBUILD = "REBUILD"
    RESCUE = "RESCUE"
    RESIZE = "RESIZE"
    REVERT_RESIZE = "REVERT_RESIZE"
    SHELVED = "SHELVED"
    SHELVED_OFFLOADED = "SHELVED_OFFLOADED"
    SHUTOFF = "SHUTOFF"
    SOFT_DELETED = "SOFT_DELETED"
    SUSPENDED = "SUSPENDED"
    UNKNOWN = "UNKNOWN"
    VERIFY_RESIZE = "VERIFY_RESIZE"


class VmState(enum.StrEnum):
    """Nova's ``OS-EXT-STS:vm_state``; note ``stopped`` (not shutoff) and ``soft-delete``."""

    ACTIVE = "active"
    BUILDING = "building"
    DELETED = "deleted"
    ERROR = "error"
    PAUSED = "paused"
    RESCUED = "rescued"
    RESIZED = "resized"
    SHELVED = "shelved"
    SHELVED_OFFLOADED = "shelved_offloaded"
    SOFT_DELETED = "soft-delete"
    STOPPED = "stopped"
    SUSPENDED = "suspended"
    UNKNOWN = "unknown"


class AddressKind(enum.StrEnum):
    FIXED = "fixed"
    FLOATING = "floating"


class RebootType(enum.StrEnum):
    SOFT = "SOFT"
    HARD = "HARD"


@dataclass(frozen=True, slots=True)
class Address:
    """One entry of a server's ``addresses`` map."""

    network: str
    addr: str
    version: int
    kind: AddressKind
    mac: str | None


@dataclass(frozen=True, slots=True)
class ServerFlavor:
    """The flavor as a server reports it: id before compute 2.47, embedded details from 2.47."""

    id: str | None
    name: str | None
    vcpus: int | None
    ram_mib: int | None
    disk_gib: int | None


@dataclass(frozen=True, slots=True)
class ServerFault:
    code: int | None
    message: str
    created: datetime | None


@dataclass(frozen=True, slots=True)
class Server:
    """A Nova server (``GET /servers/{id}``, ``GET /servers/detail``)."""

    id: str
    name: str
    status: ServerStatus
    vm_state: VmState
    task_state: str | None
    power_state: PowerState
    power_state_raw: int | None
    project_id: str
    user_id: str
    created: datetime | None
    updated: datetime | None
    launched_at: datetime | None
    terminated_at: datetime | None
    addresses: tuple[Address, ...]
    flavor: ServerFlavor | None
    image_id: str | None
    key_name: str | None
    security_groups: tuple[str, ...]
    availability_zone: str | None
    host: str | None
    hypervisor_hostname: str | None
    fault: ServerFault | None
    metadata: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    status_raw: str = ""
    # The times exactly as Nova wrote them (``launched_at`` has no offset), for people who
    # compare with the cloud's own logs.
    launched_at_raw: str = ""
    terminated_at_raw: str = ""

    @property
    def fixed_addresses(self) -> tuple[Address, ...]:
        return tuple(a for a in self.addresses if a.kind is AddressKind.FIXED)

    @property
    def floating_addresses(self) -> tuple[Address, ...]:
        return tuple(a for a in self.addresses if a.kind is AddressKind.FLOATING)

    @property
    def ipv4(self) -> tuple[Address, ...]:
        return tuple(a for a in self.addresses if a.version == 4)

    @property
    def ipv6(self) -> tuple[Address, ...]:
        return tuple(a for a in self.addresses if a.version == 6)


@dataclass(frozen=True, slots=True)
class Flavor:
    id: str
    name: str
    vcpus: int
    ram_mib: int
    disk_gib: int
    ephemeral_gib: int
    swap_mib: int
    is_public: bool
    description: str | None


@dataclass(frozen=True, slots=True)
class Keypair:
    """A Nova key pair (``/os-keypairs``): a public key owned by one Keystone user."""

    name: str
    public_key: str
    fingerprint: str
    type: str
    user_id: str | None


@dataclass(frozen=True, slots=True)
class Image:
    """A Glance v2 image."""

    id: str
    name: str
    status: str
    visibility: str
    owner: str | None
    disk_format: str | None
    container_format: str | None
    min_disk_gib: int
    min_ram_mib: int
    size_bytes: int | None
    created_at: datetime | None
    updated_at: datetime | None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Domain:
    id: str
    name: str
    enabled: bool


@dataclass(frozen=True, slots=True)
class PasswordRule:
    """Keystone's ``[security_compliance]`` password rule (None: the cloud sets none)."""

    regex: str | None
    description: str | None


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    name: str
    domain_id: str
    description: str
    enabled: bool
    parent_id: str | None


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str
    domain_id: str
    enabled: bool
    default_project_id: str | None
    email: str | None
    description: str | None
    password_expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class Role:
    id: str
    name: str
    domain_id: str | None


@dataclass(frozen=True, slots=True)
class RoleAssignment:
    """A role of a user on a project (``GET /v3/role_assignments``)."""

    role_id: str
    user_id: str | None
    project_id: str | None
    role_name: str | None = None
    user_name: str | None = None
    project_name: str | None = None


@dataclass(frozen=True, slots=True)
class Token:
    """A Keystone token's facts; the secret itself is kept out of repr and str."""

    user_id: str
    user_name: str
    user_domain_id: str | None
    project_id: str | None
    project_name: str | None
    roles: tuple[str, ...]
    expires_at: datetime
    issued_at: datetime | None
    value: str = field(repr=False, default="")


@dataclass(frozen=True, slots=True)
class Network:
    id: str
    name: str
    status: str
    project_id: str | None
    shared: bool
    external: bool
    subnet_ids: tuple[str, ...]
    admin_state_up: bool
    mtu: int | None


@dataclass(frozen=True, slots=True)
class Subnet:
    id: str
    name: str
    network_id: str
    cidr: str
    ip_version: int
    gateway_ip: str | None
    enable_dhcp: bool
    dns_nameservers: tuple[str, ...]
    project_id: str | None


@dataclass(frozen=True, slots=True)
class FixedIP:
    subnet_id: str
    ip_address: str


@dataclass(frozen=True, slots=True)
class Router:
    id: str
    name: str
    status: str
    project_id: str | None
    external_network_id: str | None
    external_fixed_ips: tuple[FixedIP, ...]
    admin_state_up: bool


@dataclass(frozen=True, slots=True)
class SecurityGroupRule:
    id: str
    direction: str
    ethertype: str
    protocol: str | None
    port_range_min: int | None
    port_range_max: int | None
    remote_ip_prefix: str | None
    remote_group_id: str | None


@dataclass(frozen=True, slots=True)
class SecurityGroup:
    id: str
    name: str
    description: str
    project_id: str | None
    rules: tuple[SecurityGroupRule, ...] = ()


@dataclass(frozen=True, slots=True)
class Port:
    id: str
    name: str
    network_id: str
    mac_address: str
    fixed_ips: tuple[FixedIP, ...]
    device_id: str
    device_owner: str
    status: str
    project_id: str | None
    security_group_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FloatingIP:
    id: str
    floating_ip_address: str
    floating_network_id: str
    fixed_ip_address: str | None
    port_id: str | None
    router_id: str | None
    status: str
    project_id: str | None
    description: str
    created_at: datetime | None
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class ComputeService:
    """A row of ``GET /os-services``: for binary nova-compute, one compute host."""

    id: str
    binary: str
    host: str
    zone: str
    enabled: bool
    up: bool
    disabled_reason: str | None
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class Hypervisor:
    """A row of ``GET /os-hypervisors``."""

    id: str
    hostname: str
    state: str | None
    status: str | None


@dataclass(frozen=True, slots=True)
class AvailabilityZone:
    """A zone of ``GET /os-availability-zone/detail`` with its compute hosts."""

    name: str
    available: bool
    hosts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Microversion:
    """A compute API microversion, ordered numerically (2.9 < 2.47 < 2.100)."""

    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> Microversion:
        major, _, minor = text.strip().partition(".")
        return cls(int(major), int(minor or 0))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    def __lt__(self, other: Microversion) -> bool:
        return (self.major, self.minor) < (other.major, other.minor)

    def __le__(self, other: Microversion) -> bool:
        return (self.major, self.minor) <= (other.major, other.minor)


@dataclass(frozen=True, slots=True)
class QuotaUsage:
    """One resource of a project's quota: its limit (-1: unlimited) and what is used."""

    limit: int
    in_use: int
    reserved: int = 0

    @property
    def unlimited(self) -> bool:
        return self.limit < 0

    def room(self) -> int | None:
        """How much more fits under the limit (None: no limit)."""
        return None if self.unlimited else max(0, self.limit - self.in_use - self.reserved)


@dataclass(frozen=True, slots=True)
class ComputeQuota:
    """A project's Nova quota for what a server consumes (``os-quota-sets/{id}/detail``)."""

    project_id: str
    instances: QuotaUsage
    cores: QuotaUsage
    ram_mib: QuotaUsage


@dataclass(frozen=True, slots=True)
class SubnetIpAvailability:
    subnet_id: str
    subnet_name: str
    cidr: str
    ip_version: int
    total_ips: int
    used_ips: int


@dataclass(frozen=True, slots=True)
class NetworkIpAvailability:
    """Neutron's count of a network's allocation pools and allocations."""

    network_id: str
    network_name: str
    project_id: str | None
    total_ips: int
    used_ips: int
    subnets: tuple[SubnetIpAvailability, ...] = ()

    @property
    def free_ips(self) -> int:
        return max(0, self.total_ips - self.used_ips)


@dataclass(frozen=True, slots=True)
class ResourceProvider:
    """A Placement resource provider (for Nova, one per compute node)."""

    uuid: str
    name: str
    generation: int
    parent_uuid: str | None = None


@dataclass(frozen=True, slots=True)
class Inventory:
    """One resource class of a provider's inventory (``VCPU``, ``MEMORY_MB``, ``DISK_GB``)."""

    resource_class: str
    total: int
    reserved: int
    min_unit: int
    max_unit: int
    step_size: int
    allocation_ratio: float

    @property
    def capacity(self) -> int:
        """What the scheduler may hand out in all: (total - reserved) x allocation ratio."""
        return int((self.total - self.reserved) * self.allocation_ratio)
