"""Roster import in the staff console, as a mixin for the Soldier admin.

``RosterAdminMixin`` adds to the Soldier admin: Import roster (upload → preview → confirm, custom
views from ``get_urls`` wrapped in ``admin_site.admin_view``) and, through
``portal.admin.exports``, the soldier exports. The views only parse, authorize, call one service
of ``portal.services.roster_imports`` and render; the rules live in ``portal.rosterfile`` and
``portal.validation``. Everything here calls ``super()``, so the mixins stack with the rest of
the console.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_POST

from portal import services
from portal.admin.exports import SoldierExportMixin
from portal.admin.helpers import can_operate
from portal.models import RosterUpload
from portal.rosterfile.columns import COLUMNS
from portal.rosterfile.read import RosterFileError
from portal.rosterfile.rows import Action, Preview

# Room for the multipart envelope and the CSRF token around the file itself.
_FORM_OVERHEAD_BYTES = 64 * 1024


class RosterUploadForm(forms.Form):
    file = forms.FileField(
        label=_("Roster file (.xlsx or .csv)"),
        widget=forms.ClearableFileInput(attrs={"accept": ".xlsx,.csv,.txt"}),
    )

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        limit = int(settings.ROSTER_MAX_UPLOAD_BYTES)
        if upload.size > limit:
            raise forms.ValidationError(_too_big_message(upload.size, limit))
        return upload


class RosterConfirmForm(forms.Form):
    """Two fields whatever the row count (DATA_UPLOAD_MAX_NUMBER_FIELDS): file and preview."""

    sha256 = forms.CharField(max_length=64, widget=forms.HiddenInput)
    digest = forms.CharField(max_length=64, widget=forms.HiddenInput)


def _too_big_message(size: int, limit: int) -> str:
    return gettext(
        "The file is %(size)s KiB; the import takes files up to %(limit)s KiB "
        "(ROSTER_MAX_UPLOAD_BYTES). Split it into smaller files."
    ) % {"size": size // 1024, "limit": limit // 1024}


class RosterAdminMixin(SoldierExportMixin):
    """Import roster (dry run first, then one batch); the soldier exports come with it."""

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        wrap = self.admin_site.admin_view
        return [
            path(
                "roster/import/",
                wrap(self._bounded(self.roster_upload_view)),
                name="{}_{}_roster_import".format(*info),
            ),
            path(
                "roster/<int:upload_id>/",
                wrap(self.roster_preview_view),
                name="{}_{}_roster_preview".format(*info),
            ),
            path(
                "roster/<int:upload_id>/confirm/",
                wrap(require_POST(self.roster_confirm_view)),
                name="{}_{}_roster_confirm".format(*info),
            ),
            *super().get_urls(),
        ]

    def _bounded(self, view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        """Refuse an oversized upload before Django reads it into a temporary file.

        The size check must come before anything reads ``request.POST``, CSRF included, so
        CSRF is checked here, after it, instead of by ``admin_view``.
        """

        @csrf_exempt
        def bounded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            limit = int(settings.ROSTER_MAX_UPLOAD_BYTES)
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if request.method == "POST" and length > limit + _FORM_OVERHEAD_BYTES:
                return csrf_protect(self._refuse_oversized)(request, length, limit)
            return csrf_protect(view)(request, *args, **kwargs)

        return bounded

    def _refuse_oversized(self, request: HttpRequest, length: int, limit: int) -> HttpResponse:
        self._require_import_permission(request)
        return self._render_upload(
            request, RosterUploadForm(), error=_too_big_message(length, limit), status=413
        )

    def _can_import(self, request: HttpRequest) -> bool:
        # An import queues onboarding and launches: operators only, like every console action.
        return (
            can_operate(request)
            and self.has_add_permission(request)
            and self.has_change_permission(request)
        )

    def _require_import_permission(self, request: HttpRequest) -> None:
        if not self._can_import(request):
            raise PermissionDenied

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = {"can_import_roster": self._can_import(request), **(extra_context or {})}
        return super().changelist_view(request, extra_context=context)

    def _context(self, request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "max_rows": int(settings.ROSTER_MAX_ROWS),
            "max_kib": int(settings.ROSTER_MAX_UPLOAD_BYTES) // 1024,
            "columns": COLUMNS,
            **extra,
        }

    def _render_upload(
        self, request: HttpRequest, form: RosterUploadForm, *, error: str = "", status: int = 200
    ) -> HttpResponse:
        return TemplateResponse(
            request,
            "admin/portal/soldier/roster_import.html",
            self._context(request, gettext("Import roster"), form=form, error=error),
            status=status,
        )

    def roster_upload_view(self, request: HttpRequest) -> HttpResponse:
        self._require_import_permission(request)
        if request.method != "POST":
            return self._render_upload(request, RosterUploadForm())
        form = RosterUploadForm(request.POST, request.FILES)
        if not form.is_valid():
            return self._render_upload(request, form)
        upload_file = form.cleaned_data["file"]
        try:
            upload = services.roster_upload_store(
                uploaded_by=request.user, filename=upload_file.name, data=upload_file.read()
            )
        except RosterFileError as exc:
            form.add_error("file", str(exc))
            return self._render_upload(request, form)
        info = self.opts.app_label, self.opts.model_name
        return HttpResponseRedirect(
            reverse("admin:{}_{}_roster_preview".format(*info), args=[upload.pk])
        )

    def _upload(self, request: HttpRequest, upload_id: int) -> RosterUpload:
        # Each person confirms only what they uploaded themselves.
        return get_object_or_404(RosterUpload, pk=upload_id, uploaded_by=request.user)

    def _render_preview(
        self,
        request: HttpRequest,
        upload: RosterUpload,
        preview: Preview,
        *,
        error: str = "",
    ) -> HttpResponse:
        show = request.GET.get("show", "")
        rows = [r for r in preview.rows if r.action == show] if show in Action.ALL else None
        totals = preview.totals
        filters = [("", gettext("All rows"), len(preview.rows))] + [
            (action, str(Action.LABELS[action]), totals[action]) for action in Action.ALL
        ]
        return TemplateResponse(
            request,
            "admin/portal/soldier/roster_preview.html",
            self._context(
                request,
                gettext("Import roster: preview"),
                upload=upload,
                preview=preview,
                rows=preview.rows if rows is None else rows,
                show=show if rows is not None else "",
                filters=filters,
                totals=totals,
                writes=totals[Action.CREATE] + totals[Action.UPDATE],
                confirm_form=RosterConfirmForm(
                    initial={"sha256": upload.sha256, "digest": preview.digest}
                ),
                error=error,
            ),
        )

    def roster_preview_view(self, request: HttpRequest, upload_id: int) -> HttpResponse:
        self._require_import_permission(request)
        upload = self._upload(request, upload_id)
        if upload.confirmed_at is not None:
            return self._already_imported(request, upload)
        try:
            preview = services.roster_preview(upload=upload)
        except RosterFileError as exc:
            return self._render_upload(request, RosterUploadForm(), error=str(exc))
        return self._render_preview(request, upload, preview)

    def _already_imported(self, request: HttpRequest, upload: RosterUpload) -> HttpResponse:
        self.message_user(request, gettext("This file has already been imported."), messages.INFO)
        if upload.batch_id is not None:
            return HttpResponseRedirect(
                reverse("admin:portal_batch_change", args=[upload.batch_id])
            )
        info = self.opts.app_label, self.opts.model_name
        return HttpResponseRedirect(reverse("admin:{}_{}_changelist".format(*info)))

    def roster_confirm_view(self, request: HttpRequest, upload_id: int) -> HttpResponse:
        self._require_import_permission(request)
        upload = self._upload(request, upload_id)
        if upload.confirmed_at is not None:
            return self._already_imported(request, upload)
        info = self.opts.app_label, self.opts.model_name
        form = RosterConfirmForm(request.POST)
        if not form.is_valid():
            self.message_user(
                request, gettext("The confirmation was incomplete; confirm again."), messages.ERROR
            )
            return HttpResponseRedirect(
                reverse("admin:{}_{}_roster_preview".format(*info), args=[upload.pk])
            )
        try:
            result = services.roster_import(
                upload=upload,
                sha256=form.cleaned_data["sha256"],
                digest=form.cleaned_data["digest"],
                requested_by=request.user,
            )
        except services.RosterStale as exc:
            return self._render_preview(request, upload, exc.preview, error=str(exc))
        except services.OperationRefused as exc:  # RosterRefused, or a service's own refusal
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:{}_{}_roster_import".format(*info)))
        except RosterFileError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:{}_{}_roster_import".format(*info)))
        totals = result.preview.totals
        self.message_user(
            request,
            gettext(
                "Roster imported: %(created)s new, %(updated)s changed, %(unchanged)s unchanged, "
                "%(rejected)s rejected; %(queued)s cloud operations queued."
            )
            % {
                "created": result.created,
                "updated": result.updated,
                "unchanged": totals[Action.UNCHANGED],
                "rejected": totals[Action.REJECTED],
                "queued": result.queued,
            },
            messages.SUCCESS,
        )
        if result.refusals:
            self.message_user(
                request,
                ngettext(
                    "%(count)s row could not be queued: %(list)s",
                    "%(count)s rows could not be queued: %(list)s",
                    len(result.refusals),
                )
                % {"count": len(result.refusals), "list": "; ".join(result.refusals[:20])},
                messages.WARNING,
            )
        if result.batch is not None:
            return HttpResponseRedirect(
                reverse("admin:portal_batch_change", args=[result.batch.pk])
            )
        return HttpResponseRedirect(reverse("admin:{}_{}_changelist".format(*info)))
