"""Intermediate pages of actions: what a destructive or mass action will do, a postponement's
date, and the one page a reset password is ever shown on.

They follow Django's ``delete_selected``: the page posts back to the change list with the
action's name, the selected ids and ``post=yes``, and only that second POST acts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from portal import services
from portal.admin.helpers import ACTION_FIELDS, action_context
from portal.models import Soldier, seoul_today


def confirmed(request: HttpRequest) -> bool:
    """The second POST of an action, from its intermediate page."""
    return request.POST.get("post") == "yes"


def teardown_page(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: Iterable[Model],
    *,
    action: str,
    title: str,
    intro: str,
    button: str,
    preview: services.TeardownPreview,
    steps: Sequence[str | Promise] = (),
    note: str | Promise = "",
) -> TemplateResponse:
    """Every server to be deleted, every floating IP to be released, and those kept.

    ``steps`` are what the action does, numbered in the order it does them; ``note`` what
    happens when one of them fails.
    """
    objects = list(queryset)
    context = {
        **action_context(modeladmin, request, objects, action=action, title=title),
        "objects": objects,
        "intro": intro,
        "steps": list(steps),
        "note": note,
        "button": button,
        "preview": preview,
    }
    return TemplateResponse(request, "admin/portal/confirm_teardown.html", context)


@dataclass(frozen=True)
class ConfirmRow:
    """One selected row as the confirmation lists it: its name, whose it is, where it is now."""

    name: str
    owner: str
    now: str


def action_page(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    objects: list[Model],
    *,
    action: str,
    title: str,
    intro: str,
    button: str,
    rows: list[ConfirmRow],
    danger: bool = False,
) -> TemplateResponse:
    """What an action will do to which rows, and one button to do it (``post=yes``).

    Posted from a detail page, the confirmation goes back there, so the action's report lands
    where the operator started.
    """
    context = {
        **action_context(modeladmin, request, objects, action=action, title=title),
        "objects": objects,
        "intro": intro,
        "button": button,
        "rows": rows,
        "danger": danger,
    }
    change_form_field = ACTION_FIELDS[1]
    if change_form_field in request.POST:
        context["action_field"] = change_form_field
        context["form_url"] = request.get_full_path()
    return TemplateResponse(request, "admin/portal/confirm_action.html", context)


class PostponeForm(forms.Form):
    until = forms.DateField(
        label=_("Keep cloud access until"),
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text=_("A Korean calendar date; access ends the day after it."),
    )

    def clean_until(self) -> date:
        until: date = self.cleaned_data["until"]
        if until < seoul_today():
            raise forms.ValidationError(_("The new date must not be in the past."))
        return until


def postpone_page(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    soldiers: list[Soldier],
    form: PostponeForm,
) -> TemplateResponse:
    context = {
        **action_context(
            modeladmin,
            request,
            soldiers,
            action="postpone_discharge",
            title=str(_("Postpone the discharge teardown")),
        ),
        "objects": soldiers,
        "form": form,
    }
    return TemplateResponse(request, "admin/portal/postpone.html", context)


def default_postponement(soldiers: list[Soldier]) -> date:
    """Thirty days after the latest current end of access among the selected soldiers."""
    ends = [s.effective_discharge_on for s in soldiers if s.effective_discharge_on]
    return max([seoul_today(), *ends]) + timedelta(days=30)


@dataclass(frozen=True)
class ResetRow:
    soldier: Soldier
    password: str | None
    message: str


def password_page(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    rows: list[ResetRow],
) -> TemplateResponse:
    """The new passwords, shown once: never stored, cached, logged or put in a message."""
    context: dict[str, Any] = {
        **modeladmin.admin_site.each_context(request),
        "title": _("New cloud passwords"),
        "opts": modeladmin.model._meta,
        "rows": rows,
    }
    response = TemplateResponse(request, "admin/portal/passwords.html", context)
    add_never_cache_headers(response)
    response["Cache-Control"] = "no-store"
    return response
