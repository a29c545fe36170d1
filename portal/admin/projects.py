"""Soldier projects and the networks the portal made for them: written by onboarding only."""

from __future__ import annotations

from django.contrib import admin
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy

from portal.admin.helpers import MirrorAdmin, change_link, kst
from portal.models import Project, ProjectNetwork


@admin.register(Project)
class ProjectAdmin(MirrorAdmin):
    list_display = ["name", "soldier_link", "keystone_id", "network_id", "roles_granted"]
    list_select_related = ["soldier"]
    list_filter = ["roles_granted"]
    search_fields = ["name", "keystone_id", "soldier__name", "soldier__service_number"]

    @admin.display(description=gettext_lazy("soldier"), ordering="soldier__service_number")
    def soldier_link(self, project: Project) -> SafeString:
        return change_link(project.soldier)


@admin.register(ProjectNetwork)
class ProjectNetworkAdmin(MirrorAdmin):
    list_display = [
        "project",
        "network_id",
        "subnet_id",
        "router_id",
        "interface_attached",
        "removed",
    ]
    list_select_related = ["project"]
    list_filter = [("removed_at", admin.EmptyFieldListFilter)]
    search_fields = ["project__name", "network_id", "subnet_id", "router_id"]

    @admin.display(description=gettext_lazy("removed"), ordering="removed_at")
    def removed(self, network: ProjectNetwork) -> SafeString:
        return kst(network.removed_at)
