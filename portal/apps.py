from django.apps import AppConfig, apps
from django.contrib.admin import apps as admin_apps
from django.db.models.signals import post_delete, post_save
from django.utils.translation import gettext_lazy as _


class PortalConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "portal"
    verbose_name = _("CodeSquare Portal")

    def ready(self) -> None:
        # The engine's wiring, explicit and in one place: which kinds it runs, which task queues
        # an operation. (The task module imports the engine, never the reverse.)
        from portal import metrics, pollcache, tasks
        from portal.operations import engine, registry
        from portal.operations.kinds import KIND_MODULES

        registry.install(KIND_MODULES)
        engine.use_task(tasks.operation_run)
        # Every process counts its own requests and cloud calls for /metrics.
        metrics.install()
        # Writes tell the pollers' cache (portal.pollcache) that a card or a session changed.
        for label, receiver in pollcache.receivers():
            model = apps.get_model(label)
            for signal in (post_save, post_delete):
                signal.connect(receiver, sender=model, dispatch_uid=f"pollcache:{label}")


class ConsoleAdminConfig(admin_apps.AdminConfig):
    """Django's admin, with the staff console's site as ``admin.site``."""

    default = False  # named in INSTALLED_APPS; "portal" itself stays PortalConfig
    default_site = "portal.sites.ConsoleSite"
