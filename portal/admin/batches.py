"""Batches: the list, and the batch page (Batch's change view) with live progress per row."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from portal import services
from portal.admin.helpers import (
    MirrorAdmin,
    can_operate,
    console_action,
    kst,
    require_operator,
)
from portal.admin.live import live_response
from portal.models import Batch, Instance, Operation
from portal.services.roster_imports import BATCH_KIND as ROSTER_BATCH_KIND

# A batch's kind is the action it ran: an operation kind or a VM power action.
KIND_LABELS: dict[str, Any] = {
    **{str(a): label for a, label in Instance.Action.choices},
    **dict(Operation.Kind.choices),
    # A roster's onboarding batch; without it the page title showed the raw "roster_import".
    ROSTER_BATCH_KIND: gettext_lazy("Import roster"),
}


def kind_label(kind: str) -> str:
    return str(KIND_LABELS.get(kind, kind))


def milestone(batch: Batch, active: bool) -> tuple[str, str]:
    """A key that changes at 0/25/50/75 % and at the end, and the sentence announced then."""
    if not active:
        return "done", _(
            "Batch #%(id)s finished: %(succeeded)s succeeded, %(failed)s failed, "
            "%(cancelled)s cancelled."
        ) % {
            "id": batch.pk,
            "succeeded": batch.succeeded,
            "failed": batch.failed,
            "cancelled": batch.cancelled,
        }
    quarter = 0 if not batch.total else min(3, 4 * batch.done // batch.total)
    return f"q{quarter}", _("Batch #%(id)s: %(done)s of %(total)s done.") % {
        "id": batch.pk,
        "done": batch.done,
        "total": batch.total,
    }


@admin.register(Batch)
class BatchAdmin(MirrorAdmin):
    list_display = [
        "id",
        "kind_shown",
        "progress",
        "succeeded",
        "failed",
        "cancelled",
        "requested_by",
        "created",
        "ended",
    ]
    list_display_links = ["id", "kind_shown"]
    list_select_related = ["requested_by"]
    list_filter = ["kind"]
    actions = ["retry_failed_rows", "cancel_not_started"]

    @admin.display(description=gettext_lazy("action"), ordering="kind")
    def kind_shown(self, batch: Batch) -> str:
        return kind_label(batch.kind)

    @admin.display(description=gettext_lazy("progress"))
    def progress(self, batch: Batch) -> SafeString:
        return format_html(
            '<progress max="{}" value="{}">{} %</progress> {}/{}',
            batch.total or 1,
            batch.done,
            batch.percent,
            batch.done,
            batch.total,
        )

    @admin.display(description=gettext_lazy("created"), ordering="created_at")
    def created(self, batch: Batch) -> SafeString:
        return kst(batch.created_at)

    @admin.display(description=gettext_lazy("finished"), ordering="finished_at")
    def ended(self, batch: Batch) -> SafeString:
        return kst(batch.finished_at)

    # --- the batch page -------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/retry/", wrap(self.retry_view), name="portal_batch_retry"),
            path("<int:pk>/cancel/", wrap(self.cancel_view), name="portal_batch_cancel"),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        batch = get_object_or_404(Batch, pk=object_id)
        if request.method == "POST" or not self.has_view_permission(request, batch):
            raise PermissionDenied  # read-only: its buttons post to their own URLs
        rows = list(
            batch.operations.select_related("soldier", "instance", "instance__owner").order_by("pk")
        )
        counts: dict[str, int] = {}
        for op in rows:
            counts[op.state] = counts.get(op.state, 0) + 1
        # The figures shown come from these rows: the batch's stored counters were read by
        # another query and can be a commit behind them (the bar then stopped short of 100 %).
        batch.succeeded = counts.get(Operation.State.SUCCEEDED, 0)
        batch.failed = counts.get(Operation.State.FAILED, 0)
        batch.cancelled = counts.get(Operation.State.CANCELLED, 0)
        active = any(op.state in Operation.ACTIVE_STATES for op in rows)
        key, text = milestone(batch, active)
        context = {
            **self.admin_site.each_context(request),
            **(extra_context or {}),
            "title": _("Batch #%(id)s: %(kind)s")
            % {"id": batch.pk, "kind": kind_label(batch.kind)},
            "opts": self.model._meta,
            "is_nav_sidebar_enabled": False,  # the table needs the width
            "batch": batch,
            "rows": rows,
            "counts": [
                (label, counts.get(state, 0), state) for state, label in Operation.State.choices
            ],
            "milestone_text": text,
            "can_operate": can_operate(request),
            "failed_count": counts.get(Operation.State.FAILED, 0),
            "queued_count": counts.get(Operation.State.QUEUED, 0),
            "retry_url": reverse("admin:portal_batch_retry", args=[batch.pk]),
            "cancel_url": reverse("admin:portal_batch_cancel", args=[batch.pk]),
        }
        return live_response(
            request, "admin/portal/batch.html", context, polling=active, milestone=key
        )

    def retry_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        return self._act(request, pk, retry=True)

    def cancel_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        return self._act(request, pk, retry=False)

    def _act(self, request: HttpRequest, pk: int, *, retry: bool) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        require_operator(request)
        batch = get_object_or_404(Batch, pk=pk)
        self._report(request, batch, retry=retry)
        return HttpResponseRedirect(reverse("admin:portal_batch_change", args=[batch.pk]))

    def _report(self, request: HttpRequest, batch: Batch, *, retry: bool) -> None:
        if retry:
            count = services.batch_retry_failed(batch=batch, requested_by=request.user)
            text = ngettext(
                "%(count)d failed row restarted.", "%(count)d failed rows restarted.", count
            )
        else:
            count = services.batch_cancel_pending(batch=batch, requested_by=request.user)
            text = ngettext(
                "%(count)d row that had not started was cancelled.",
                "%(count)d rows that had not started were cancelled.",
                count,
            )
        self.message_user(
            request,
            f"#{batch.pk}: " + text % {"count": count},
            messages.SUCCESS if count else messages.WARNING,
        )

    @console_action(description=gettext_lazy("Retry the failed rows"))
    def retry_failed_rows(self, request: HttpRequest, queryset: QuerySet[Batch]) -> None:
        for batch in queryset:
            self._report(request, batch, retry=True)

    @console_action(description=gettext_lazy("Cancel the rows not started"))
    def cancel_not_started(self, request: HttpRequest, queryset: QuerySet[Batch]) -> None:
        for batch in queryset:
            self._report(request, batch, retry=False)
