"""The README's commands: Python discovery, the no-test guard, and bin/run's start and stop."""

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT, clean_env, free_port


def _bash(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_find_python_picks_a_version_of_at_least_3_12() -> None:
    result = _bash(f'source {ROOT}/bin/_lib.sh && "$(find_python)" -V', dict(os.environ))

    assert result.returncode == 0, result.stderr
    major, minor = result.stdout.split()[1].split(".")[:2]
    assert (int(major), int(minor)) >= (3, 12)


def test_setup_stops_with_advice_when_no_python_is_new_enough(tmp_path: Path) -> None:
    # A machine with only Python 3.11 on PATH and no pyenv.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("bash", "dirname", "cat", "sha256sum", "cut", "grep", "sort"):
        target = subprocess.run(
            ["bash", "-c", f"command -v {tool}"], capture_output=True, text=True
        )
        (bindir / tool).symlink_to(target.stdout.strip())
    (bindir / "python3").symlink_to("/usr/bin/python3.11")
    project = tmp_path / "project"
    (project / "bin").mkdir(parents=True)
    (project / "bin" / "_lib.sh").write_text((ROOT / "bin" / "_lib.sh").read_text())

    result = _bash(
        f"source {project}/bin/_lib.sh && ensure_venv", {"PATH": str(bindir), "HOME": str(tmp_path)}
    )

    assert result.returncode == 1
    assert "needs Python 3.12 or newer" in result.stderr
    assert not (project / ".venv").exists()


def test_browser_setup_says_what_to_install_when_it_may_not_install_it(tmp_path: Path) -> None:
    # Not root, and no Chromium where the browser tests look for it.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "id").write_text("#!/bin/sh\necho 1000\n")
    (bindir / "id").chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
    env["CODESQUARE_CHROMIUM"] = str(tmp_path / "no-chromium")

    result = _bash(f"source {ROOT}/bin/_lib.sh && ensure_browser", env)

    assert result.returncode == 1
    assert "apt-get install chromium" in result.stderr


def test_bin_test_fails_when_no_test_ran() -> None:
    result = subprocess.run(
        [str(ROOT / "bin" / "test"), "tests/test_settings.py", "-k", "no_test_has_this_name"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"},
    )

    assert result.returncode == 1
    assert "collected no tests" in result.stderr


def _start_bin_run(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """bin/run started in its own process group; it and what it printed up to its banner."""
    proc = subprocess.Popen(
        [str(ROOT / "bin" / "run")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    banner = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 240
        for line in proc.stdout:
            banner.append(line)
            if "Press Ctrl-C" in line or time.monotonic() > deadline:
                break
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    return proc, "".join(banner)


@pytest.mark.cloud
def test_bin_run_serves_the_portal_and_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    port, devcloud_port = free_port(), free_port()
    env = clean_env(VAR_DIR=str(tmp_path / "var"), PORT=str(port), DEVCLOUD_PORT=str(devcloud_port))
    proc, text = _start_bin_run(env)
    try:
        assert f"http://127.0.0.1:{port}/" in text, text
        assert "demo staff login:" in text
        assert "demo operator login:" in text
        assert "demo viewer login:" in text
        assert "demo soldier login:" in text

        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert health.status_code == 200
        identity = requests.get(f"http://127.0.0.1:{devcloud_port}/identity/v3", timeout=10)
        assert identity.status_code == 200

        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    # Nothing the run command started is left behind.
    leftovers = subprocess.run(
        ["pgrep", "-g", str(proc.pid)], capture_output=True, text=True, check=False
    )
    assert leftovers.stdout.strip() == ""
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)


def test_bin_run_against_a_real_cloud_seeds_no_published_login(tmp_path: Path) -> None:
    # OS_AUTH_URL names a cloud that is not bin/run's devcloud (here nothing listens there).
    port, cloud_port = free_port(), free_port()
    var = tmp_path / "var"
    env = clean_env(
        VAR_DIR=str(var),
        PORT=str(port),
        OS_AUTH_URL=f"http://127.0.0.1:{cloud_port}/identity/v3",
        OS_USERNAME="codesquare-portal",
        OS_PASSWORD="not-published",
        OS_PROJECT_NAME="admin",
        OS_USER_DOMAIN_ID="default",
        OS_PROJECT_DOMAIN_ID="default",
    )
    proc, text = _start_bin_run(env)
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert f"http://127.0.0.1:{port}/" in text, text
    assert "starting devcloud" not in text
    assert "demo" not in text.replace("no demo logins", "")
    assert "createsuperuser" in text
    with sqlite3.connect(var / "db.sqlite3") as db:
        assert db.execute("select count(*) from auth_user").fetchone() == (0,)
