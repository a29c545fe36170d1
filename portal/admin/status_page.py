"""The status page: every live VM with Nova's four fields decoded side by side, self-refreshing."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from portal import services
from portal.admin.helpers import change_url, require_operator
from portal.admin.live import live_response
from portal.admin.markup import format_html
from portal.models import Instance, power_state_label
from portal.openstack import OpenStackError
from portal.status import (
    ATTENTION_KEYS,
    MERGED_STATUS_FIELDS,
    Audience,
    MergedStatus,
    merged_status,
)
from portal.templatetags.portal_ui import kst, uptime

PER_PAGE = 100
# What a row shows: the page loads these columns only.
ROW_FIELDS = (
    *MERGED_STATUS_FIELDS,
    "name",
    "owner__name",
    "owner__service_number",
    "fixed_ip",
    "floating_ip",
    "launched_at",
    "launched_at_raw",
    "terminated_at",
    "terminated_at_raw",
    "running_since",
)


def status_view(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("portal.view_instance"):
        raise PermissionDenied
    with_deleted = request.GET.get("deleted") == "1"
    instances = (
        (Instance.objects.all() if with_deleted else services.live_instances())
        .select_related("owner", "pending_operation")
        .only(*ROW_FIELDS)
    )
    page = Paginator(instances.order_by("owner__service_number", "name", "pk"), PER_PAGE).get_page(
        request.GET.get("page")
    )
    decoded = [(instance, merged_status(instance, audience=Audience.STAFF)) for instance in page]
    moving = sum(1 for _instance, st in decoded if st.transitional)
    counts = services.status_counts()
    # Counted over every live VM, not this page: one broken VM on page 3 is still news.
    attention = sum(s.count for s in counts if s.key in ATTENTION_KEYS)
    parts = []
    if attention:
        parts.append(
            ngettext(
                "%(count)d VM needs attention (error, crashed, paused, suspended, not seen by "
                "its host, gone or a failed action): see the red, amber and purple counts above.",
                "%(count)d VMs need attention (error, crashed, paused, suspended, not seen by "
                "their host, gone or a failed action): see the red, amber and purple counts above.",
                attention,
            )
            % {"count": attention}
        )
    if moving:
        parts.append(
            ngettext(
                "%(count)d VM on this page is changing state.",
                "%(count)d VMs on this page are changing state.",
                moving,
            )
            % {"count": moving}
        )
    text = " ".join(parts) if parts else _("Every VM on this page is settled.")
    context = {
        **admin.site.each_context(request),
        "title": _("VM status"),
        "is_nav_sidebar_enabled": False,  # the table needs the width
        "rows": [status_row(instance, st) for instance, st in decoded],
        "page": page,
        "with_deleted": with_deleted,
        "counts": counts,
        "attention": attention,
        "milestone_text": text,
        "moving": moving,
        "can_operate": request.user.has_perm("portal.operate_cloud"),
    }
    return live_response(
        request, "admin/portal/status.html", context, polling=bool(moving), milestone=str(moving)
    )


def status_row(instance: Instance, st: MergedStatus) -> SafeString:
    """One VM's row of the status table.

    Written here rather than in the template: a hundred rows of twelve cells through template
    tags and filters were most of the page's time (and of every 2 s poll).
    """
    power = instance.power_state
    return format_html(
        "<tr>"
        '<th scope="row"><a href="{}">{}</a></th>'
        '<td>{} <span class="cs-muted">{}</span></td>'
        '<td><span class="{}">{}</span></td>'
        "<td>{}{}</td>"
        "<td><code>{}</code></td>"
        "<td><code>{}</code></td>"
        "<td><code>{}</code></td>"
        "<td>{}{}</td>"
        "<td>{}{}</td>"
        "<td>{}{}</td>"
        "<td>{}</td>"
        "<td>{}{}{}</td>"
        "</tr>",
        change_url(instance),
        instance.name,
        instance.owner.name,
        instance.owner.service_number,
        st.css_class,
        st.label,
        instance.fixed_ip or "—",
        format_html("<br><strong>{}</strong>", instance.floating_ip)
        if instance.floating_ip
        else "",
        instance.status or "—",
        instance.vm_state or "—",
        instance.task_state or "—",
        power_state_label(power),
        "" if power is None else format_html(' <span class="cs-muted">({})</span>', power),
        kst(instance.launched_at, instance.launched_at_raw),
        _raw_time(instance.launched_at_raw),
        kst(instance.terminated_at, instance.terminated_at_raw),
        _raw_time(instance.terminated_at_raw),
        uptime(instance) or "—",
        st.explanation,
        format_html(" <strong>{}</strong>", st.next_step) if st.next_step else "",
        format_html('<br><span class="cs-problem">{}</span>', st.problem) if st.problem else "",
    )


def _raw_time(original: str) -> SafeString | str:
    """Nova's own string under a shown time."""
    return format_html('<br><code class="cs-muted">{}</code>', original) if original else ""


def measure_capacity(request: HttpRequest) -> HttpResponse:
    """Measure the external network's free floating IPs now (one Neutron call), for the index."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    require_operator(request)
    try:
        snapshot = services.cloud_capacity_measure()
    except (OpenStackError, services.OperationRefused) as exc:
        messages.error(request, _("The cloud did not answer (%(error)s).") % {"error": exc})
    else:
        messages.success(
            request,
            _("%(count)s floating IPs are free on the external network.")
            % {"count": snapshot.free_floating_ips},
        )
    return HttpResponseRedirect(reverse("admin:index"))


def reconcile_now(request: HttpRequest) -> HttpResponse:
    """Start a sync pass over every server and floating IP now (what the scheduler does)."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    require_operator(request)
    try:
        op = services.cloud_reconcile(requested_by=request.user)
    except services.OperationRefused as exc:
        messages.warning(request, str(exc))
    else:
        messages.success(
            request,
            _("Sync #%(id)s started: the mirror is refreshed from the cloud in a moment.")
            % {"id": op.pk},
        )
    target = request.POST.get("next", "")
    safe = url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()})
    return HttpResponseRedirect(target if safe else reverse("admin:index"))
