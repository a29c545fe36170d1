"""Floating IPs the portal has seen, with whether it created them (it releases only those)."""

from __future__ import annotations

from django.contrib import admin
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy

from portal.admin.helpers import MirrorAdmin, change_link, kst, tone_badge
from portal.models import FloatingIP


@admin.register(FloatingIP)
class FloatingIPAdmin(MirrorAdmin):
    list_display = [
        "address",
        "instance_link",
        "ownership",
        "status",
        "fixed_ip",
        "port_id",
        "project_keystone_id",
        "released",
        "synced",
    ]
    list_select_related = ["instance"]
    list_filter = ["created_by_portal", ("released_at", admin.EmptyFieldListFilter), "status"]
    search_fields = ["address", "neutron_id", "fixed_ip", "port_id", "instance__name"]

    @admin.display(description=gettext_lazy("VM"))
    def instance_link(self, fip: FloatingIP) -> SafeString:
        return change_link(fip.instance)

    @admin.display(description=gettext_lazy("owner"), ordering="created_by_portal")
    def ownership(self, fip: FloatingIP) -> SafeString:
        if fip.created_by_portal:
            return tone_badge(gettext_lazy("the portal's"), "blue")
        return tone_badge(gettext_lazy("not the portal's (kept)"), "grey")

    @admin.display(description=gettext_lazy("released"), ordering="released_at")
    def released(self, fip: FloatingIP) -> SafeString:
        return kst(fip.released_at)

    @admin.display(description=gettext_lazy("last synced"), ordering="last_synced_at")
    def synced(self, fip: FloatingIP) -> SafeString:
        return kst(fip.last_synced_at)
