"""Fixtures of the security tests: the integration tier's cloud and tasks, plus every role.

The cast is the one the console and soldier-page tests use: soldiers log in as the Keystone
backend would, staff are the two groups of migration 0005.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.console.conftest import ensure_groups, staff_user  # noqa: F401
from tests.integration.conftest import *  # noqa: F403


@pytest.fixture(autouse=True)
def _plain_static_files(settings: Any) -> None:
    # Tests run with DEBUG off but without collectstatic's manifest.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
