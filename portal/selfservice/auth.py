"""Login backends: soldiers through Keystone, staff through their Django account.

``KeystoneBackend`` asks Keystone (through ``services.soldier_authenticate``) and maps the
Keystone user id to a ``Soldier``; nothing of the login (token or password) is kept. When
Keystone cannot answer it raises ``CloudLoginUnavailable``, which ``authenticate()`` lets through
to the login view (a 503 page; not a failed login for django-axes). A Keystone user the portal
does not serve is stopped with ``PermissionDenied`` and the reason left on the request.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import BaseBackend, ModelBackend
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from portal import services
from portal.models import Soldier

REFUSAL_ATTRIBUTE = "selfservice_refusal"


def refusal(request: HttpRequest) -> str:
    """The msgid of why the last login on this request was refused ("" if none was)."""
    return str(getattr(request, REFUSAL_ATTRIBUTE, ""))


def lockout_username(request: HttpRequest | None, credentials: dict[str, Any] | None) -> str:
    """The name django-axes counts failed logins under: one counter for "soldier2",
    "Soldier2" and "ＳＯＬＤＩＥＲ２" alike, as Keystone (on MySQL) would take them for one user."""
    username = (credentials or {}).get("username") or ""
    return unicodedata.normalize("NFKC", str(username)).strip().casefold()


def _staff_login(username: str) -> bool:
    """A staff account by that name and no soldier: Keystone is not asked (nor needed)."""
    if Soldier.objects.filter(keystone_user_name=username).exists():
        return False
    return (
        get_user_model()
        .objects.filter(username=username, is_staff=True, is_active=True)
        .exclude(password__startswith=UNUSABLE_PASSWORD_PREFIX)  # no Django login at all
        .exists()
    )


class KeystoneBackend(BaseBackend):
    """Soldiers: the cloud username and password, checked by Keystone."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        if request is None or not username or not password or _staff_login(username):
            return None
        try:
            soldier = services.soldier_authenticate(username=username, password=password)
        except services.LoginRefused as exc:
            setattr(request, REFUSAL_ATTRIBUTE, exc.message)
            raise PermissionDenied from exc
        return None if soldier is None else soldier.user

    def get_user(self, user_id: Any) -> Any:
        """The session's user while they still are an active soldier (a discharge ends it)."""
        user = (
            get_user_model()
            .objects.select_related("soldier")
            .filter(pk=user_id, is_active=True)
            .first()
        )
        if user is None:
            return None
        soldier = getattr(user, "soldier", None)
        if soldier is None:
            # A staff session made without naming its backend (Django's force_login takes the
            # first backend with get_user, this one); a Keystone login is never staff's.
            return user if user.is_staff else None
        return None if soldier.state == Soldier.State.DISABLED else user


class StaffBackend(ModelBackend):
    """Staff: Django accounts. A soldier's Django password (if one was set) is never used."""

    def user_can_authenticate(self, user: Any) -> bool:
        return bool(super().user_can_authenticate(user) and user.is_staff)
