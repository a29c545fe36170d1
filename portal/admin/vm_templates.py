"""VM templates: what soldiers may ask for; operators add and edit them."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy

from portal.admin.helpers import ConsoleAdmin
from portal.models import VmTemplate
from portal.openstack.types import ServerStatus


@admin.register(VmTemplate)
class VmTemplateAdmin(ConsoleAdmin):
    list_display = [
        "name",
        "image_name",
        "flavor_name",
        "network_id",
        "security_group",
        "availability_zone",
        "is_active",
        "vms",
    ]
    list_filter = ["is_active", "flavor_name", "image_name"]
    search_fields = ["name", "image_name", "flavor_name", "image_id", "flavor_id"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A template only names what to boot; VMs made from it keep their own record.
        return request.user.has_perm("portal.delete_vmtemplate")

    def get_queryset(self, request: HttpRequest) -> QuerySet[VmTemplate]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                live_vms=Count("instances", filter=~Q(instances__status=ServerStatus.DELETED))
            )
        )

    @admin.display(description=gettext_lazy("VMs"), ordering="live_vms")
    def vms(self, template: VmTemplate) -> int:
        return int(getattr(template, "live_vms", 0))
