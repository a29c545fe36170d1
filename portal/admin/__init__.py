"""Plain admin registration; the staff console with actions is its own piece of work."""

from django.contrib import admin

from portal import models
from portal.admin.roster import InstanceExportMixin, RosterAdminMixin


@admin.register(models.Soldier)
class SoldierAdmin(RosterAdminMixin, admin.ModelAdmin):
    list_display = ["service_number", "name", "unit", "keystone_user_name", "state", "discharge_on"]
    list_filter = ["state", "unit"]
    search_fields = ["service_number", "name", "keystone_user_name"]


@admin.register(models.Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "soldier", "keystone_id", "network_id", "roles_granted"]
    search_fields = ["name", "keystone_id"]


@admin.register(models.ProjectNetwork)
class ProjectNetworkAdmin(admin.ModelAdmin):
    list_display = ["project", "network_id", "subnet_id", "router_id", "removed_at"]


@admin.register(models.VmTemplate)
class VmTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "image_name", "flavor_name", "availability_zone", "is_active"]


@admin.register(models.Instance)
class InstanceAdmin(InstanceExportMixin, admin.ModelAdmin):
    list_display = [
        "name",
        "owner",
        "status",
        "power_state",
        "floating_ip",
        "pending_action",
        "last_synced_at",
    ]
    list_filter = ["status", "pending_action"]
    search_fields = ["name", "server_id", "floating_ip", "fixed_ip"]


@admin.register(models.FloatingIP)
class FloatingIPAdmin(admin.ModelAdmin):
    list_display = ["address", "instance", "created_by_portal", "status", "released_at"]
    list_filter = ["created_by_portal"]


@admin.register(models.Operation)
class OperationAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "state", "step", "soldier", "instance", "attempts", "created_at"]
    list_filter = ["kind", "state"]


@admin.register(models.Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "total", "succeeded", "failed", "created_at", "finished_at"]


@admin.register(models.Drift)
class DriftAdmin(admin.ModelAdmin):
    list_display = ["kind", "resource_id", "project_keystone_id", "last_seen_at", "resolved_at"]
    list_filter = ["kind"]
