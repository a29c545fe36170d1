from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.utils.translation import gettext_lazy as _


class PortalConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "portal"
    verbose_name = _("CodeSquare Portal")


class ConsoleAdminConfig(admin_apps.AdminConfig):
    """Django's admin, with the staff console's site as ``admin.site``."""

    default = False  # named in INSTALLED_APPS; "portal" itself stays PortalConfig
    default_site = "portal.sites.ConsoleSite"
