"""Search everything the portal wrote for the credentials it handled: logs, pages, cookies, the DB.

The leak tests (browser journeys, fault matrix) run with DEBUG logs captured to files, then ask
devcloud for every password, application credential secret and token it saw, and look for each
of them here. A hit names the place and the first characters of the secret, never all of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from devcloud.testing import FaultControl, RunningDevcloud

# Short values (a one-letter password in a validation test) would match anywhere by chance.
MIN_SECRET_LENGTH = 8
TEXT_TYPES = ("char", "text", "json", "clob", "string")


def cloud_secrets(
    devcloud: RunningDevcloud | FaultControl | str, admin_password: str = "devcloud-admin"
) -> set[str]:
    """Every credential devcloud was given or issued, in clear (its control endpoint keeps them)."""
    if isinstance(devcloud, RunningDevcloud):
        control = devcloud.faults
    elif isinstance(devcloud, FaultControl):
        control = devcloud
    else:
        control = FaultControl(devcloud.rstrip("/"), admin_password)
    return control.secrets()


def _hits_in(text: str, secrets: list[str], where: str) -> list[str]:
    return [f"{where}: {secret[:4]}…" for secret in secrets if secret in text]


def _database_hits(secrets: list[str], using: str) -> list[str]:
    from django.db import connections

    connection = connections[using]
    hits: list[str] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            description = connection.introspection.get_table_description(cursor, table)
            columns = [
                column.name
                for column in description
                if any(
                    kind in _column_type(connection, cursor, column).lower() for kind in TEXT_TYPES
                )
            ]
            if not columns:
                continue
            quoted = ", ".join(connection.ops.quote_name(name) for name in columns)
            cursor.execute(f"SELECT {quoted} FROM {connection.ops.quote_name(table)}")  # noqa: S608
            for row in cursor.fetchall():
                for name, value in zip(columns, row, strict=True):
                    if value is None:
                        continue
                    hits.extend(_hits_in(str(value), secrets, f"database {table}.{name}"))
    return hits


def _column_type(connection: object, cursor: object, column: object) -> str:
    # SQLite reports the declared type as a string; PostgreSQL reports an OID that the
    # introspection maps to a Django field name ("TextField", "JSONField", …).
    type_code = column.type_code  # type: ignore[attr-defined]
    if isinstance(type_code, str):
        return type_code
    introspection = connection.introspection  # type: ignore[attr-defined]
    try:
        return str(introspection.get_field_type(type_code, column))
    except KeyError:
        return ""


def scan(
    secrets: Iterable[str],
    *,
    files: Iterable[Path] = (),
    texts: Iterable[str] = (),
    database: bool = True,
    using: str = "default",
) -> list[str]:
    """Where any of ``secrets`` appears: files (logs, saved pages), texts (cookies), the DB."""
    wanted = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH})
    if not wanted:
        raise ValueError("no secret to look for: the scan would prove nothing")
    hits: list[str] = []
    for path in files:
        hits.extend(_hits_in(Path(path).read_text(errors="replace"), wanted, str(path)))
    for number, text in enumerate(texts):
        hits.extend(_hits_in(text, wanted, f"text #{number}"))
    if database:
        hits.extend(_database_hits(wanted, using))
    return hits
