"""The cloud a test talks to, chosen with one switch: CODESQUARE_TEST_CLOUD.

- devcloud (default): the local stand-in from devcloud/, started on a free port.
- keystone: a real Keystone from PyPI (identity calls only).
- realcloud: the full real OpenStack from PyPI (Keystone, Nova, Neutron, Glance, Placement).
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

TARGET = os.environ.get("CODESQUARE_TEST_CLOUD", "devcloud")


@dataclass(frozen=True)
class CloudTarget:
    kind: str  # devcloud | keystone | realcloud
    clouds_yaml: Path
    cloud_name: str
    auth_url: str
    admin_password: str
    services: frozenset[str] = field(default_factory=lambda: frozenset({"identity"}))
    extra: dict = field(default_factory=dict)

    def has(self, service: str) -> bool:
        return service in self.services


def _start_devcloud_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudTarget]:
    from devcloud.testing import start_devcloud

    running = start_devcloud(tmp_path_factory.mktemp("devcloud"))
    try:
        yield CloudTarget(
            kind="devcloud",
            clouds_yaml=running.clouds_yaml,
            cloud_name="devcloud",
            auth_url=running.auth_url,
            admin_password=running.admin_password,
            services=frozenset({"identity", "compute", "network", "image"}),
            extra={"devcloud": running},
        )
    finally:
        running.stop()


@pytest.fixture(scope="session")
def devcloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A devcloud of this test session's own, whatever CODESQUARE_TEST_CLOUD says.

    For tests about devcloud itself and for fault injection, which only devcloud offers.
    """
    from devcloud.testing import start_devcloud

    running = start_devcloud(tmp_path_factory.mktemp("devcloud-own"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def cloud_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudTarget]:
    """The cloud named by CODESQUARE_TEST_CLOUD, started once per test session."""
    if TARGET == "devcloud":
        yield from _start_devcloud_target(tmp_path_factory)
    else:
        raise pytest.UsageError(
            f"CODESQUARE_TEST_CLOUD={TARGET!r} is not a known target "
            "(devcloud, keystone, realcloud)"
        )
