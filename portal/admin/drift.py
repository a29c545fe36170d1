"""The drift page: what the reconciler found that does not match, each with its fix.

The page is Drift's change list, open rows first. Fixes that touch only what the portal owns,
or nothing in the cloud (release the portal's floating IP, record a VM deleted outside,
ignore), are one button; a fix that needs a choice (adopt for which soldier, link to which
soldier) or that acts on something the portal does not own (delete a server, disable a user)
goes through its own page first, which says so.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from portal import services
from portal.admin.filters import DriftStateFilter
from portal.admin.helpers import (
    MirrorAdmin,
    can_operate,
    console_action,
    kst,
    operation_label,
    require_operator,
    tone_badge,
)
from portal.models import Drift, FloatingIP, Instance, Project, Soldier

# Fixes that are one button on the page; the others open their own page first.
ONE_CLICK = {"release_ip", "mark_terminated"}
NEEDS_SOLDIER = {"adopt", "link_user"}
SERVER_KINDS = (Drift.Kind.UNOWNED_SERVER, Drift.Kind.FOREIGN_SERVER)
FIX_LABELS = {
    "adopt": gettext_lazy("Adopt as a soldier's VM"),
    "delete_server": gettext_lazy("Delete the server…"),
    "release_ip": gettext_lazy("Release the floating IP"),
    "mark_terminated": gettext_lazy("Record as deleted"),
    "link_user": gettext_lazy("Link to a soldier"),
    "disable_user": gettext_lazy("Disable the user…"),
    "ignore": gettext_lazy("Ignore"),
}


def user_name(drift: Drift) -> str:
    """The Keystone user name reconcile wrote in the detail (" (disabled)" aside)."""
    return drift.detail.removesuffix(" (disabled)")


class DriftChangeList(ChangeList):
    """Rows carry what their buttons need (the likely soldier, the portal's IPs): two queries."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        rows = list(self.result_list)
        owners = {
            p.keystone_id: p.soldier
            for p in Project.objects.filter(
                keystone_id__in={r.project_keystone_id for r in rows if r.project_keystone_id}
            ).select_related("soldier")
        }
        names = {
            s.keystone_user_name: s
            for s in Soldier.objects.filter(
                keystone_user_id="", keystone_user_name__in={user_name(r) for r in rows}
            )
        }
        owned = set(
            FloatingIP.objects.filter(
                neutron_id__in=[r.resource_id for r in rows],
                created_by_portal=True,
                released_at__isnull=True,
            ).values_list("neutron_id", flat=True)
        )
        may_fix = can_operate(request)
        for row in rows:
            row.may_fix = may_fix
            row.likely_soldier = (
                owners.get(row.project_keystone_id)
                if row.kind in SERVER_KINDS
                else names.get(user_name(row))
                if row.kind == Drift.Kind.USER_WITHOUT_SOLDIER
                else None
            )
            row.portal_owned = row.resource_id in owned


class SoldierChoiceForm(forms.Form):
    soldier = forms.ModelChoiceField(
        label=gettext_lazy("Soldier"),
        queryset=Soldier.objects.exclude(state=Soldier.State.DISABLED).order_by("service_number"),
    )


def _fix_url(drift: Drift, fix: str) -> str:
    return reverse("admin:portal_drift_fix", args=[drift.pk, fix])


@admin.register(Drift)
class DriftAdmin(MirrorAdmin):
    wide_list = True
    list_display = [
        "kind_shown",
        "resource",
        "last_seen",
        "state_shown",
        "fixes",
    ]
    list_display_links = None
    list_filter = [DriftStateFilter, "kind"]
    search_fields = ["resource_id", "detail", "project_keystone_id"]
    actions = ["ignore_drift"]

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return DriftChangeList

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<int:pk>/fix/<str:fix>/",
                self.admin_site.admin_view(self.fix_view),
                name="portal_drift_fix",
            ),
            *super().get_urls(),
        ]

    # --- columns ---------------------------------------------------------------------------

    @admin.display(description=gettext_lazy("kind"), ordering="kind")
    def kind_shown(self, drift: Drift) -> str:
        return drift.get_kind_display()

    @admin.display(description=gettext_lazy("resource"), ordering="resource_id")
    def resource(self, drift: Drift) -> SafeString:
        return format_html(
            '<strong>{}</strong><br><code class="cs-reqid">{}</code>{}',
            drift.detail or "—",
            drift.resource_id,
            format_html(
                '<br><span class="cs-muted">{} {}</span>', _("project"), drift.project_keystone_id
            )
            if drift.project_keystone_id
            else "",
        )

    @admin.display(description=gettext_lazy("seen"), ordering="last_seen_at")
    def last_seen(self, drift: Drift) -> SafeString:
        return format_html(
            '{}<br><span class="cs-muted">{} {}</span>',
            kst(drift.last_seen_at),
            _("first"),
            kst(drift.first_seen_at),
        )

    @admin.display(description=gettext_lazy("state"))
    def state_shown(self, drift: Drift) -> SafeString:
        if drift.resolved_at:
            return tone_badge(_("resolved"), "green")
        if drift.ignored_at:
            return tone_badge(_("ignored"), "grey")
        return tone_badge(_("open"), "amber")

    @admin.display(description=gettext_lazy("fix"))
    def fixes(self, drift: Drift) -> SafeString:
        if not getattr(drift, "may_fix", False) or drift.resolved_at or drift.ignored_at:
            return SafeString("")
        parts: list[SafeString] = []
        for fix in services.FIXES.get(drift.kind, ()):
            if fix == "release_ip" and not getattr(drift, "portal_owned", False):
                parts.append(
                    format_html('<span class="cs-muted">{}</span>', _("not created by the portal"))
                )
                continue
            likely: Soldier | None = getattr(drift, "likely_soldier", None)
            if fix in ONE_CLICK:
                parts.append(_button(_fix_url(drift, fix), FIX_LABELS[fix]))
            elif fix in NEEDS_SOLDIER and likely is not None:
                parts.append(
                    _button(
                        f"{_fix_url(drift, fix)}?soldier={likely.pk}",
                        format_html("{} ({})", FIX_LABELS[fix], likely),
                    )
                )
            if fix not in ONE_CLICK:
                parts.append(
                    format_html(
                        '<a class="cs-link-button" href="{}">{}</a>',
                        _fix_url(drift, fix),
                        _("Choose a soldier…") if fix in NEEDS_SOLDIER else FIX_LABELS[fix],
                    )
                )
        parts.append(_button(_fix_url(drift, "ignore"), FIX_LABELS["ignore"]))
        return format_html_join(" ", "{}", ((p,) for p in parts))

    # --- fixes -------------------------------------------------------------------------------

    def fix_view(self, request: HttpRequest, pk: int, fix: str) -> HttpResponse:
        drift = get_object_or_404(Drift, pk=pk)
        if fix != "ignore" and fix not in services.FIXES.get(drift.kind, ()):
            raise Http404
        if request.method == "POST":
            require_operator(request)
            form = SoldierChoiceForm(request.POST or None)
            soldier_id = request.GET.get("soldier") or request.POST.get("soldier")
            if fix in NEEDS_SOLDIER:
                form = SoldierChoiceForm({"soldier": soldier_id})
                if not form.is_valid():
                    return self._fix_page(request, drift, fix, form)
            return self._start(request, drift, fix, form)
        if not self.has_view_permission(request):
            raise Http404
        initial = {}
        likely = self._likely_soldier(drift)
        if likely is not None:
            initial["soldier"] = likely.pk
        return self._fix_page(request, drift, fix, SoldierChoiceForm(initial=initial))

    def _likely_soldier(self, drift: Drift) -> Soldier | None:
        if drift.kind in SERVER_KINDS:
            project = Project.objects.filter(keystone_id=drift.project_keystone_id).first()
            return project.soldier if project else None
        return Soldier.objects.filter(
            keystone_user_name=user_name(drift), keystone_user_id=""
        ).first()

    def _fix_page(
        self, request: HttpRequest, drift: Drift, fix: str, form: SoldierChoiceForm
    ) -> TemplateResponse:
        instance = Instance.objects.filter(server_id=drift.resource_id).first()
        context = {
            **self.admin_site.each_context(request),
            "title": str(FIX_LABELS.get(fix, fix)).rstrip("…"),
            "opts": self.model._meta,
            "drift": drift,
            "fix": fix,
            "form": form if fix in NEEDS_SOLDIER else None,
            "instance": instance,
            "released": list(
                instance.floating_ips.filter(created_by_portal=True, released_at__isnull=True)
            )
            if instance
            else [],
            "portal_owned": FloatingIP.objects.filter(
                neutron_id=drift.resource_id, created_by_portal=True
            ).exists(),
            "can_operate": can_operate(request),
            "changelist_url": reverse("admin:portal_drift_changelist"),
        }
        return TemplateResponse(request, "admin/portal/drift_fix.html", context)

    def _start(
        self, request: HttpRequest, drift: Drift, fix: str, form: SoldierChoiceForm
    ) -> HttpResponse:
        who = request.user
        try:
            if fix == "ignore":
                services.drift_ignore(drift=drift, requested_by=who)
                self.message_user(request, _("Ignored: %(drift)s") % {"drift": drift})
                return HttpResponseRedirect(reverse("admin:portal_drift_changelist"))
            soldier: Any = form.cleaned_data.get("soldier") if fix in NEEDS_SOLDIER else None
            starters = {
                "adopt": lambda: services.drift_adopt_server(
                    drift=drift, soldier=soldier, requested_by=who
                ),
                "delete_server": lambda: services.drift_delete_server(
                    drift=drift, requested_by=who
                ),
                "release_ip": lambda: services.drift_release_floating_ip(
                    drift=drift, requested_by=who
                ),
                "mark_terminated": lambda: services.drift_mark_terminated(
                    drift=drift, requested_by=who
                ),
                "link_user": lambda: services.drift_link_user(
                    drift=drift, soldier=soldier, requested_by=who
                ),
                "disable_user": lambda: services.drift_disable_user(drift=drift, requested_by=who),
            }
            op = starters[fix]()
        except services.OperationRefused as exc:
            self.message_user(request, str(exc), messages.WARNING)
        else:
            self.message_user(
                request,
                _("Started: %(operation)s for %(drift)s.")
                % {"operation": operation_label(op), "drift": drift},
                messages.SUCCESS,
            )
        return HttpResponseRedirect(reverse("admin:portal_drift_changelist"))

    @console_action(description=gettext_lazy("Ignore (keep listed apart)"))
    def ignore_drift(self, request: HttpRequest, queryset: QuerySet[Drift]) -> None:
        done = 0
        for drift in queryset:
            try:
                services.drift_ignore(drift=drift, requested_by=request.user)
            except services.OperationRefused:
                continue
            done += 1
        self.message_user(
            request,
            ngettext("%(count)d row ignored.", "%(count)d rows ignored.", done) % {"count": done},
        )


def _button(url: str, label: Any) -> SafeString:
    # Inside the change list's form (forms cannot nest): the button posts it to the fix's URL.
    return format_html(
        '<button type="submit" class="cs-button" formaction="{}" formmethod="post">{}</button>',
        url,
        label,
    )
