"""What every console admin shares: who may act, the action decorator, reporting, small renderers.

Viewers see every page and run nothing: actions need the ``portal.operate_cloud`` permission
(held by the "operators" group), are hidden from everyone else, and a POSTed action name from
anyone else is refused with 403 before Django looks at it, so no operation can start.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.options import ActionLocation
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Choices, Model, OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils.html import format_html_join
from django.utils.safestring import SafeString
from django.utils.text import Truncator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop, ngettext

from portal import services
from portal.admin.markup import format_html
from portal.models import Batch, Operation
from portal.status import Audience, merged_status
from portal.templatetags import portal_ui

OPERATE_PERMISSION = "portal.operate_cloud"
# Django 6.1's Korean catalogue leaves the empty choice of every select (the action menu's too)
# untranslated; the portal's catalogue, first in LOCALE_PATHS, supplies it.
BLANK_CHOICE = gettext_noop("- Select an option -")
EVERYWHERE = [ActionLocation.CHANGE_LIST, ActionLocation.CHANGE_FORM]
ACTION_FIELDS = ("action", f"{ActionLocation.CHANGE_FORM.value}-action")


def can_operate(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_active and user.is_staff and user.has_perm(OPERATE_PERMISSION))


def require_operator(request: HttpRequest) -> None:
    """403 unless the user may run console actions (every POST of a custom page calls it)."""
    if not can_operate(request):
        raise PermissionDenied


def console_action(
    *, description: Any, description_plural: Any = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """An operators-only admin action, offered on the list and on the detail page."""
    return admin.action(
        permissions=["operate"],
        description=description,
        description_plural=description_plural,
        location=EVERYWHERE,
    )


class ConsoleAdmin(admin.ModelAdmin):
    """The base of every console admin: operators act, others only look; nothing is deleted."""

    list_per_page = 50
    show_full_result_count = False  # one COUNT(*) less per page
    # Wide lists hide the admin's navigation sidebar: their columns need the room.
    wide_list = False

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return can_operate(request)

    def action_checkbox(self, obj: Any) -> SafeString:
        """Django's row checkbox, written out: its widget renders a template per row.

        The markup is the widget's own (a unit test compares the two).
        """
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
            ACTION_CHECKBOX_NAME,
            str(obj.pk),
            format_html(_("Select this object for an action - {}"), str(obj)),
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def _refuse_foreign_actions(self, request: HttpRequest) -> None:
        if request.method == "POST" and any(f in request.POST for f in ACTION_FIELDS):
            require_operator(request)

    def _forged_selection(self, request: HttpRequest) -> bool:
        """Whether a POSTed action names rows by something that is not one of this model's ids.

        Django's admin filters ``pk__in`` with the values as sent and fails with a 500 on one
        that is not a number (or too big a one); no page of the console sends such a value.
        """
        if request.method != "POST" or not any(f in request.POST for f in ACTION_FIELDS):
            return False
        pk = self.model._meta.pk
        assert pk is not None
        for value in request.POST.getlist(ACTION_CHECKBOX_NAME):
            try:
                pk.run_validators(pk.to_python(value))  # a number, and one the database holds
            except ValidationError:
                return True
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        self._refuse_foreign_actions(request)
        if self._forged_selection(request):
            self.message_user(
                request, _("The selection was not understood; nothing was done."), messages.ERROR
            )
            return HttpResponseRedirect(request.get_full_path())
        if self.wide_list:
            extra_context = {"is_nav_sidebar_enabled": False, **(extra_context or {})}
        return super().changelist_view(request, extra_context)

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        self._refuse_foreign_actions(request)
        return super().changeform_view(request, object_id, form_url, extra_context)


class MirrorAdmin(ConsoleAdmin):
    """Rows the engine and the reconciler write: nobody adds or edits them by hand."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- after an action -------------------------------------------------------------------------


def batch_url(batch: Batch) -> str:
    return reverse("admin:portal_batch_change", args=[batch.pk])


def report(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    result: services.BulkResult,
) -> HttpResponse | None:
    """Tell what started and what was refused; a batch's page follows its progress."""
    for refusal in result.refusals:
        modeladmin.message_user(request, refusal, messages.WARNING)
    started = len(result.operations)
    if result.batch is not None:
        modeladmin.message_user(
            request,
            ngettext(
                "%(count)d operation started in batch #%(batch)s.",
                "%(count)d operations started in batch #%(batch)s.",
                started,
            )
            % {"count": started, "batch": result.batch.pk},
            messages.SUCCESS,
        )
        if result.refusals:
            modeladmin.message_user(
                request,
                ngettext(
                    "%(count)d row was refused.",
                    "%(count)d rows were refused.",
                    len(result.refusals),
                )
                % {"count": len(result.refusals)},
                messages.WARNING,
            )
        return HttpResponseRedirect(batch_url(result.batch))
    if started:
        op = result.operations[0]
        modeladmin.message_user(
            request,
            _("Started: %(operation)s. Its progress shows on this page.")
            % {"operation": operation_label(op)},
            messages.SUCCESS,
        )
    elif not result.refusals:
        modeladmin.message_user(request, _("Nothing was started."), messages.WARNING)
    return None


@functools.cache
def _choice_labels(choices: type[Choices]) -> dict[Any, Any]:
    return dict(choices.choices)  # lazy labels: translated when shown


def choice_label(choices: type[Choices], value: Any) -> str:
    """What ``get_<field>_display()`` says, without rebuilding the field's choices on each call.

    An unknown value is shown as it is, as Django does.
    """
    label = _choice_labels(choices).get(value)
    if label is None:
        return "" if value is None else str(value)
    return str(label)


