"""CSV and Excel exports in the staff console, as mixins for the Soldier and Instance admins.

The views only authorize, take the changelist's queryset (filtered, searched, ordered) or the
selected rows, and call one service of ``portal.services.exports``. Everything here calls
``super()``, so the mixins stack with the rest of the console.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib.admin.options import IS_POPUP_VAR, Action, ActionLocation
from django.contrib.admin.views.main import ERROR_FLAG
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext_lazy as _

from portal import services
from portal.admin.helpers import can_operate
from portal.services.exports import ExportFile

if TYPE_CHECKING:
    from django.contrib import admin

    _ModelAdmin = admin.ModelAdmin[Any]
else:
    _ModelAdmin = object

FORMATS = ("csv", "xlsx")


class ExportMixin(_ModelAdmin):
    """CSV and Excel exports of the changelist as filtered, and of the selected rows."""

    export_stem = "export"

    def export_file(self, queryset: QuerySet[Any], file_format: str) -> ExportFile:
        raise NotImplementedError

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "export/<str:file_format>/",
                self.admin_site.admin_view(self.export_view),
                name="{}_{}_export".format(*info),
            ),
            *super().get_urls(),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # The export links carry the changelist's filters, search and ordering (not its page).
        query = request.GET.copy()
        for name in ("p", ERROR_FLAG):
            query.pop(name, None)
        context = {
            "export_query": f"?{query.urlencode()}" if query else "",
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context=context)

    def export_view(self, request: HttpRequest, file_format: str) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        if file_format not in FORMATS:
            raise PermissionDenied
        from django.contrib.admin.options import IncorrectLookupParameters

        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            info = self.opts.app_label, self.opts.model_name
            return HttpResponseRedirect(
                reverse("admin:{}_{}_changelist".format(*info)) + f"?{ERROR_FLAG}=1"
            )
        return self._file_response(self.export_file(changelist.queryset, file_format))

    @staticmethod
    def _file_response(export: ExportFile) -> HttpResponse:
        response = HttpResponse(export.content, content_type=export.content_type)
        response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
        return response

    def get_actions(
        self, request: HttpRequest, action_location: ActionLocation = ActionLocation.CHANGE_LIST
    ) -> dict[str, Any]:
        actions = super().get_actions(request, action_location=action_location)
        if self.actions is None or IS_POPUP_VAR in request.GET:
            return actions
        # Viewers export with the links above the list (filtered like it); the action menu
        # stays empty for them, as it does for every console action.
        if action_location == ActionLocation.CHANGE_LIST and can_operate(request):
            for name, description in (
                ("export_selected_csv", _("Export selected %(verbose_name_plural)s (CSV)")),
                ("export_selected_xlsx", _("Export selected %(verbose_name_plural)s (Excel)")),
            ):
                func = getattr(type(self), name)
                actions[name] = Action(
                    func=func,
                    name=name,
                    description=str(description),
                    plural_description=str(description),
                    locations=[ActionLocation.CHANGE_LIST],
                )
        return actions

    def export_selected_csv(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse:
        return self._file_response(self.export_file(queryset, "csv"))

    def export_selected_xlsx(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse:
        return self._file_response(self.export_file(queryset, "xlsx"))


class InstanceExportMixin(ExportMixin):
    def export_file(self, queryset: QuerySet[Any], file_format: str) -> ExportFile:
        return services.instances_export(instances=queryset, file_format=file_format)


class SoldierExportMixin(ExportMixin):
    def export_file(self, queryset: QuerySet[Any], file_format: str) -> ExportFile:
        return services.soldiers_export(soldiers=queryset, file_format=file_format)
