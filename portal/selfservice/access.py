"""Who may see what: every soldier view goes through ``soldier_view``, every id through
``get_instance_for_soldier`` — anything that is not the logged-in soldier's is a 404."""

from __future__ import annotations

import functools
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect

from portal.models import Instance, Operation, Soldier

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
    return get_instance_of(pk, soldier_id=request_soldier(request).pk)


def get_instance_of(pk: int, *, soldier_id: int) -> Instance:
    """Soldier ``soldier_id``'s VM ``pk`` with its pending operation loaded, or 404.

    Two fixed statements read through the database's own value converters, rather than the
    ORM's select_related: compiling that join over two wide tables, and mapping its columns,
    cost more than half of a card poll that found news (bench_self_service). The rows come out
    as the ORM would build them (``Model.from_db``, the same converters per column).
    """
    vm_sql, op_sql = _statements()
    instance = next(iter(_rows(Instance, vm_sql, [pk, soldier_id])), None)
    if instance is None:
        raise Http404
    pending = None
    if instance.pending_operation_id is not None:
        pending = next(iter(_rows(Operation, op_sql, [instance.pending_operation_id])), None)
    Instance.pending_operation.field.set_cached_value(instance, pending)
    return instance


_Converter = Callable[[Any, Any, Any], Any]


def _rows(model: Any, sql: str, params: list[Any]) -> list[Any]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    names, converters = _columns(model, connection.ops)
    loaded = []
    for row in rows:
        values = list(row)
        for index, expression, functions in converters:
            for convert in functions:
                values[index] = convert(values[index], expression, connection)
        loaded.append(model.from_db(connection.alias, names, values))
    return loaded


@functools.cache
def _columns(model: Any, ops: Any) -> tuple[list[str], list[tuple[int, Any, list[_Converter]]]]:
    """Every concrete field's attname, and per column the converters the compiler would apply
    (per connection: the backend's converters are its methods)."""
    fields = model._meta.concrete_fields
    converters = []
    for index, field in enumerate(fields):
        expression = field.get_col(model._meta.db_table)
        functions = ops.get_db_converters(expression) + expression.get_db_converters(ops.connection)
        if functions:
            converters.append((index, expression, functions))
    return [f.attname for f in fields], converters


@functools.cache
def _statements() -> tuple[str, str]:
    # Only the models' own table and column names go into the text; values are parameters.
    q = connection.ops.quote_name

    def select(model: Any) -> str:
        columns = ", ".join(q(f.column) for f in model._meta.concrete_fields)
        return f"SELECT {columns} FROM {q(model._meta.db_table)}"  # noqa: S608

    vm_pk, op_pk = q(str(Instance._meta.pk.column)), q(str(Operation._meta.pk.column))
    owner = q(Instance._meta.get_field("owner").column)
    by_owner = f"{select(Instance)} WHERE {vm_pk} = %s AND {owner} = %s"
    by_id = f"{select(Operation)} WHERE {op_pk} = %s"
    return by_owner, by_id
