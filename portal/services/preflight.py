"""Preflight of a bulk launch: which rows fit before anything is created.

For a template x N VMs per soldier it reads, from the cloud: each soldier project's Nova quota
and usage, the free addresses of the external network (each VM takes a floating IP), and, when
the catalog has Placement, each compute host's inventory and usage. Rows are taken in order;
a row fits when all its VMs fit every check, and what the fitting rows take is subtracted
before the next row is looked at. Nothing is created here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.core.cache import cache
from django.utils import timezone
from django.utils.translation import gettext, pgettext

from portal import cloud
from portal.models import Soldier, VmTemplate
from portal.openstack import ComputeQuota, ComputeService, Flavor, OpenStackClient, errors
from portal.operations.errors import OperationRefused, StepFailed
from portal.services.instances import live_instances_from
from portal.services.onboarding import external_network_id

# The compute resources of one VM, by Placement resource class.
VCPU, MEMORY_MB, DISK_GB = "VCPU", "MEMORY_MB", "DISK_GB"
CAPACITY_CACHE_KEY = "console:capacity"


@dataclass
class HostRoom:
    """What a compute host can still take, per resource class (capacity minus usage)."""

    name: str
    free: dict[str, int]
    max_unit: dict[str, int]

    def takes(self, need: dict[str, int]) -> bool:
        return all(
            self.free.get(rc, 0) >= amount and self.max_unit.get(rc, amount) >= amount
            for rc, amount in need.items()
            if amount
        )

    def take(self, need: dict[str, int]) -> None:
        for rc, amount in need.items():
            self.free[rc] = self.free.get(rc, 0) - amount


@dataclass
class PreflightRow:
    soldier: Soldier
    count: int
    quota: ComputeQuota | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return not self.reasons


@dataclass
class Preflight:
    template: VmTemplate
    count: int
    host: str
    second_vm: bool = False
    rows: list[PreflightRow] = field(default_factory=list)
    flavor: Flavor | None = None
    free_floating_ips: int | None = None
    hosts: list[HostRoom] | None = None  # None: the cloud has no Placement endpoint
    # Checks the cloud could not answer; with any of these, nothing is offered for launch.
    problems: list[str] = field(default_factory=list)
    checked_at: datetime = field(default_factory=timezone.now)

    @property
    def fitting(self) -> list[Soldier]:
        return [] if self.problems else [r.soldier for r in self.rows if r.fits]

    @property
    def refused(self) -> list[PreflightRow]:
        return [r for r in self.rows if not r.fits]


@dataclass(frozen=True)
class CapacitySnapshot:
    """The external network's free addresses as last measured (the dashboard shows it)."""

    free_floating_ips: int
    measured_at: datetime


def _need(flavor: Flavor) -> dict[str, int]:
    return {
        VCPU: flavor.vcpus,
        MEMORY_MB: flavor.ram_mib,
        DISK_GB: flavor.disk_gib + flavor.ephemeral_gib,
    }


def _quota(client: OpenStackClient, soldier: Soldier) -> ComputeQuota:
    project = getattr(soldier, "project", None)
    if project is not None and project.keystone_id:
        return client.get_compute_quota(project.keystone_id)
    # Not onboarded yet: the project onboarding creates gets the cloud's default quota.
    own = client.token().project_id or "default"
    return client.get_compute_quota_defaults(own)


def _quota_reasons(quota: ComputeQuota, flavor: Flavor, count: int) -> list[str]:
    wanted = (
        (pgettext("quota", "instances"), quota.instances, count),
        (gettext("vCPUs"), quota.cores, flavor.vcpus * count),
        (gettext("RAM (MiB)"), quota.ram_mib, flavor.ram_mib * count),
    )
    return [
        gettext("project quota of %(what)s: %(used)s of %(limit)s used, %(more)s more needed")
        % {"what": what, "used": usage.in_use, "limit": usage.limit, "more": amount}
        for what, usage, amount in wanted
        if (room := usage.room()) is not None and room < amount
    ]


def _hosts(client: OpenStackClient, host: str) -> list[HostRoom] | None:
    if not client.has_service("placement"):
        return None
    rooms = []
    for provider in client.list_resource_providers(name=host or None):
        inventories = client.get_provider_inventories(provider.uuid)
        usages = client.get_provider_usages(provider.uuid)
        rooms.append(
            HostRoom(
                name=provider.name,
                free={rc: inv.capacity - usages.get(rc, 0) for rc, inv in inventories.items()},
                max_unit={rc: inv.max_unit for rc, inv in inventories.items()},
            )
        )
    return rooms


