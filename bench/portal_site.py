"""A throwaway portal installation for benchmarks: its own devcloud, SQLite file and settings.

Import ``setup()`` before anything touches Django: it starts devcloud, points the portal's
settings at it through the environment (as a deployment would), runs the migrations and returns
the running devcloud.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup(*, build_seconds: float, **settings_env: str) -> tuple[Any, dict[str, str]]:
    """Start devcloud and configure Django for it; returns (devcloud, environment)."""
    from devcloud.testing import start_devcloud

    work = Path(tempfile.mkdtemp(prefix="codesquare-bench-"))
    devcloud = start_devcloud(work / "devcloud", build_seconds=build_seconds)
    env = {
        "READ_DOT_ENV": "false",
        "DEBUG": "false",
        "SECURE_HTTPS": "false",
        "SECRET_KEY": "bench-only-" + "k" * 40,
        "ALLOWED_HOSTS": "localhost",
        "VAR_DIR": str(work),
        "DATABASE_URL": os.environ.get("DATABASE_URL", f"sqlite:///{work / 'portal.sqlite3'}"),
        "OS_CLIENT_CONFIG_FILE": str(devcloud.clouds_yaml),
        "OS_CLOUD": "devcloud",
        "DJANGO_SETTINGS_MODULE": "codesquare.settings",
        **settings_env,
    }
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return devcloud, {**os.environ, **env}


def start_workers(count: int, env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    """``count`` real ``manage.py db_worker`` processes."""
    return [
        subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "manage.py"),
                "db_worker",
                "--interval",
                "0.05",
                "--no-startup-delay",
                "--no-reload",
                "--worker-id",
                f"bench-{n}",
            ],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n in range(count)
    ]


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=15)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_bare_view(
    process: subprocess.Popen[bytes], port: int, *, timeout: float, interval: float
) -> subprocess.Popen[bytes]:
    """The gunicorn ``process`` once its /bench/bare answers 200; stopped after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/bench/bare", headers={"Host": "localhost"})
            if connection.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(interval)
    process.terminate()
    raise SystemExit("gunicorn did not answer")
