"""Fixtures of the reliability tier: a whole deployment per test, on the session's database.

The tests here are slow by nature (each drives hundreds of operations through real worker
processes); `bin/test tests/reliability` runs them alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.utils import translation

from portal import cloud
from tests.reliability.deployment import Deployment


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    """Failure messages are read (and tabled) in English."""
    with translation.override("en"):
        yield


@pytest.fixture
def deployment(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Deployment]:
    """devcloud and a portal's processes; the test process's client points at the same cloud."""
    running = Deployment(tmp_path)
    try:
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(running.devcloud.clouds_yaml))
        settings.OPENSTACK_CLOUD = "devcloud"
        settings.OPENSTACK_TIMEOUT = 10
        cloud.reset_client()
        yield running
    finally:
        running.stop()
        cloud.reset_client()