def free_floating_ips(client: OpenStackClient) -> int:
    """Free addresses on the external network; remembered for the console's dashboard."""
    free = client.get_network_ip_availability(external_network_id(client)).free_ips
    cache.set(CAPACITY_CACHE_KEY, CapacitySnapshot(free, timezone.now()), timeout=7 * 24 * 3600)
    return free


def cloud_capacity_measure() -> CapacitySnapshot:
    """Measure the external network's free addresses now (one Neutron call)."""
    try:
        free_floating_ips(cloud.get_client())
    except StepFailed as exc:  # the external network is missing
        raise OperationRefused(exc.message, **exc.params) from exc
    snapshot = cloud_capacity_last()
    assert snapshot is not None
    return snapshot


def cloud_capacity_last() -> CapacitySnapshot | None:
    """The last measurement, if any (no cloud call)."""
    value = cache.get(CAPACITY_CACHE_KEY)
    return value if isinstance(value, CapacitySnapshot) else None


def compute_hosts() -> list[ComputeService]:
    """The compute hosts that take new VMs (enabled and up), for the launch page's host choice."""
    return [h for h in cloud.get_client().list_compute_services() if h.enabled and h.up and h.host]


def launch_preflight(
    *,
    soldiers: list[Soldier],
    template: VmTemplate,
    count: int = 1,
    host: str = "",
    second_vm: bool = False,
) -> Preflight:
    """Check quotas, free floating IPs and compute room for ``count`` VMs per soldier.

    A soldier with a live VM from ``template`` does not fit unless ``second_vm``.
    """
    result = Preflight(template=template, count=count, host=host, second_vm=second_vm)
    result.rows = [PreflightRow(soldier=s, count=count) for s in soldiers]
    if not template.is_active:
        result.problems.append(
            gettext("The template %(name)s is not offered.") % {"name": template.name}
        )
        return result
    try:
        client = cloud.get_client()
        flavor = result.flavor = client.get_flavor(template.flavor_id)
        result.free_floating_ips = free_floating_ips(client)
        result.hosts = _hosts(client, host)
        for row in result.rows:
            if row.soldier.state == Soldier.State.DISABLED:
                row.reasons.append(gettext("the soldier is disabled"))
                continue
            live = None if second_vm else live_instances_from(row.soldier, template).first()
            if live is not None:
                row.reasons.append(
                    gettext(
                        'already has a VM from this template (%(name)s); tick "second VM" to '
                        "launch another"
                    )
                    % {"name": live.name}
                )
                continue
            row.quota = _quota(client, row.soldier)
            row.reasons += _quota_reasons(row.quota, flavor, count)
    except errors.OpenStackError as exc:
        result.problems.append(
            gettext("The cloud could not answer the checks (%(error)s). Nothing was created.")
            % {"error": exc}
        )
        return result
    except StepFailed as exc:  # the external network is missing
        result.problems.append(gettext(exc.message) % exc.params)
        return result
    if host and result.hosts is not None and not result.hosts:
        result.problems.append(
            gettext("Placement knows no compute host named %(host)s.") % {"host": host}
        )
        return result
    _allocate(result, _need(flavor))
    return result


def _allocate(result: Preflight, need: dict[str, int]) -> None:
    """Take each fitting row's floating IPs and compute room, in order."""
    ips_left = result.free_floating_ips
    working = (
        None
        if result.hosts is None
        else [HostRoom(h.name, dict(h.free), h.max_unit) for h in result.hosts]
    )
    for row in result.rows:
        if not row.fits:
            continue
        if ips_left is not None and ips_left < row.count:
            row.reasons.append(
                gettext("not enough free floating IPs on the external network (%(left)s left)")
                % {"left": ips_left}
            )
            continue
        if working is not None:
            trial = [HostRoom(h.name, dict(h.free), h.max_unit) for h in working]
            placed = 0
            for _ in range(row.count):
                room = next((h for h in trial if h.takes(need)), None)
                if room is None:
                    break
                room.take(need)
                placed += 1
            if placed < row.count:
                row.reasons.append(
                    gettext("not enough compute capacity (room for %(placed)s of %(count)s VMs)")
                    % {"placed": placed, "count": row.count}
                )
                continue
            working = trial
        if ips_left is not None:
            ips_left -= row.count
