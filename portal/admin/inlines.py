"""Read-only tables on the detail pages: the operations that touched a row, its VMs, its IPs."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from portal.admin.helpers import (
    change_link,
    kst,
    operation_label,
    operation_state_badge,
    request_ids,
    status_badge,
)
from portal.models import FloatingIP, Instance, Operation


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class OperationInline(ReadOnlyInline):
    """Newest first, with the cloud's request ids to quote to the cloud's operators."""

    model = Operation
    fk_name = "instance"
    verbose_name_plural = _("operations, newest first")
    fields = [
        "link",
        "state_badge",
        "step",
        "message_shown",
        "request_ids_shown",
        "created",
        "ended",
    ]
    readonly_fields = fields  # type: ignore[assignment]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Operation]:
        return super().get_queryset(request).order_by("-created_at").select_related("batch")

    @admin.display(description=_("operation"))
    def link(self, op: Operation) -> SafeString:
        return change_link(op, operation_label(op))

    @admin.display(description=_("state"))
    def state_badge(self, op: Operation) -> SafeString:
        return operation_state_badge(op)

    @admin.display(description=_("message"))
    def message_shown(self, op: Operation) -> str:
        return op.message_text

    @admin.display(description=_("OpenStack request ids"))
    def request_ids_shown(self, op: Operation) -> SafeString:
        return request_ids(op)

    @admin.display(description=_("created"))
    def created(self, op: Operation) -> SafeString:
        return kst(op.created_at)

    @admin.display(description=_("finished"))
    def ended(self, op: Operation) -> SafeString:
        return kst(op.finished_at)


class SoldierOperationInline(OperationInline):
    fk_name = "soldier"


class InstanceInline(ReadOnlyInline):
    model = Instance
    fk_name = "owner"
    verbose_name_plural = _("VMs")
    fields = ["link", "badge", "floating_ip", "fixed_ip", "host", "launched"]
    readonly_fields = fields  # type: ignore[assignment]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Instance]:
        return super().get_queryset(request).select_related("pending_operation")

    @admin.display(description=_("name"))
    def link(self, instance: Instance) -> SafeString:
        return change_link(instance, instance.name)

    @admin.display(description=_("status"))
    def badge(self, instance: Instance) -> SafeString:
        return status_badge(instance)

    @admin.display(description=_("launched"))
    def launched(self, instance: Instance) -> SafeString:
        return kst(instance.launched_at, instance.launched_at_raw)


class FloatingIPInline(ReadOnlyInline):
    model = FloatingIP
    fk_name = "instance"
    verbose_name_plural = _("floating IPs")
    fields = ["address", "ownership", "status", "port_id", "released"]
    readonly_fields = fields  # type: ignore[assignment]

    @admin.display(description=_("owner"))
    def ownership(self, fip: FloatingIP) -> str:
        return str(
            _("created by the portal (released with the VM)")
            if fip.created_by_portal
            else _("not created by the portal (kept)")
        )

    @admin.display(description=_("released"))
    def released(self, fip: FloatingIP) -> SafeString:
        return kst(fip.released_at)
