"""Exports: the soldiers (a roster the import reads back unchanged) and the VMs, as CSV or Excel.

The cells are gathered here, in chunks of ``CHUNK`` rows; ``portal.rosterfile.write`` writes them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from portal import status
from portal.models import Instance, Soldier, power_state_label
from portal.openstack.types import ServerStatus
from portal.rosterfile.columns import COLUMN_BY_KEY, SOLDIER_FIELDS
from portal.rosterfile.write import csv_bytes, xlsx_bytes

# Rows fetched per query while an export is written.
CHUNK = 500


@dataclass(frozen=True)
class ExportFile:
    filename: str
    content_type: str
    content: bytes


CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _export_file(
    stem: str, file_format: str, headers: Sequence[Any], rows: Iterable[Sequence[Any]]
) -> ExportFile:
    stamp = status.to_seoul(timezone.now()).strftime("%Y%m%d-%H%M")
    if file_format == "xlsx":
        content = xlsx_bytes(headers, rows, title=stem)
    elif file_format == "csv":
        content = csv_bytes(headers, rows)
    else:
        raise ValueError(f"unknown export format {file_format!r}")
    return ExportFile(f"{stem}-{stamp}.{file_format}", CONTENT_TYPES[file_format], content)


def _live_instances() -> QuerySet[Instance]:
    return (
        Instance.objects.select_related("pending_operation")
        .filter(deleted_outside_portal=False)
        .exclude(status=ServerStatus.DELETED)
        .order_by("created_at", "pk")
    )


SOLDIER_EXPORT_EXTRA = (
    _("State"),
    _("Project"),
    _("VMs"),
    _("VM status"),
    _("Floating IPs"),
    _("Cloud access kept until"),
)


def soldiers_export(*, soldiers: QuerySet[Soldier], file_format: str) -> ExportFile:
    """The soldiers as a roster the import reads back unchanged, plus their cloud state."""
    headers = [
        *(COLUMN_BY_KEY[k].label for k in ("service_number", *SOLDIER_FIELDS)),
        COLUMN_BY_KEY["username"].label,
        *SOLDIER_EXPORT_EXTRA,
    ]
    queryset = soldiers.select_related("project").prefetch_related(
        Prefetch("instances", queryset=_live_instances(), to_attr="live_instances")
    )

    def rows() -> Iterator[list[Any]]:
        for soldier in queryset.iterator(chunk_size=CHUNK):
            instances: list[Instance] = soldier.live_instances
            project = getattr(soldier, "project", None)
            yield [
                soldier.service_number,
                soldier.name,
                soldier.unit,
                soldier.enlisted_on,
                soldier.discharge_on,
                soldier.keystone_user_name,
                soldier.get_state_display(),
                project.name if project else "",
                len(instances),
                "; ".join(
                    f"{i.name}: {status.merged_status(i, audience=status.Audience.STAFF).label}"
                    for i in instances
                ),
                ", ".join(i.floating_ip for i in instances if i.floating_ip),
                soldier.discharge_postponed_until,
            ]

    return _export_file("soldiers", file_format, headers, rows())


def instances_export(*, instances: QuerySet[Instance], file_format: str) -> ExportFile:
    """Every mirrored field of the VMs; times in KST and as ISO 8601 UTC."""
    fields = list(Instance._meta.concrete_fields)
    headers: list[Any] = []
    for f in fields:
        label = str(f.verbose_name)
        if f.get_internal_type() == "DateTimeField":
            headers += [f"{label} (KST)", f"{label} (UTC)"]
        else:
            headers.append(label)
    headers.append(_("Merged status"))
    queryset = instances.select_related("project", "owner", "template", "pending_operation")

    def value(instance: Instance, f: Any) -> list[Any]:
        raw = getattr(instance, f.attname)
        if f.get_internal_type() == "DateTimeField":
            return [status.format_kst(raw, seconds=True), status.iso_utc(raw) if raw else ""]
        if f.name == "pending_operation":
            return [raw or ""]
        if f.is_relation:
            related = getattr(instance, f.name)
            return ["" if related is None else str(related)]
        if f.name == "power_state":
            return [power_state_label(raw) if raw is not None else ""]
        if isinstance(raw, list | dict):
            return [json.dumps(raw, ensure_ascii=False)]
        return ["" if raw is None else raw if isinstance(raw, int | str | bool) else str(raw)]

    def rows() -> Iterator[list[Any]]:
        for instance in queryset.iterator(chunk_size=CHUNK):
            cells: list[Any] = []
            for f in fields:
                cells += value(instance, f)
            cells.append(status.merged_status(instance, audience=status.Audience.STAFF).label)
            yield cells

    return _export_file("instances", file_format, headers, rows())
