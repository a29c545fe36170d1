"""The rows of a console change list: the admin's own cells, worked out once per column.

Django's ``items_for_result`` decides each cell afresh (which field or method the column is, its
CSS classes, the empty-value text, the row's change URL with the list's filters preserved, a
``format_html`` for the cell): over a page of 50 VMs and 9 columns that was most of the list's
time. Here those decisions are made once per column and once per page, and each cell only reads
its value and formats it with the admin's own ``display_for_field`` / ``display_for_value``; the
markup is byte for byte the admin's (``tests/console/test_console_cost.py`` compares the two).
A row comes as one item, its cells joined, which ``change_list_results.html`` writes the same.

Lists this does not cover (editable lists, popups, columns that are neither a model field nor a
method of the ``ModelAdmin``) go to the admin's own code unchanged.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from typing import Any

from django.contrib.admin.templatetags import admin_list
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.contrib.admin.utils import (
    display_for_field,
    display_for_value,
    lookup_field,
    quote,
)
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import ObjectDoesNotExist
from django.db import models
from django.db.models import Model
from django.db.models.constants import LOOKUP_SEP
from django.urls import NoReverseMatch, reverse
from django.utils.safestring import SafeString

from portal.admin.markup import conditional_escape, format_html

Cell = Callable[[Model], SafeString]

# Stands in for a row's id in a change URL reversed once for the whole page.
_PK_SLOT = "__pk__"


def results(cl: ChangeList) -> Iterator[admin_list.ResultList]:
    """What ``admin_list.results(cl)`` yields, made faster for the console's plain lists."""
    cells = _plan(cl)
    if cells is None:
        yield from admin_list.results(cl)
        return
    for row in cl.result_list:
        # One item of the row's cells side by side: the template writes a row's items one after
        # the other anyway, and rendering one variable is cheaper than rendering nine.
        yield admin_list.ResultList(None, [SafeString("".join([cell(row) for cell in cells]))])


def result_list(cl: ChangeList) -> dict[str, Any]:
    """``admin_list.result_list`` with the rows above: the context of ``change_list_results``."""
    headers = list(admin_list.result_headers(cl))
    return {
        "cl": cl,
        "result_hidden_fields": list(admin_list.result_hidden_fields(cl)),
        "result_headers": headers,
        "num_sorted_fields": sum(1 for h in headers if h["sortable"] and h["sorted"]),
        "results": list(results(cl)),
    }


def _plan(cl: ChangeList) -> list[Cell] | None:
    """One cell maker per column, or None where the admin's own code must render the rows."""
    rows = list(cl.result_list)
    if cl.formset or cl.is_popup or not rows:
        return None
    model_admin = cl.model_admin
    sample = rows[0]
    link_url = _change_url_maker(cl)
    cells: list[Cell] = []
    first = True
    for name in cl.list_display:
        if not isinstance(name, str) or LOOKUP_SEP in name:
            return None
        try:
            field, attr, _value = lookup_field(name, sample, model_admin)
        except ObjectDoesNotExist:
            return None
        # As ``items_for_result``'s ``link_in_col``: the first linked column is a <th>.
        if cl.list_display_links is None:
            link = False
        else:
            link = (first and not cl.list_display_links) or name in cl.list_display_links
        tag = "td"
        if link:
            if link_url is None:  # the admin shows such a column unlinked; leave it to it
                return None
            tag = "th" if first else "td"
            first = False
        empty = model_admin.get_empty_value_display()
        if field is not None and not field.auto_created:
            cells.append(_field_cell(name, field, empty, tag, link_url if link else None))
        elif (
            field is None
            and name != "__str__"
            and hasattr(model_admin, name)
            and attr == getattr(model_admin, name)
        ):
            cells.append(_method_cell(name, attr, empty, tag, link_url if link else None))
        else:
            return None
    return cells


def _wrap(
    tag: str, classes: str, shown: Any, row: Model, link_url: Callable[[Model], str] | None
) -> SafeString:
    if link_url is not None:
        shown = format_html('<a href="{}"{}>{}</a>', link_url(row), "", shown)
    return SafeString(f'<{tag} class="{classes}">{conditional_escape(shown)}</{tag}>')


def _field_cell(
    name: str,
    field: Any,
    empty: str,
    tag: str,
    link_url: Callable[[Model], str] | None,
) -> Cell:
    classes = f"field-{name}"
    if isinstance(field, models.DateField | models.TimeField | models.ForeignKey):
        classes += " nowrap"
    relation = isinstance(field.remote_field, models.ManyToOneRel)
    choices: dict[Any, Any] | None = None
    if getattr(field, "flatchoices", None) and field.name != "password":
        try:
            choices = dict(field.flatchoices)
        except TypeError:  # list-like choices: the admin's own code handles them per cell
            choices = None
    avoid_link = link_url is not None

    def cell(row: Model) -> SafeString:
        try:
            value = getattr(row, name)
        except ObjectDoesNotExist:
            return _wrap(tag, f"field-{name}", empty, row, link_url)
        if relation:
            shown = empty if value is None else value
        elif choices is not None:
            shown = choices.get(value, empty)
        else:
            shown = display_for_field(value, field, empty, avoid_link=avoid_link)
        return _wrap(tag, classes, shown, row, link_url)

    return cell


def _method_cell(
    name: str,
    method: Any,
    empty: str,
    tag: str,
    link_url: Callable[[Model], str] | None,
) -> Cell:
    classes = "action-checkbox" if name == "action_checkbox" else f"field-{name}"
    own_empty = getattr(method, "empty_value_display", empty)
    boolean = getattr(method, "boolean", False)

    def cell(row: Model) -> SafeString:
        try:
            value = method(row)
        except ObjectDoesNotExist:
            return _wrap(tag, f"field-{name}", empty, row, link_url)
        shown = display_for_value(value, own_empty, boolean)
        nowrap = isinstance(value, datetime.date | datetime.time)
        return _wrap(tag, f"{classes} nowrap" if nowrap else classes, shown, row, link_url)

    return cell


def _change_url_maker(cl: ChangeList) -> Callable[[Model], str] | None:
    """The row's change URL with the list's filters preserved, as ``items_for_result`` makes it.

    None when the model has no change URL.
    """
    context: dict[str, Any] = {"preserved_filters": cl.preserved_filters, "opts": cl.opts}

    def slow(row: Model) -> str:
        return add_preserved_filters(context, cl.url_for_result(row))

    try:
        pattern = reverse(
            f"admin:{cl.opts.app_label}_{cl.opts.model_name}_change",
            args=(_PK_SLOT,),
            current_app=cl.model_admin.admin_site.name,
        )
    except NoReverseMatch:
        return None
    # The id sits in the path, before any query string: the first slot is the one.
    before, _slot, after = add_preserved_filters(context, pattern).partition(_PK_SLOT)
    pk_name = cl.pk_attname

    def fast(row: Model) -> str:
        pk = getattr(row, pk_name)
        if type(pk) is not int:
            return slow(row)
        return f"{before}{quote(pk)}{after}"

    return fast
