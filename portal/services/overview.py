"""Read-only views of the mirror for the console: status counts, the dashboard, the status page.

Nothing here calls the cloud: pages render from the database, which operations and the
periodic reconcile keep fresh. Counting by merged status groups the rows by the fields the
decoder reads and decodes each group once, so it costs one query whatever the number of VMs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from django.db.models import BooleanField, Case, Count, Q, QuerySet, Value, When
from django.utils import timezone

from portal.models import Drift, FloatingIP, Instance, Operation, Soldier
from portal.openstack.types import ServerStatus
from portal.services.preflight import CapacitySnapshot, cloud_capacity_last
from portal.status import STATUS_KEYS, TRANSITIONAL_KEYS, Audience, Tone, merged_status

# The fields ``merged_status`` reads to choose a status key (not its wording).
_KEY_FIELDS = (
    "status",
    "vm_state",
    "task_state",
    "power_state",
    "pending_action",
    "pending_operation__state",
    "deleted_outside_portal",
)


def live_instances() -> QuerySet[Instance]:
    """VMs that exist in the cloud, or vanished from it without the portal (still drift)."""
    return Instance.objects.filter(~Q(status=ServerStatus.DELETED) | Q(deleted_outside_portal=True))


def _shaped(row: dict[str, Any]) -> SimpleNamespace:
    """A values() row shaped like the ``Instance`` attributes the decoder reads."""
    state = row.get("pending_operation__state")
    fields = {k: v for k, v in row.items() if k not in ("pending_operation__state", "has_error")}
    return SimpleNamespace(
        **fields,
        pending_operation=SimpleNamespace(state=state, step="", started_at=None) if state else None,
        last_error="x" if row.get("has_error") else "",
        fault="",
        created_at=None,
    )


def _with_error_flag(queryset: QuerySet[Instance]) -> QuerySet[Instance]:
    return queryset.annotate(
        has_error=Case(
            When(last_error="", then=Value(False)), default=Value(True), output_field=BooleanField()
        )
    )


@dataclass(frozen=True)
class StatusCount:
    key: str
    label: str
    tone: Tone
    count: int

    @property
    def css_class(self) -> str:
        return f"cs-badge cs-tone-{self.tone}"


def status_counts(queryset: QuerySet[Instance] | None = None) -> list[StatusCount]:
    """How many VMs are in each merged status, in the decoder's order (one query)."""
    queryset = live_instances() if queryset is None else queryset
    groups = (
        _with_error_flag(queryset)
        .order_by()
        .values(*_KEY_FIELDS, "has_error")
        .annotate(n=Count("pk"))
    )
    counts: dict[str, int] = {}
    tones: dict[str, Tone] = {}
    for group in groups:
        n = group.pop("n")
        decoded = merged_status(_shaped(group), audience=Audience.STAFF)
        counts[decoded.key] = counts.get(decoded.key, 0) + n
        tones[decoded.key] = decoded.tone
    return [
        StatusCount(key, str(label), tones[key], counts[key])
        for key, label in STATUS_KEYS
        if key in counts
    ]


def instances_with_status(queryset: QuerySet[Instance], key: str) -> QuerySet[Instance]:
    """The VMs of ``queryset`` whose merged status is ``key`` (for the list filter).

    As for the counts, the rows are grouped by the fields the decoder reads and each group is
    decoded once; the groups that decode to ``key`` become the filter. The work is one grouping
    query and a decode per group, whatever the number of VMs.
    """
    groups = _with_error_flag(queryset).order_by().values(*_KEY_FIELDS, "has_error").distinct()
    wanted = Q(pk__in=[])  # matches nothing: no group decodes to ``key``
    for group in groups:
        if merged_status(_shaped(group), audience=Audience.STAFF).key != key:
            continue
        fields = dict(group)
        error = ~Q(last_error="") if fields.pop("has_error") else Q(last_error="")
        wanted |= Q(**fields) & error
    return queryset.filter(wanted)


@dataclass(frozen=True)
class Dashboard:
    statuses: list[StatusCount]
    vm_total: int
    failed_operations_24h: int
    open_drift: int
    discharges_30_days: int
    unattached_floating_ips: int
    capacity: CapacitySnapshot | None
    transitional: int


def console_dashboard(*, now: datetime | None = None) -> Dashboard:
    """The admin index's strip: a handful of counts, no cloud call."""
    now = now or timezone.now()
    statuses = status_counts()
    transitional = TRANSITIONAL_KEYS
    return Dashboard(
        statuses=statuses,
        vm_total=sum(s.count for s in statuses),
        failed_operations_24h=Operation.objects.filter(
            state=Operation.State.FAILED, finished_at__gte=now - timedelta(hours=24)
        ).count(),
        open_drift=Drift.objects.filter(resolved_at__isnull=True, ignored_at__isnull=True).count(),
        discharges_30_days=Soldier.objects.discharge_within(days=30).count(),
        unattached_floating_ips=FloatingIP.objects.filter(
            created_by_portal=True, released_at__isnull=True, port_id=""
        ).count(),
        capacity=cloud_capacity_last(),
        transitional=sum(s.count for s in statuses if s.key in transitional),
    )
