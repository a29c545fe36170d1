"""A portal deployment on one machine: devcloud, real ``db_worker`` processes, the scheduler and
optionally gunicorn, all sharing the test session's database and writing DEBUG logs to files.

The test process itself is the staff member: it calls the services the admin actions call,
against the same database the workers run from.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from django.db import connection

from devcloud.testing import RunningDevcloud, start_devcloud
from tests.conftest import ROOT, clean_env, free_port

# Short builds keep the matrix inside its budget; nothing measured depends on their length
# (a launch waits for ACTIVE by re-queueing itself, never by holding a worker).
BUILD_SECONDS = 0.5


def database_url() -> str:
    """The URL of the database this test runs on, for the child processes."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    user = quote(settings.get("USER") or "")
    password = settings.get("PASSWORD") or ""
    auth = f"{user}:{quote(password)}@" if password else (f"{user}@" if user else "")
    host = settings.get("HOST") or "127.0.0.1"
    port = settings.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{settings['NAME']}"


def wait_until(
    condition: Callable[[], Any], *, timeout: float, interval: float = 0.1, what: str = ""
) -> Any:
    """Poll ``condition`` until it returns something true; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what or condition}")
        time.sleep(interval)


class Deployment:
    """One portal installation's processes; ``stop()`` ends every one it started."""

    def __init__(
        self,
        root: Path,
        *,
        build_seconds: float = BUILD_SECONDS,
        env: dict[str, str] | None = None,
        devcloud_state: Path | None = None,
        devcloud_args: tuple[str, ...] = (),
    ) -> None:
        self.root = root
        self.log_dir = root / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.build_seconds = build_seconds
        self.devcloud_dir = root / "devcloud"
        self.devcloud_args = devcloud_args
        if devcloud_state is not None:
            # A copy of a cloud prepared earlier (its own log left behind).
            shutil.copytree(
                devcloud_state, self.devcloud_dir, ignore=shutil.ignore_patterns("*.log")
            )
        self.devcloud = self._start_devcloud(port=None)
        self.port = int(urlsplit(self.devcloud.url).port or 0)
        self.env = clean_env(
            VAR_DIR=str(root / "var"),
            DATABASE_URL=database_url(),
            SECRET_KEY="reliability-" + "r7Wq" * 10,
            DEBUG="false",
            SECURE_HTTPS="false",
            ALLOWED_HOSTS="localhost,127.0.0.1",
            # Every web and worker process shares one token per scope through this cache.
            CACHE_URL=f"filecache://{root / 'cache'}",
            OS_CLIENT_CONFIG_FILE=str(self.devcloud.clouds_yaml),
            OS_CLOUD="devcloud",
            LOG_LEVEL="DEBUG",
            OPENSTACK_TIMEOUT="5",
            OPERATION_POLL_SECONDS="0.5",
            OPERATION_LEASE_SECONDS="3",
            OPERATION_STALE_GRACE_SECONDS="3",
            OPERATION_RETRY_BASE_SECONDS="0.2",
            OPERATION_RETRY_MAX_SECONDS="2",
            OPERATION_UNKNOWN_OUTCOME_SECONDS="5",
            RECONCILE_INTERVAL_SECONDS="86400",
            **(env or {}),
        )
        (root / "var").mkdir(exist_ok=True)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._log_files: list[Any] = []
        self._static_collected = False

    # --- devcloud ------------------------------------------------------------------------------

    def _start_devcloud(self, port: int | None) -> RunningDevcloud:
        return start_devcloud(
            self.devcloud_dir,
            port=port,
            build_seconds=self.build_seconds,
            # Every request logged at DEBUG, for the secret scan.
            extra_args=["--verbose", *self.devcloud_args],
        )

    def restart_devcloud(self) -> None:
        """Stop devcloud (SIGTERM) and start it again on the same port with the same state."""
        self.devcloud.stop()
        self.devcloud = self._start_devcloud(port=self.port)

    # --- portal processes ----------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], **env: str) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("ab")
        self._log_files.append(log)
        process = subprocess.Popen(
            [sys.executable, *argv],
            env={**self.env, **env},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes[name] = process
        return process

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        return self._spawn(
            name,
            [
                str(ROOT / "manage.py"),
                "db_worker",
                "--interval",
                "0.2",
                "--no-startup-delay",
                "--no-reload",
                "--worker-id",
                name,
            ],
        )

    def start_workers(self, count: int, prefix: str = "worker") -> list[str]:
        names = [f"{prefix}-{n}" for n in range(1, count + 1)]
        for name in names:
            self.start_worker(name)
        return names

    def start_scheduler(self) -> None:
        self._spawn("scheduler", [str(ROOT / "manage.py"), "cloud_schedule", "--interval", "1"])

    def start_web(self, name: str) -> str:
        """A gunicorn instance (the project's config, 2 workers) on a free port; its URL."""
        if not self._static_collected:
            result = subprocess.run(
                [sys.executable, str(ROOT / "manage.py"), "collectstatic", "--noinput", "-v0"],
                env=self.env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert result.returncode == 0, result.stderr[-2000:]
            self._static_collected = True
        port = free_port()
        self._spawn(
            name,
            ["-m", "gunicorn", "-c", str(ROOT / "codesquare" / "gunicorn.conf.py")],
            GUNICORN_BIND=f"127.0.0.1:{port}",
            GUNICORN_WORKERS="2",
            # A loaded machine must not turn a slow page into a killed worker.
            GUNICORN_TIMEOUT="300",
        )
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(f"{url}/healthz"), timeout=60, what=f"{name} to answer")
        return url

    def kill(self, name: str) -> None:
        """SIGKILL: the process gets no chance to tidy up, as in a crash or an OOM kill."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)

    def log_files(self) -> list[Path]:
        return [*sorted(self.log_dir.glob("*.log")), self.devcloud.log_path]

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
        self.processes.clear()
        for log in self._log_files:
            log.close()
        self._log_files.clear()
        self.devcloud.stop()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status < 500)
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except OSError:
        return False
