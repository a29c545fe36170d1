"""Fixtures of the console tests: the integration tier's cloud and cast, plus staff logins.

The staff roles are the groups migration 0003 creates; tests log in through Django's test
client and drive the console over HTTP, the cloud being devcloud (or the real target).
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from tests.integration.conftest import *  # noqa: F403
from tests.integration.conftest import unique


@pytest.fixture(autouse=True)
def _plain_static_files(settings: Any) -> None:
    # Tests run with DEBUG off but without collectstatic's manifest.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def ensure_groups() -> None:
    """The groups of migration 0003, made again by its own function after a test flush."""
    migration = importlib.import_module("portal.migrations.0005_console")
    migration.create_groups(apps, None)


def staff_user(group: str) -> Any:
    ensure_groups()
    user = get_user_model().objects.create_user(
        username=unique(group[:4]), password="unused-" + unique("pw"), is_staff=True
    )
    user.groups.add(Group.objects.get(name=group))
    return user


def logged_in(user: Any, language: str = "en") -> Client:
    # Assertions read English; the Korean default is checked on its own.
    client = Client(headers={"Accept-Language": language})
    client.force_login(user)
    return client


@pytest.fixture
def operator_user(db: Any) -> Any:
    return staff_user("operators")


@pytest.fixture
def viewer_user(db: Any) -> Any:
    return staff_user("viewers")


@pytest.fixture
def operator(operator_user: Any) -> Client:
    return logged_in(operator_user)


@pytest.fixture
def viewer(viewer_user: Any) -> Client:
    return logged_in(viewer_user)
