"""Who may see what: every soldier view goes through ``soldier_view``, every id through
``get_instance_for_soldier`` — anything that is not the logged-in soldier's is a 404."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect

from portal.models import Instance, Soldier

View = Callable[..., HttpResponse]


def request_soldier(request: HttpRequest) -> Soldier:
    """The logged-in soldier (``soldier_view`` has made sure there is one)."""
    soldier = getattr(request.user, "soldier", None)
    if soldier is None:
        raise Http404
    return soldier


def soldier_view(view: View) -> View:
    """Soldiers only: anonymous people log in first, staff go to the console."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if getattr(user, "soldier", None) is None:
            if user.is_staff:
                return redirect("admin:index")
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper


def get_instance_for_soldier(request: HttpRequest, pk: int) -> Instance:
    """The logged-in soldier's VM ``pk`` (with what its card reads), or 404 for any other."""
    return get_object_or_404(
        Instance.objects.select_related("pending_operation"), pk=pk, owner=request_soldier(request)
    )
