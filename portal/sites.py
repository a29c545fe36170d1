"""The staff console's admin site: the dashboard strip on the index, the status page's URL.

Outside the ``portal.admin`` package on purpose: Django imports this class while it creates
``admin.site``, and the package's modules register on ``admin.site`` as they are imported.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path
from django.utils.translation import gettext_lazy as _

from portal import services
from portal.selfservice.forms import bound_the_username


class ConsoleLoginForm(AdminAuthenticationForm):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        bound_the_username(self)


class ConsoleSite(admin.AdminSite):
    site_header = _("CodeSquare staff console")
    site_title = _("CodeSquare console")
    index_title = _("Dashboard")
    index_template = "admin/portal/index.html"
    login_form = ConsoleLoginForm

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Deleting rows by hand would skip the cloud: VMs are deleted by their own action.
        self.disable_action("delete_selected")

    def get_urls(self) -> list[URLResolver | URLPattern]:
        from portal.admin import status_page

        return [
            path("status/", self.admin_view(status_page.status_view), name="portal_status"),
            path("sync/", self.admin_view(status_page.reconcile_now), name="portal_sync"),
            path(
                "capacity/",
                self.admin_view(status_page.measure_capacity),
                name="portal_capacity",
            ),
            *super().get_urls(),
        ]

    def index(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        context = {"dashboard": services.console_dashboard(), **(extra_context or {})}
        return super().index(request, context)
