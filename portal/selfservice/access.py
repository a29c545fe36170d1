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

    One fixed statement read through the database's own value converters, rather than the
    ORM's select_related: compiling that join over two wide tables, and mapping its columns,
    cost more than half of a card poll that found news (bench_self_service). The rows come out
    as the ORM would build them (``Model.from_db``, the same converters per column).
    """
    with connection.cursor() as cursor:
        cursor.execute(_statement(), [pk, soldier_id])
        row = cursor.fetchone()
    if row is None:
        raise Http404
    split = len(Instance._meta.concrete_fields)
    instance = _decode(Instance, row[:split])
    op_row = row[split:]
    pending = _decode(Operation, op_row) if op_row[0] is not None else None
    Instance.pending_operation.field.set_cached_value(instance, pending)
    return instance


_Converter = Callable[[Any, Any, Any], Any]


def _decode(model: Any, row: tuple[Any, ...]) -> Any:
    names, converters = _columns(model, connection.ops)
    values = list(row)
    for index, expression, functions in converters:
        for convert in functions:
            values[index] = convert(values[index], expression, connection)
    return model.from_db(connection.alias, names, values)


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
def _statement() -> str:
    # Only the models' own table and column names go into the text; values are parameters.
    # The operation's primary key comes first among its columns: NULL means none is pending.
    q = connection.ops.quote_name
    vm, op = q(Instance._meta.db_table), q(Operation._meta.db_table)

    def columns(model: Any, table: str) -> str:
        return ", ".join(f"{table}.{q(f.column)}" for f in model._meta.concrete_fields)

    assert Operation._meta.concrete_fields[0].primary_key
    vm_pk, op_pk = q(str(Instance._meta.pk.column)), q(str(Operation._meta.pk.column))
    owner = q(Instance._meta.get_field("owner").column)
    pending = q(Instance._meta.get_field("pending_operation").column)
    return (
        f"SELECT {columns(Instance, vm)}, {columns(Operation, op)} FROM {vm} "  # noqa: S608
        f"LEFT JOIN {op} ON {op}.{op_pk} = {vm}.{pending} "
        f"WHERE {vm}.{vm_pk} = %s AND {vm}.{owner} = %s"
    )
