"""Fixtures of the soldier-page tests: the integration fixtures (cloud, cast, tasks, calls), plus
soldiers with a cloud password, logged-in browsers (Django's test client) and a running VM."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client

from portal import services
from portal.models import Instance, Project, Soldier, VmTemplate
from tests.integration.conftest import *  # noqa: F403
from tests.integration.conftest import (
    Cast,
    _english,  # noqa: F401
    make_soldier,
    unique,
)


@pytest.fixture(autouse=True)
def _static_files_without_a_manifest(settings: Any) -> None:
    """Tests run with DEBUG off but without collectstatic's manifest."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _poll_fast_path(settings: Any) -> None:
    """The polls answer from the cache as deployed: the test process is the only one writing, so
    its per-process cache carries every invalidation. (Ids are never reused between tests, so
    entries left by an earlier test name nothing of this one.)"""
    settings.POLL_FAST_PATH = True
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"


def browser() -> Client:
    """A browser that reads English (the default language of the portal is Korean)."""
    return Client(HTTP_ACCEPT_LANGUAGE="en")


@dataclass
class CloudSoldier:
    """An onboarded soldier with a cloud password, and a browser logged in as them."""

    soldier: Soldier
    password: str
    client: Client

    @property
    def username(self) -> str:
        return self.soldier.keystone_user_name


def onboard_with_password(soldier: Soldier, tasks: Callable[..., int]) -> str:
    services.soldier_onboard(soldier=soldier)
    tasks()
    soldier.refresh_from_db()
    assert soldier.state == Soldier.State.ACTIVE
    password = "pw-" + secrets.token_urlsafe(12)
    reset = services.soldier_password_reset(soldier=soldier, new_password=password)
    assert reset.password == password
    return password


def logged_in(soldier: Soldier) -> Client:
    """A browser with a soldier session, made without asking Keystone (the login tests do)."""
    client = browser()
    client.force_login(soldier.user, backend="portal.selfservice.auth.KeystoneBackend")
    return client


@pytest.fixture
def soldier_a(cast: Cast, tasks: Callable[..., int]) -> CloudSoldier:
    password = onboard_with_password(cast.soldier, tasks)
    return CloudSoldier(cast.soldier, password, logged_in(cast.soldier))


@pytest.fixture
def soldier_b(portal_cloud: Any, tasks: Callable[..., int]) -> CloudSoldier:
    soldier = make_soldier()
    password = onboard_with_password(soldier, tasks)
    return CloudSoldier(soldier, password, logged_in(soldier))


@pytest.fixture
def running_vm(soldier_a: CloudSoldier, cast: Cast, tasks: Callable[..., int]) -> Instance:
    """Soldier A's VM, launched through the portal and running."""
    instance = services.soldier_vm_request(soldier=soldier_a.soldier, template=cast.template)
    tasks()
    instance.refresh_from_db()
    assert instance.status == "ACTIVE", instance.last_error
    return instance


def offline_instances(count: int, *, prefix: str = "other") -> list[Instance]:
    """VM rows of other soldiers, straight in the database (no cloud): the load around a page."""
    template = VmTemplate.objects.first()
    rows = []
    for _ in range(count):
        soldier = make_soldier(unique(prefix))
        project = Project.objects.create(soldier=soldier, name=unique("cs-p"))
        rows.append(
            Instance.objects.create(
                project=project,
                owner=soldier,
                name=unique("vm"),
                template=template,
                server_id=unique("srv"),
                status="ACTIVE",
                power_state=1,
                floating_ip="203.0.113.9",
            )
        )
    return rows


def everything_stored() -> str:
    """Every row of every table (sessions decoded), as one string to search for secrets."""
    parts: list[str] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 -- table names from the schema
            parts.append(f"{table}: {cursor.fetchall()!r}")
    for session in Session.objects.all():
        parts.append(repr(session.get_decoded()))
    return "\n".join(parts)


@pytest.fixture
def issued_tokens() -> Iterator[list[str]]:
    """The Keystone tokens the portal's client receives while the test runs (to hunt for them)."""
    from portal import cloud

    seen: list[str] = []

    def hook(response: Any, *args: Any, **kwargs: Any) -> None:
        token = response.headers.get("X-Subject-Token")
        if token:
            seen.append(token)

    session = cloud.get_client()._shared.requests_session
    session.hooks["response"].append(hook)
    yield seen
    if hook in session.hooks["response"]:
        session.hooks["response"].remove(hook)
