"""The staff console: the Django admin as the operators' cockpit.

One module per model admin, the shared helpers, and the custom pages (status, batch, drift,
launch preflight, confirmations). Importing this package registers everything on the console
site (``portal.sites.ConsoleSite``, Django's ``admin.site`` through ``ConsoleAdminConfig``).
"""

from portal.admin import (
    batches,
    drift,
    floating_ips,
    instances,
    operations,
    projects,
    soldiers,
    vm_templates,
)
from portal.admin.batches import BatchAdmin
from portal.admin.drift import DriftAdmin
from portal.admin.floating_ips import FloatingIPAdmin
from portal.admin.instances import InstanceAdmin
from portal.admin.operations import OperationAdmin
from portal.admin.projects import ProjectAdmin, ProjectNetworkAdmin
from portal.admin.soldiers import SoldierAdmin
from portal.admin.vm_templates import VmTemplateAdmin

__all__ = [
    "BatchAdmin",
    "DriftAdmin",
    "FloatingIPAdmin",
    "InstanceAdmin",
    "OperationAdmin",
    "ProjectAdmin",
    "ProjectNetworkAdmin",
    "SoldierAdmin",
    "VmTemplateAdmin",
    "batches",
    "drift",
    "floating_ips",
    "instances",
    "operations",
    "projects",
    "soldiers",
    "vm_templates",
]
