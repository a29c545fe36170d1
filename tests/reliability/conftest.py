"""Fixtures of the reliability tier: a whole deployment per test, on the session's database.

The tests here are slow by nature (each drives hundreds of operations through real worker
processes); `bin/test tests/reliability` runs them alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import translation

from portal import cloud
from tests.reliability.deployment import Deployment
from tests.reliability.matrix import Cohort, LeakScan, onboard_cohort

MATRIX_VMS = 100


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "postgresql: proves something about PostgreSQL (several machines on one database); "
        "deselected, and said so in the header, on any other database",
    )


def _on_postgresql() -> bool:
    from django.conf import settings

    return "postgresql" in settings.DATABASES["default"]["ENGINE"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _on_postgresql():
        return
    dropped = [item for item in items if item.get_closest_marker("postgresql")]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]
        config.stash[_POSTGRESQL_ONLY] = len(dropped)


def pytest_report_collectionfinish(config: pytest.Config) -> list[str]:
    count = config.stash.get(_POSTGRESQL_ONLY, 0)
    return (
        [f"deselected {count} PostgreSQL-only test(s): the database is not PostgreSQL"]
        if count
        else []
    )


_POSTGRESQL_ONLY = pytest.StashKey[int]()


@pytest.fixture(scope="session")
def leak_scans() -> list[LeakScan]:
    return []


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    """Failure messages are read (and tabled) in English."""
    with translation.override("en"):
        yield


@contextlib.contextmanager
def client_for(deployment: Deployment) -> Iterator[None]:
    """Point this process's portal client at the deployment's devcloud."""
    with (
        pytest.MonkeyPatch.context() as patch,
        override_settings(OPENSTACK_CLOUD="devcloud", OPENSTACK_TIMEOUT=10),
    ):
        patch.setenv("OS_CLIENT_CONFIG_FILE", str(deployment.devcloud.clouds_yaml))
        cloud.reset_client()
        try:
            yield
        finally:
            cloud.reset_client()


def build_cohort(
    root: Path,
    vms: int,
    blocker: Any,
    *,
    devcloud_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Cohort:
    """Onboard ``vms`` soldiers once; the database is emptied again afterwards."""
    with blocker.unblock():
        deployment = Deployment(root, devcloud_args=devcloud_args, env=env)
        try:
            with client_for(deployment), translation.override("en"):
                deployment.start_workers(3)
                cohort = onboard_cohort(deployment, vms=vms, dump=root / "portal.json")
        finally:
            deployment.stop()
        call_command("flush", interactive=False, verbosity=0)
    return cohort


@pytest.fixture(scope="session")
def cohort(
    tmp_path_factory: pytest.TempPathFactory, django_db_setup: Any, django_db_blocker: Any
) -> Cohort:
    return build_cohort(tmp_path_factory.mktemp("cohort"), MATRIX_VMS, django_db_blocker)


@pytest.fixture
def deployment(tmp_path: Path, cohort: Cohort) -> Iterator[Deployment]:
    """devcloud with the cohort onboarded, and the test process's client pointed at it."""
    running = Deployment(tmp_path, devcloud_state=cohort.devcloud_state)
    try:
        with client_for(running):
            yield running
    finally:
        running.stop()
