"""Fixtures shared by every test tier."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.testenv import TEST_ENV

ROOT = Path(__file__).resolve().parent.parent

pytest_plugins = ["tests.cloud_targets"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_condition(
    condition: Callable[[], Any], *, timeout: float = 30, interval: float = 0.02, what: str = ""
) -> Any:
    """Poll ``condition`` until it returns something true (and return that): a test waits for
    what it needs, not for a fixed time that is too long on a quiet machine and too short on a
    loaded one."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or condition}")
        time.sleep(interval)


def clean_env(**overrides: str) -> dict[str, str]:
    """An environment for a child Django process: no .env file, nothing from the test settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "OS_"))}
    # PROMETHEUS_MULTIPROC_DIR: the settings put this process's own there; a child derives
    # its own from its VAR_DIR.
    for key in (*TEST_ENV, "DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(key, None)
    env["READ_DOT_ENV"] = "false"
    env["DJANGO_SETTINGS_MODULE"] = "codesquare.settings"
    env.update(overrides)
    return env


def run_manage(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def child_env(tmp_path: Path) -> dict[str, str]:
    """A production-like environment for a child process, with its own var dir."""
    return clean_env(
        VAR_DIR=str(tmp_path),
        SECRET_KEY="k3y-" + "x7Qp!" * 12,
        DEBUG="false",
        ALLOWED_HOSTS="portal.codesquare.example",
    )
