from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.utils.translation import gettext_lazy as _


class PortalConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "portal"
    verbose_name = _("CodeSquare Portal")

    def ready(self) -> None:
        # The engine's wiring, explicit and in one place: which kinds it runs, which task queues
        # an operation. (The task module imports the engine, never the reverse.)
        from portal import pollcache, tasks
        from portal.operations import engine, registry
        from portal.operations.kinds import KIND_MODULES

        registry.install(KIND_MODULES)
        engine.use_task(tasks.operation_run)
        # Writes tell the pollers' cache (portal.pollcache) that a card or a session changed.
        pollcache.connect_signals()


class ConsoleAdminConfig(admin_apps.AdminConfig):
    """Django's admin, with the staff console's site as ``admin.site``."""

    default = False  # named in INSTALLED_APPS; "portal" itself stays PortalConfig
    default_site = "portal.sites.ConsoleSite"