def operation_label(op: Operation) -> str:
    return f"{choice_label(Operation.Kind, op.kind)} #{op.pk}"


def selected_ids(request: HttpRequest) -> list[str]:
    return request.POST.getlist(ACTION_CHECKBOX_NAME)


def action_context(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: Iterable[Model],
    *,
    action: str,
    title: str,
) -> dict[str, Any]:
    """What an intermediate page of an action needs to post back to the change list."""
    opts = modeladmin.model._meta
    return {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "opts": opts,
        "app_label": opts.app_label,
        "action_name": action,
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
        "selected": [obj.pk for obj in queryset],
        "changelist_url": reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
        "media": modeladmin.media,
    }


# --- renderers for list columns and detail fields --------------------------------------------


def status_badge(instance: Any) -> SafeString:
    """The merged status as a badge; its explanation in the tooltip (the label says it all)."""
    st = merged_status(instance, audience=Audience.STAFF)
    return format_html(
        '<span class="{}" title="{}">{}</span>', st.css_class, st.explanation, st.label
    )


def tone_badge(text: Any, tone: str) -> SafeString:
    return format_html('<span class="cs-badge cs-tone-{}">{}</span>', tone, text)


OPERATION_TONES: dict[str, str] = {
    Operation.State.QUEUED: "blue",
    Operation.State.RUNNING: "blue",
    Operation.State.SUCCEEDED: "green",
    Operation.State.FAILED: "red",
    Operation.State.CANCELLED: "grey",
    Operation.State.REFUSED: "grey",
}


def operation_state_badge(op: Operation) -> SafeString:
    return tone_badge(
        choice_label(Operation.State, op.state), OPERATION_TONES.get(op.state, "grey")
    )


def kst(value: datetime | None, original: str = "") -> SafeString:
    return SafeString(portal_ui.kst(value, original))


def request_ids(op: Operation) -> SafeString:
    ids = list(op.request_ids or [])[-3:]
    if not ids:
        return SafeString("—")
    return format_html_join(" ", '<code class="cs-reqid">{}</code>', ((i,) for i in ids))


# A stand-in id: a list links every row to the same URL but for the id, so the URL is
# reversed once per model (and script prefix) and each row's id put in its place.
_PK_SLOT = "__pk__"
_CHANGE_URLS: dict[tuple[str, str | None, str], tuple[str, str]] = {}


def change_url(obj: Model) -> str:
    """``reverse("admin:<app>_<model>_change", args=[obj.pk])`` for a row of a list."""
    opts = obj._meta
    name = f"admin:{opts.app_label}_{opts.model_name}_change"
    if not isinstance(obj.pk, int):
        return reverse(name, args=[obj.pk])
    key = (get_script_prefix(), get_urlconf(), name)
    halves = _CHANGE_URLS.get(key)
    if halves is None:
        before, _slot, after = reverse(name, args=[_PK_SLOT]).partition(_PK_SLOT)
        halves = _CHANGE_URLS[key] = (before, after)
    return f"{halves[0]}{obj.pk}{halves[1]}"


def change_link(obj: Model | None, text: Any = None) -> SafeString:
    if obj is None:
        return SafeString("—")
    return format_html('<a href="{}">{}</a>', change_url(obj), obj if text is None else text)


def last_operation_subquery(field: str) -> Subquery:
    """The id of the newest operation of each row (``instance`` or ``soldier``)."""
    return Subquery(
        Operation.objects.filter(**{field: OuterRef("pk")}).order_by("-created_at").values("pk")[:1]
    )


def attach_last_operations(rows: Iterable[Any]) -> None:
    """Load the operations named by ``last_op_id`` in one query and hang them on the rows."""
    rows = list(rows)
    wanted = [r.last_op_id for r in rows if getattr(r, "last_op_id", None)]
    # Only what ``last_operation_cell`` shows: the JSON columns cost a decode per row.
    shown = Operation.objects.only("kind", "state", "message", "message_params")
    found = shown.in_bulk(wanted) if wanted else {}
    for row in rows:
        row.last_op = found.get(getattr(row, "last_op_id", None))


LAST_OPERATION_CHARS = 70


def last_operation_cell(row: Any) -> SafeString:
    op: Operation | None = getattr(row, "last_op", None)
    if op is None:
        return SafeString("—")
    text = op.message_text
    # Truncator's answer for a short text, without building one for each row.
    short = len(text) <= LAST_OPERATION_CHARS and unicodedata.is_normalized("NFC", text)
    return format_html(
        '{} {}<br><span class="cs-muted" title="{}">{}</span>',
        change_link(op, operation_label(op)),
        operation_state_badge(op),
        text,
        text if short else Truncator(text).chars(LAST_OPERATION_CHARS),
    )


def queryset_pks(queryset: QuerySet[Any]) -> list[int]:
    return list(queryset.values_list("pk", flat=True))


class LastOperationChangeList(ChangeList):
    """A change list whose rows carry their newest operation, loaded in one more query."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        # The page's rows only (not ``self.queryset``, which the exports and actions read whole):
        # the joins and columns the list shows, so each row converts and builds only those.
        only = getattr(self.model_admin, "list_only", None)
        if only:
            joins = self.list_select_related
            assert isinstance(joins, list | tuple), "list_only goes with list_select_related"
            self.result_list = (
                self.result_list.select_related(None).select_related(*joins).only(*only)
            )
        attach_last_operations(self.result_list)
