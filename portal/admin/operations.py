"""Operations: every action on the cloud, with its step, message and the cloud's request ids."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from portal import services
from portal.admin.helpers import (
    MirrorAdmin,
    change_link,
    console_action,
    kst,
    operation_state_badge,
    request_ids,
)
from portal.models import Operation


def retry_and_report(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    failed: QuerySet[Operation],
) -> HttpResponse | None:
    """Retry failed operations; when they all belong to one batch, its page follows them.

    A retried operation resumes in place (same row, same batch, from its failed step), so it
    is followed on the batch it already belongs to rather than in a new one.
    """
    failed = failed.filter(state=Operation.State.FAILED)
    batches = set(failed.values_list("batch_id", flat=True))
    restarted, refusals = services.operations_retry(
        operations=list(failed), requested_by=request.user
    )
    for refusal in refusals:
        modeladmin.message_user(request, refusal, messages.WARNING)
    modeladmin.message_user(
        request,
        ngettext(
            "%(count)d failed operation restarted from the step where it stopped.",
            "%(count)d failed operations restarted from the step where they stopped.",
            restarted,
        )
        % {"count": restarted},
        messages.SUCCESS if restarted else messages.WARNING,
    )
    if restarted and len(batches) == 1 and None not in batches:
        return HttpResponseRedirect(reverse("admin:portal_batch_change", args=[batches.pop()]))
    return None


@admin.register(Operation)
class OperationAdmin(MirrorAdmin):
    wide_list = True
    list_display = [
        "id",
        "kind",
        "state_badge",
        "target",
        "message_cell",
        "times_cell",
        "batch_link",
    ]
    list_select_related = ["soldier", "instance", "batch"]
    list_filter = ["state", "kind"]
    search_fields = [
        "=id",
        "soldier__name",
        "soldier__service_number",
        "instance__name",
        "instance__server_id",
        "request_ids",
        "error_detail",
    ]
    actions = ["retry_failed"]
    fields = [
        "kind",
        "state",
        "step",
        "message_shown",
        "error_detail",
        "request_ids_shown",
        "soldier",
        "instance",
        "batch",
        "requested_by",
        "params",
        "progress",
        "attempts",
        "retries",
        "lock_key",
        "claim",
        "lease_expires_at",
        "run_after",
        "deadline_at",
        "created",
        "started_at",
        "ended",
    ]
    readonly_fields = ["message_shown", "request_ids_shown", "created", "ended"]

    @admin.display(description=gettext_lazy("state"), ordering="state")
    def state_badge(self, op: Operation) -> SafeString:
        return operation_state_badge(op)

    @admin.display(description=gettext_lazy("target"))
    def target(self, op: Operation) -> SafeString:
        return change_link(op.instance) if op.instance_id else change_link(op.soldier)

    @admin.display(description=gettext_lazy("message"))
    def message_shown(self, op: Operation) -> str:
        return op.message_text

    @admin.display(description=gettext_lazy("message / step / OpenStack request ids"))
    def message_cell(self, op: Operation) -> SafeString:
        return format_html(
            "{}{}<br>{}",
            op.message_text or "—",
            format_html('<br><span class="cs-muted">{} {}</span>', _("step"), op.step)
            if op.step
            else "",
            request_ids(op),
        )

    @admin.display(description=gettext_lazy("created / finished"), ordering="created_at")
    def times_cell(self, op: Operation) -> SafeString:
        return format_html("{}<br>{}", kst(op.created_at), kst(op.finished_at))

    @admin.display(description=gettext_lazy("OpenStack request ids"))
    def request_ids_shown(self, op: Operation) -> SafeString:
        return request_ids(op)

    @admin.display(description=gettext_lazy("created"), ordering="created_at")
    def created(self, op: Operation) -> SafeString:
        return kst(op.created_at)

    @admin.display(description=gettext_lazy("finished"), ordering="finished_at")
    def ended(self, op: Operation) -> SafeString:
        return kst(op.finished_at)

    @admin.display(description=gettext_lazy("batch"))
    def batch_link(self, op: Operation) -> SafeString:
        return change_link(op.batch, f"#{op.batch_id}") if op.batch_id else SafeString("—")

    @console_action(description=gettext_lazy("Retry (from the step where it stopped)"))
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[Operation]) -> Any:
        return retry_and_report(self, request, queryset)
