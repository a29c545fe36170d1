"""Soldiers: the list staff start from, and every action on a soldier's cloud account."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from portal import services
from portal.admin import confirm, preflight
from portal.admin.filters import DischargeWithinFilter, FailedOperationsFilter, HasDriftFilter
from portal.admin.helpers import (
    ConsoleAdmin,
    LastOperationChangeList,
    console_action,
    last_operation_cell,
    last_operation_subquery,
    report,
    tone_badge,
)
from portal.admin.inlines import InstanceInline, SoldierOperationInline
from portal.admin.markup import format_html
from portal.admin.roster import RosterAdminMixin
from portal.models import Operation, Soldier
from portal.openstack.types import ServerStatus
from portal.status import d_day

# What a disable and a discharge do, in the order they do it: the confirmation pages say it.
SHUT_OUT = gettext_lazy(
    "Their cloud account is disabled and their portal sessions end: from now on they can log in "
    "neither to the portal nor to the cloud."
)
VMS_DELETED = gettext_lazy(
    "Every VM below is deleted; the floating IPs the portal made for them are released once the "
    "cloud accepts each delete."
)
A_VM_DELETE_FAILS = gettext_lazy(
    "If a VM cannot be deleted, the operation stops there and names it; the account stays "
    "disabled, and a retry deletes what is left."
)

STATE_TONES: dict[str, str] = {
    Soldier.State.PENDING: "blue",
    Soldier.State.ACTIVE: "green",
    Soldier.State.DISABLED: "grey",
}


class SoldierForm(forms.ModelForm):
    class Meta:
        model = Soldier
        fields = [
            "service_number",
            "name",
            "unit",
            "enlisted_on",
            "discharge_on",
            "keystone_user_name",
        ]

    def clean_keystone_user_name(self) -> str:
        name: str = self.cleaned_data["keystone_user_name"]
        if self.instance.pk is None and get_user_model().objects.filter(username=name).exists():
            raise forms.ValidationError(_("A login with this name already exists."))
        return name


@admin.register(Soldier)
class SoldierAdmin(RosterAdminMixin, ConsoleAdmin):
    wide_list = True
    form = SoldierForm
    list_display = [
        "service_number",
        "name",
        "unit",
        "keystone_user_name",
        "state_badge",
        "discharge",
        "vms",
        "last_operation",
    ]
    list_display_links = ["service_number", "name"]
    list_filter = ["state", "unit", DischargeWithinFilter, HasDriftFilter, FailedOperationsFilter]
    search_fields = [
        "service_number",
        "name",
        "unit",
        "keystone_user_name",
        "keystone_user_id",
        "instances__server_id",
        "instances__fixed_ip",
        "instances__floating_ip",
    ]
    inlines = [InstanceInline, SoldierOperationInline]
    actions = [
        "onboard",
        "launch_vm",
        "sync_now",
        "reset_password",
        "postpone_discharge",
        "retry_failed",
        "disable_soldier",
        "discharge_now",
    ]

    # --- pages --------------------------------------------------------------------------

    def get_inlines(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.inlines if obj is not None else []

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = list(SoldierForm.Meta.fields)
        if obj is not None:
            fields += [
                "discharge_postponed_until",
                "state",
                "keystone_user_id",
                "created_at",
                "updated_at",
            ]
        return fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return []
        # The engine's fields; the cloud name is the project's name once the user exists.
        readonly = [
            "discharge_postponed_until",
            "state",
            "keystone_user_id",
            "created_at",
            "updated_at",
        ]
        if obj.keystone_user_id:
            readonly.append("keystone_user_name")
        return readonly

    def save_model(self, request: HttpRequest, obj: Soldier, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        created = services.soldier_register(
            service_number=obj.service_number,
            name=obj.name,
            keystone_user_name=obj.keystone_user_name,
            unit=obj.unit,
            enlisted_on=obj.enlisted_on,
            discharge_on=obj.discharge_on,
        )
        obj.pk = created.pk
        obj.user_id = created.user_id

    def get_queryset(self, request: HttpRequest) -> QuerySet[Soldier]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                live_vms=Count("instances", filter=~Q(instances__status=ServerStatus.DELETED)),
                last_op_id=last_operation_subquery("soldier"),
            )
        )

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return LastOperationChangeList

    # --- columns ------------------------------------------------------------------------

    @admin.display(description=gettext_lazy("state"), ordering="state")
    def state_badge(self, soldier: Soldier) -> SafeString:
        return tone_badge(soldier.get_state_display(), STATE_TONES.get(soldier.state, "grey"))

    @admin.display(description=gettext_lazy("cloud access ends"), ordering="discharge_on")
    def discharge(self, soldier: Soldier) -> SafeString | str:
        ends = soldier.effective_discharge_on
        if ends is None:
            return "—"
        countdown = (
            d_day(soldier.days_until_discharge) if soldier.state != Soldier.State.DISABLED else ""
        )
        if soldier.discharge_warning:
            return format_html("{} {}", ends.isoformat(), tone_badge(countdown, "amber"))
        return format_html('{} <span class="cs-muted">{}</span>', ends.isoformat(), countdown)

    @admin.display(description=gettext_lazy("VMs"), ordering="live_vms")
    def vms(self, soldier: Soldier) -> int:
        return int(getattr(soldier, "live_vms", 0))

    @admin.display(description=gettext_lazy("last operation"))
    def last_operation(self, soldier: Soldier) -> SafeString:
        return last_operation_cell(soldier)

    # --- actions ------------------------------------------------------------------------

    @console_action(description=gettext_lazy("Onboard (create the cloud account and project)"))
    def onboard(self, request: HttpRequest, queryset: QuerySet[Soldier]) -> HttpResponse | None:
        result = services.batch_apply(
            kind=Operation.Kind.ONBOARD,
            targets=queryset,
            start=lambda s, batch: services.soldier_onboard(
                soldier=s, requested_by=request.user, batch=batch
            ),
            requested_by=request.user,
        )
        return report(self, request, result)

    @console_action(description=gettext_lazy("Launch VMs…"))
    def launch_vm(self, request: HttpRequest, queryset: QuerySet[Soldier]) -> HttpResponse | None:
        return preflight.launch_action(self, request, queryset)

    @console_action(description=gettext_lazy("Sync their VMs with the cloud now"))
    def sync_now(self, request: HttpRequest, queryset: QuerySet[Soldier]) -> HttpResponse | None:
        from portal.models import Instance

        instances = (
            Instance.objects.filter(owner__in=queryset)
            .exclude(status=ServerStatus.DELETED)
            .exclude(server_id__isnull=True)
        )
        result = services.batch_apply(
            kind=Operation.Kind.SYNC,
            targets=instances.select_related("owner"),
            start=lambda i, batch: services.instance_sync(
                instance=i, requested_by=request.user, batch=batch
            ),
            requested_by=request.user,
        )
        return report(self, request, result)

    @console_action(description=gettext_lazy("Reset the cloud password (shown once)"))
    def reset_password(self, request: HttpRequest, queryset: QuerySet[Soldier]) -> HttpResponse:
        if not confirm.confirmed(request):
            soldiers = list(queryset.order_by("service_number"))
            return confirm.action_page(
                self,
                request,
                list(soldiers),
                action="reset_password",
                title=_("Reset cloud passwords"),
                intro=_(
                    "Each soldier below gets a new cloud password, shown once on the next page. "
                    "Their current password stops working at once, and their portal sessions end."
                ),
                button=_("Yes, reset their passwords"),
                rows=[
                    confirm.ConfirmRow(
                        s.keystone_user_name,
                        str(s),
                        s.get_state_display() if s.keystone_user_id else _("no cloud account yet"),
                    )
                    for s in soldiers
                ],
                danger=True,
            )
        rows = []
        for soldier in queryset.order_by("service_number"):
            try:
                reset = services.soldier_password_reset(soldier=soldier, requested_by=request.user)
            except services.OperationRefused as exc:
                rows.append(confirm.ResetRow(soldier, None, str(exc)))
                continue
            rows.append(confirm.ResetRow(soldier, reset.password, reset.operation.message_text))
        return confirm.password_page(self, request, rows)

    @console_action(description=gettext_lazy("Postpone the discharge teardown…"))
    def postpone_discharge(
        self, request: HttpRequest, queryset: QuerySet[Soldier]
    ) -> HttpResponse | None:
        soldiers = list(queryset.order_by("service_number"))
        if not confirm.confirmed(request):
            form = confirm.PostponeForm(initial={"until": confirm.default_postponement(soldiers)})
            return confirm.postpone_page(self, request, soldiers, form)
        form = confirm.PostponeForm(request.POST)
        if not form.is_valid():
            return confirm.postpone_page(self, request, soldiers, form)
        done = 0
        for soldier in soldiers:
            try:
                services.soldier_discharge_postpone(
                    soldier=soldier, until=form.cleaned_data["until"], requested_by=request.user
                )
            except services.OperationRefused as exc:
                self.message_user(request, f"{soldier}: {exc}", messages.WARNING)
                continue
            done += 1
        self.message_user(
            request,
            ngettext(
                "Cloud access of %(count)d soldier kept until %(date)s.",
                "Cloud access of %(count)d soldiers kept until %(date)s.",
                done,
            )
            % {"count": done, "date": form.cleaned_data["until"].isoformat()},
            messages.SUCCESS if done else messages.WARNING,
        )
        return None

    @console_action(description=gettext_lazy("Retry their failed operations"))
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[Soldier]) -> None:
        failed = Operation.objects.filter(soldier__in=queryset, state=Operation.State.FAILED)
        restarted, refusals = services.operations_retry(
            operations=failed, requested_by=request.user
        )
        for refusal in refusals:
            self.message_user(request, refusal, messages.WARNING)
        self.message_user(
            request,
            ngettext(
                "%(count)d failed operation restarted.",
                "%(count)d failed operations restarted.",
                restarted,
            )
            % {"count": restarted},
            messages.SUCCESS if restarted else messages.WARNING,
        )

    @console_action(description=gettext_lazy("Disable (delete their VMs, lock the account)…"))
    def disable_soldier(
        self, request: HttpRequest, queryset: QuerySet[Soldier]
    ) -> HttpResponse | None:
        if not confirm.confirmed(request):
            return confirm.teardown_page(
                self,
                request,
                queryset,
                action="disable_soldier",
                title=_("Disable soldiers"),
                intro=_("The soldier is shut out first, then their VMs go, in this order:"),
                steps=[
                    SHUT_OUT,
                    VMS_DELETED,
                    _(
                        "The soldier is recorded as disabled. Their project and network stay, "
                        "so nothing has to be rebuilt if they come back."
                    ),
                ],
                note=A_VM_DELETE_FAILS,
                button=_("Yes, disable them"),
                preview=services.teardown_preview(soldiers=queryset),
            )
        result = services.batch_apply(
            kind=Operation.Kind.DISABLE,
            targets=queryset,
            start=lambda s, batch: services.soldier_disable(
                soldier=s, requested_by=request.user, batch=batch
            ),
            requested_by=request.user,
        )
        return report(self, request, result)

    @console_action(description=gettext_lazy("Discharge now (delete everything in the cloud)…"))
    def discharge_now(
        self, request: HttpRequest, queryset: QuerySet[Soldier]
    ) -> HttpResponse | None:
        if not confirm.confirmed(request):
            return confirm.teardown_page(
                self,
                request,
                queryset,
                action="discharge_now",
                title=_("Discharge soldiers now"),
                intro=_(
                    "The soldier is shut out first, then everything the portal made for them "
                    "goes, in this order:"
                ),
                steps=[
                    SHUT_OUT,
                    VMS_DELETED,
                    _(
                        "The network the portal made for their project is removed (router "
                        "interface, router, subnet, network)."
                    ),
                    _("The soldier is recorded as disabled."),
                ],
                note=A_VM_DELETE_FAILS,
                button=_("Yes, discharge them now"),
                preview=services.teardown_preview(soldiers=queryset, networks=True),
            )
        return report(
            self,
            request,
            services.soldiers_discharge_now(soldiers=list(queryset), requested_by=request.user),
        )
