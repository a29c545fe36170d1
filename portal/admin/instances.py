"""VMs: the decoded list staff read, the read-only detail page, and the actions on a VM."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from portal import services
from portal.admin import confirm
from portal.admin.exports import InstanceExportMixin
from portal.admin.filters import (
    FailedOperationsFilter,
    HasDriftFilter,
    InstanceDischargeFilter,
    MergedStatusFilter,
)
from portal.admin.helpers import (
    LastOperationChangeList,
    MirrorAdmin,
    change_link,
    choice_label,
    console_action,
    kst,
    last_operation_cell,
    last_operation_subquery,
    report,
    status_badge,
)
from portal.admin.inlines import FloatingIPInline, OperationInline
from portal.admin.markup import format_html
from portal.models import Instance, Operation, power_state_label
from portal.status import MERGED_STATUS_FIELDS, Audience, merged_status
from portal.templatetags.portal_ui import uptime

# The admin action of each power action, and what its confirmation says.
POWER_ACTIONS = {
    Instance.Action.START: "start_vm",
    Instance.Action.STOP: "stop_vm",
    Instance.Action.REBOOT_SOFT: "reboot_soft",
    Instance.Action.REBOOT_HARD: "reboot_hard",
}
POWER_CONFIRMATIONS = {
    Instance.Action.START: (
        gettext_lazy("Start VMs"),
        gettext_lazy("The VMs below are switched on."),
        gettext_lazy("Yes, start them"),
    ),
    Instance.Action.STOP: (
        gettext_lazy("Stop VMs"),
        gettext_lazy(
            "The VMs below are shut down: whatever is unsaved in them is lost, and their "
            "soldiers cannot use them until they are started again."
        ),
        gettext_lazy("Yes, stop them"),
    ),
    Instance.Action.REBOOT_SOFT: (
        gettext_lazy("Reboot VMs"),
        gettext_lazy(
            "The VMs below are restarted: their soldiers' connections drop until they are back."
        ),
        gettext_lazy("Yes, reboot them"),
    ),
    Instance.Action.REBOOT_HARD: (
        gettext_lazy("Hard reboot VMs"),
        gettext_lazy(
            "The VMs below are reset like a power cut and start again: whatever is unsaved in "
            "them is lost."
        ),
        gettext_lazy("Yes, hard reboot them"),
    ),
}


@admin.register(Instance)
class InstanceAdmin(InstanceExportMixin, MirrorAdmin):
    wide_list = True
    # Related facts share a cell so the list fits a laptop screen: status with the pending
    # action, both addresses, launch and end times with the uptime.
    list_display = [
        "name",
        "owner_link",
        "status_cell",
        "power",
        "addresses_cell",
        "host",
        "times_cell",
        "last_operation",
    ]
    list_select_related = ["owner", "pending_operation"]
    # What the columns read (the merged status's fields included); a column reading another
    # field would cost a query per row, which tests/console/test_console_cost.py would catch.
    list_only = [
        *MERGED_STATUS_FIELDS,
        "name",
        "owner__name",
        "owner__service_number",
        "fixed_ip",
        "floating_ip",
        "host",
        "launched_at",
        "launched_at_raw",
        "terminated_at",
        "terminated_at_raw",
        "running_since",
    ]
    list_filter = [
        MergedStatusFilter,
        "power_state",
        ("owner__unit", admin.AllValuesFieldListFilter),
        "template",
        ("host", admin.AllValuesFieldListFilter),
        InstanceDischargeFilter,
        HasDriftFilter,
        FailedOperationsFilter,
    ]
    search_fields = [
        "name",
        "server_id",
        "fixed_ip",
        "floating_ip",
        "host",
        "owner__service_number",
        "owner__name",
        "owner__unit",
        "owner__keystone_user_name",
    ]
    inlines = [FloatingIPInline, OperationInline]
    actions = [
        "start_vm",
        "stop_vm",
        "reboot_soft",
        "reboot_hard",
        "sync_vm",
        "retry_failed",
        "delete_vm",
    ]
    fieldsets = [
        (
            gettext_lazy("Status"),
            {"fields": ["status_summary", "cloud_states", "pending_action", "last_error"]},
        ),
        (
            gettext_lazy("Times (KST; Nova's original and UTC in the tooltip)"),
            {"fields": ["launched", "terminated", "running_since_shown", "uptime_shown"]},
        ),
        (
            gettext_lazy("Owner and template"),
            {"fields": ["owner", "project", "template", "name"]},
        ),
        (
            gettext_lazy("In the cloud"),
            {
                "fields": [
                    "server_id",
                    "host",
                    "requested_host",
                    "availability_zone",
                    "image_name",
                    "image_id",
                    "flavor_name",
                    "flavor_id",
                    "fixed_ip",
                    "floating_ip",
                    "network_name",
                    "network_id",
                    "port_id",
                    "security_group_id",
                    "fault",
                ]
            },
        ),
        (
            gettext_lazy("Engine"),
            {
                "fields": [
                    "request_tag",
                    "pending_operation",
                    "deleted_outside_portal",
                    "last_synced_at",
                    "created_at",
                    "updated_at",
                ]
            },
        ),
    ]
    readonly_fields = [
        "status_summary",
        "cloud_states",
        "launched",
        "terminated",
        "running_since_shown",
        "uptime_shown",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Instance]:
        return (
            super()
            .get_queryset(request)
            .select_related("owner", "pending_operation", "template", "project")
            .annotate(last_op_id=last_operation_subquery("instance"))
        )

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return LastOperationChangeList

    # --- columns and fields --------------------------------------------------------------

    @admin.display(description=gettext_lazy("soldier"), ordering="owner__service_number")
    def owner_link(self, instance: Instance) -> SafeString:
        return change_link(instance.owner)

    @admin.display(description=gettext_lazy("status"))
    def status_badge(self, instance: Instance) -> SafeString:
        return status_badge(instance)

    @admin.display(description=gettext_lazy("status / pending"))
    def status_cell(self, instance: Instance) -> SafeString:
        pending = choice_label(Instance.Action, instance.pending_action)
        return format_html(
            "{}{}",
            status_badge(instance),
            format_html('<br><span class="cs-muted">{}</span>', pending) if pending else "",
        )

    @admin.display(description=gettext_lazy("fixed / floating IP"), ordering="fixed_ip")
    def addresses_cell(self, instance: Instance) -> SafeString:
        return format_html("{}<br>{}", instance.fixed_ip or "—", instance.floating_ip or "—")

    @admin.display(
        description=gettext_lazy("launched / terminated / uptime"), ordering="launched_at"
    )
    def times_cell(self, instance: Instance) -> SafeString:
        up = uptime(instance)
        return format_html(
            "{}{}{}",
            kst(instance.launched_at, instance.launched_at_raw),
            format_html(
                "<br>{} {}", _("ended"), kst(instance.terminated_at, instance.terminated_at_raw)
            )
            if instance.terminated_at
            else "",
            format_html('<br><span class="cs-muted">{} {}</span>', _("up"), up) if up else "",
        )

    @admin.display(description=gettext_lazy("power"), ordering="power_state")
    def power(self, instance: Instance) -> str:
        return power_state_label(instance.power_state)

    @admin.display(description=gettext_lazy("launched"), ordering="launched_at")
    def launched(self, instance: Instance) -> SafeString:
        return kst(instance.launched_at, instance.launched_at_raw)

    @admin.display(description=gettext_lazy("terminated"), ordering="terminated_at")
    def terminated(self, instance: Instance) -> SafeString:
        return kst(instance.terminated_at, instance.terminated_at_raw)

    @admin.display(description=gettext_lazy("running since"))
    def running_since_shown(self, instance: Instance) -> SafeString:
        return kst(instance.running_since)

    @admin.display(description=gettext_lazy("uptime"))
    def uptime_shown(self, instance: Instance) -> str:
        return uptime(instance) or "—"

    @admin.display(description=gettext_lazy("pending"), ordering="pending_action")
    def pending(self, instance: Instance) -> str:
        return instance.get_pending_action_display() or "—"

    @admin.display(description=gettext_lazy("last operation"))
    def last_operation(self, instance: Instance) -> SafeString:
        return last_operation_cell(instance)

    @admin.display(description=gettext_lazy("merged status"))
    def status_summary(self, instance: Instance) -> SafeString:
        st = merged_status(instance, audience=Audience.STAFF)
        return format_html(
            '<span class="{}">{}</span> {}<br><strong>{}</strong> {}{}',
            st.css_class,
            st.label,
            st.explanation,
            _("Next step:") if st.next_step else "",
            st.next_step,
            format_html('<br><span class="cs-problem">{}</span>', st.problem) if st.problem else "",
        )

    @admin.display(description=gettext_lazy("Nova's four fields"))
    def cloud_states(self, instance: Instance) -> SafeString:
        return format_html(
            '<dl class="cs-states"><dt>status</dt><dd>{}</dd><dt>vm_state</dt><dd>{}</dd>'
            "<dt>task_state</dt><dd>{}</dd><dt>power_state</dt><dd>{} ({})</dd></dl>",
            instance.status or "—",
            instance.vm_state or "—",
            instance.task_state or "—",
            power_state_label(instance.power_state),
            "—" if instance.power_state is None else instance.power_state,
        )

    # --- actions -------------------------------------------------------------------------

    def _power(
        self, request: HttpRequest, queryset: QuerySet[Instance], action: Instance.Action
    ) -> HttpResponse | None:
        if not confirm.confirmed(request):
            # A wrong selection would stop a whole company: say what happens to which VMs.
            title, intro, button = POWER_CONFIRMATIONS[action]
            vms = list(queryset.select_related("owner").order_by("owner__service_number", "name"))
            return confirm.action_page(
                self,
                request,
                list(vms),
                action=POWER_ACTIONS[action],
                title=str(title),
                intro=str(intro),
                button=str(button),
                rows=[
                    confirm.ConfirmRow(
                        vm.name,
                        str(vm.owner),
                        str(merged_status(vm, audience=Audience.STAFF).label),
                    )
                    for vm in vms
                ],
                danger=action != Instance.Action.START,
            )
        result = services.batch_apply(
            kind=str(action),
            targets=queryset,
            start=lambda i, batch: services.instance_power(
                instance=i, action=action, requested_by=request.user, batch=batch
            ),
            requested_by=request.user,
        )
        return report(self, request, result)

    @console_action(description=gettext_lazy("Start"))
    def start_vm(self, request: HttpRequest, queryset: QuerySet[Instance]) -> HttpResponse | None:
        return self._power(request, queryset, Instance.Action.START)

    @console_action(description=gettext_lazy("Stop"))
    def stop_vm(self, request: HttpRequest, queryset: QuerySet[Instance]) -> HttpResponse | None:
        return self._power(request, queryset, Instance.Action.STOP)

    @console_action(description=gettext_lazy("Reboot (soft)"))
    def reboot_soft(
        self, request: HttpRequest, queryset: QuerySet[Instance]
    ) -> HttpResponse | None:
        return self._power(request, queryset, Instance.Action.REBOOT_SOFT)

    @console_action(description=gettext_lazy("Reboot (hard)"))
    def reboot_hard(
        self, request: HttpRequest, queryset: QuerySet[Instance]
    ) -> HttpResponse | None:
        return self._power(request, queryset, Instance.Action.REBOOT_HARD)

    @console_action(description=gettext_lazy("Sync with the cloud now"))
    def sync_vm(self, request: HttpRequest, queryset: QuerySet[Instance]) -> HttpResponse | None:
        result = services.batch_apply(
            kind=Operation.Kind.SYNC,
            targets=queryset,
            start=lambda i, batch: services.instance_sync(
                instance=i, requested_by=request.user, batch=batch
            ),
            requested_by=request.user,
        )
        return report(self, request, result)

    @console_action(description=gettext_lazy("Retry the failed operation"))
    def retry_failed(
        self, request: HttpRequest, queryset: QuerySet[Instance]
    ) -> HttpResponse | None:
        from portal.admin.operations import retry_and_report

        failed = Operation.objects.filter(instance__in=queryset, state=Operation.State.FAILED)
        return retry_and_report(self, request, failed)

    @console_action(description=gettext_lazy("Delete VMs…"))
    def delete_vm(self, request: HttpRequest, queryset: QuerySet[Instance]) -> HttpResponse | None:
        if not confirm.confirmed(request):
            return confirm.teardown_page(
                self,
                request,
                queryset,
                action="delete_vm",
                title=_("Delete VMs"),
                intro=_("The servers below are deleted, with the floating IPs the portal made."),
                button=_("Yes, delete them"),
                preview=services.teardown_preview(instances=queryset),
            )
        result = services.batch_apply(
            kind=Operation.Kind.DELETE,
            targets=queryset.select_related("owner"),
            start=lambda i, batch: services.instance_delete(
                instance=i, requested_by=request.user, batch=batch
            ),
            requested_by=request.user,
        )
        return report(self, request, result)
