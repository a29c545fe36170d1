"""A reset password is shown once, on the response page, and found nowhere else: not in the
database, the session, the messages, a log line or a task's arguments."""

from __future__ import annotations

import logging
import re
from importlib import import_module
from typing import Any

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client

from portal.openstack import OpenStackClient
from tests.console.support import changelist, confirm, messages_of, onboarded
from tests.integration.conftest import Cast, make_soldier

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.cloud,
    pytest.mark.needs("identity", "compute", "network", "image"),
]


def every_database_value() -> str:
    """Every row of every table, as text (task arguments and operation messages included)."""
    dump = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 -- table names from Django
            dump.append(repr(cursor.fetchall()))
    return "\n".join(dump)


def every_session() -> str:
    engine = import_module(settings.SESSION_ENGINE)
    return "\n".join(
        repr(engine.SessionStore(session_key=s.session_key).load()) for s in Session.objects.all()
    )


def test_a_reset_password_is_shown_once_and_stored_nowhere(
    operator: Client, cast: Cast, tasks: Any, admin: OpenStackClient, caplog: Any
) -> None:
    soldier = onboarded(tasks)
    caplog.set_level(logging.DEBUG)
    response = confirm(operator, "soldier", "reset_password", [soldier.pk])
    html = response.content.decode()
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    (password,) = re.findall(r'<code class="cs-secret">([^<]+)</code>', html)
    assert html.count(password) == 1
    assert admin.authenticate(username=soldier.keystone_user_name, password=password)

    follow = operator.get(changelist("soldier"))
    tasks()
    assert password not in follow.content.decode()
    assert all(password not in m for m in messages_of(follow))
    assert password not in every_database_value()
    assert password not in every_session()
    assert all(password not in str(cookie.value) for cookie in operator.cookies.values())
    logged = "\n".join(
        f"{r.getMessage()} {r.args!r} {getattr(r, 'exc_text', '')}" for r in caplog.records
    )
    assert caplog.records  # the reset was logged, without its secret
    assert password not in logged


def test_a_soldier_without_a_cloud_account_gets_no_password_and_a_reason(
    operator: Client, cast: Cast
) -> None:
    pending = make_soldier()
    page = confirm(operator, "soldier", "reset_password", [pending.pk]).content.decode()
    assert "cs-secret" not in page
    assert "has no cloud account yet" in page
