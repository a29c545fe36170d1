"""The portal's link to its cloud: a ``portal.openstack`` client built from Django settings.

``portal.openstack`` knows nothing of Django; this module gives it the settings (which cloud,
region, interface, timeout) and Django's cache as the token store, so every web and worker
process shares one token per scope instead of logging in on its own.
"""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.signals import setting_changed

from portal.openstack import OpenStackClient, load_config

CACHE_ALIAS = "default"

_client: OpenStackClient | None = None
_client_lock = threading.Lock()


class DjangoTokenCache:
    """``portal.openstack.TokenCache`` on a Django cache (file, Redis, ... as configured)."""

    def __init__(self, alias: str = CACHE_ALIAS) -> None:
        self.alias = alias

    def get(self, key: str) -> str | None:
        value = caches[self.alias].get(key)
        return value if isinstance(value, str) else None

    def set(self, key: str, value: str, ttl: float) -> None:
        caches[self.alias].set(key, value, timeout=max(1, int(ttl)))

    def delete(self, key: str) -> None:
        caches[self.alias].delete(key)


def build_client() -> OpenStackClient:
    """A new client from settings: OS_CLOUD/clouds.yaml or OS_* variables plus OPENSTACK_*."""
    extra: dict[str, Any] = {"timeout": settings.OPENSTACK_TIMEOUT}
    if settings.OPENSTACK_REGION:
        extra["region_name"] = settings.OPENSTACK_REGION
    # "public" is the default everywhere; passing it would override a clouds.yaml that asks
    # for another interface.
    if settings.OPENSTACK_INTERFACE and settings.OPENSTACK_INTERFACE != "public":
        extra["interface"] = settings.OPENSTACK_INTERFACE
    config = load_config(settings.OPENSTACK_CLOUD or None, **extra)
    return OpenStackClient.from_config(config, token_cache=DjangoTokenCache())


def get_client() -> OpenStackClient:
    """This process's client for the portal's own user (scoped as configured)."""
    global _client
    with _client_lock:
        if _client is None:
            _client = build_client()
        return _client


def get_project_client(project_id: str) -> OpenStackClient:
    """The portal user's client scoped to ``project_id`` (e.g. to create a soldier's server)."""
    return get_client().for_project(project_id)


def reset_client(**_: Any) -> None:
    """Forget the process's client, so the next get_client() reads settings again."""
    global _client
    with _client_lock:
        _client = None


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("OPENSTACK_") or setting == "CACHES":
        reset_client()


setting_changed.connect(_on_setting_changed, dispatch_uid="portal.cloud.reset_client")
