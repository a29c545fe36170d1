"""Browser journeys: Debian's Chromium, driven by Playwright, against the portal run for real.

The package starts devcloud, a ``manage.py db_worker`` and gunicorn, each on a free
port, all on the test database this process reads (pytest-django's SQLite file, or PostgreSQL
through ``DATABASE_URL``). Every test is transactional: what it sets up is committed, so the
portal's processes see it, and the database is emptied after it.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from playwright.sync_api import Browser

from portal import cloud, services
from portal.models import VmTemplate
from tests.browser.journey import ARTIFACTS, AXE_RESULTS, COSTS, NARROW_CHECKED, Journey, axe_table
from tests.conftest import ROOT, clean_env, free_port, run_manage

CHROMIUM = os.environ.get("CODESQUARE_CHROMIUM", "/usr/lib/chromium/chromium")
# Playwright's sync API runs an event loop in this thread, and Django refuses ORM calls there
# unless told the code is synchronous anyway (it is; clean_env keeps this from the children).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
# Short enough that a launch takes seconds, long enough that a person (and a 2 s poll) sees
# the VM in "Building" before it runs; stop, start and reboot take half of it.
BUILD_SECONDS = 3.0


@dataclass
class Stack:
    """The running portal: its URL, its cloud and where its processes write their logs."""

    url: str
    devcloud: Any
    logs: list[Path]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    # Playwright's own browser download is not available here: Debian's build, called directly
    # (the /usr/bin/chromium wrapper script adds flags that break Playwright's pipe).
    return {**browser_type_launch_args, "executable_path": CHROMIUM}


def _database_url() -> str:
    """The test database as a DATABASE_URL for the child processes."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host = f"{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return f"postgres://{host}/{db['NAME']}"


def _wait_until_served(url: str, processes: list[subprocess.Popen[bytes]], logs: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"a portal process exited early; see {logs}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not serve {url}/healthz in 60 s; see {logs}")


def _collect_static(env: dict[str, str], where: Path) -> None:
    """collectstatic for the production storage (hashed names, compressed), kept between runs:
    on this machine it costs more than a whole journey, and its input rarely changes."""
    import django

    sources = [p for p in (ROOT / "static").rglob("*") if p.is_file()]
    fingerprint = f"{django.__version__} {len(sources)} {max(p.stat().st_mtime for p in sources)}"
    stamp = where / "fingerprint"
    env["STATIC_ROOT"] = str(where / "root")
    if stamp.is_file() and stamp.read_text() == fingerprint:
        return
    collected = run_manage("collectstatic", "--noinput", "--clear", "-v", "0", env=env)
    assert collected.returncode == 0, collected.stderr
    stamp.write_text(fingerprint)


def _staff(username: str, password: str, group: str) -> None:
    user = get_user_model().objects.create_user(username=username, password=password, is_staff=True)
    user.groups.add(Group.objects.get(name=group))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.django_db(transaction=True))


@dataclass
class People:
    """Who the journeys log in as (staff passwords typed into the login form) and what they use."""

    staff_passwords: dict[str, str]
    template: VmTemplate


@pytest.fixture
def people(stack: Stack) -> People:
    """Staff of both roles and a VM template, made again for every test (each ends in a flush)."""
    importlib.import_module("portal.migrations.0005_console").create_groups(apps, None)
    passwords = {"operator": "Op-" + os.urandom(9).hex(), "viewer": "Vw-" + os.urandom(9).hex()}
    _staff("journey-operator", passwords["operator"], "operators")
    _staff("journey-viewer", passwords["viewer"], "viewers")
    TYPED_PASSWORDS.update(passwords.values())
    return People(passwords, services.vm_template_from_cloud(name="cirros-tiny"))


# Every password a journey typed: no log, page, cookie or table may hold one afterwards.
TYPED_PASSWORDS: set[str] = set()
# Every journey of the package, for the last test's look through all their pages and cookies.
JOURNEYS: list[Journey] = []


def leaks(stack: Stack, journeys: list[Journey], *, database: bool = True) -> list[str]:
    """Where a cloud credential (every token devcloud issued, every password it holds) or a
    password a journey typed shows up: the processes' DEBUG logs, the pages saved, the browser's
    cookies and, while the test's rows are still there, every text column of the database.

    The one page whose job is to show a password (the reset, "shown once") is left out."""
    from tests.secret_scan import cloud_secrets, scan

    for journey in journeys:
        journey.record_cookies()
    wanted = cloud_secrets(stack.devcloud, stack.devcloud.admin_password) | TYPED_PASSWORDS
    return scan(
        wanted,
        files=[*stack.logs, *(p for j in journeys for p in j.html_saved)],
        texts=[json.dumps(c) for j in journeys for c in j.cookies_seen],
        database=database,
    )


_ARTIFACTS_CLEARED: list[bool] = []


@pytest.fixture(scope="package")
def stack(
    django_db_setup: Any, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    from devcloud.testing import start_devcloud

    # Once per session: pytest-django's reordering can set the package up twice in a full run,
    # and the second set-up must not delete what the first journeys saved.
    if not _ARTIFACTS_CLEARED:
        if ARTIFACTS.exists():
            shutil.rmtree(ARTIFACTS)
        AXE_RESULTS.clear()
        NARROW_CHECKED.clear()
        _ARTIFACTS_CLEARED.append(True)
    logs_dir = ARTIFACTS / "logs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    work = tmp_path_factory.mktemp("browser-stack")
    devcloud = start_devcloud(
        work / "devcloud", build_seconds=BUILD_SECONDS, extra_args=["--verbose"]
    )
    saved = {k: getattr(settings, k) for k in ("OPENSTACK_CLOUD", "OPENSTACK_NETWORK_MODE")}
    saved_config = os.environ.get("OS_CLIENT_CONFIG_FILE")
    processes: list[subprocess.Popen[bytes]] = []
    log_files: list[Any] = []
    try:
        # This process asks the cloud too: for the template, and afterwards to check that
        # nothing of the cohort is left.
        os.environ["OS_CLIENT_CONFIG_FILE"] = str(devcloud.clouds_yaml)
        settings.OPENSTACK_CLOUD = "devcloud"
        settings.OPENSTACK_NETWORK_MODE = "project"
        cloud.reset_client()
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = clean_env(
            VAR_DIR=str(work / "var"),
            SECRET_KEY=settings.SECRET_KEY,
            DEBUG="false",
            SECURE_HTTPS="false",
            ALLOWED_HOSTS="127.0.0.1",
            DATABASE_URL=_database_url(),
            OS_CLIENT_CONFIG_FILE=str(devcloud.clouds_yaml),
            OS_CLOUD="devcloud",
            OPENSTACK_NETWORK_MODE="project",
            OPERATION_POLL_SECONDS="0.2",
            OPERATION_RETRY_BASE_SECONDS="0.1",
            OPERATION_RETRY_MAX_SECONDS="0.5",
            LOG_LEVEL="DEBUG",
            PYTHONUNBUFFERED="1",
        )
        (work / "var").mkdir()
        # Kept between runs in pytest's cache when there is one (collecting takes ~18 s here).
        cache = getattr(request.config, "cache", None)
        _collect_static(env, cache.mkdir("browser-static") if cache else work / "static")

        def spawn(name: str, argv: list[str], **extra: str) -> None:
            log = (logs_dir / f"{name}.log").open("ab")
            log_files.append(log)
            processes.append(
                subprocess.Popen(
                    argv,
                    env={**env, **extra},
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )

        # One worker and one gunicorn process: one person at a time clicks, and on a shared
        # 2-core machine every extra Django process costs seconds to start and CPU to idle.
        spawn(
            "db_worker",
            [
                sys.executable, str(ROOT / "manage.py"), "db_worker",
                "--interval", "0.2", "--no-startup-delay", "--no-reload",
                "--worker-id", "browser",
            ],
        )  # fmt: skip
        spawn(
            "gunicorn",
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "codesquare/gunicorn.conf.py")],
            GUNICORN_BIND=f"127.0.0.1:{port}",
            GUNICORN_WORKERS="1",
            GUNICORN_THREADS="8",
            GUNICORN_CMD_ARGS="--log-level debug",
        )
        _wait_until_served(url, processes, logs_dir)
        yield Stack(
            url=url,
            devcloud=devcloud,
            logs=[*sorted(logs_dir.glob("*.log")), devcloud.log_path],
        )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in log_files:
            log.close()
        devcloud.stop()
        if devcloud.log_path.exists():
            with (logs_dir / "devcloud.log").open("ab") as kept:
                kept.write(devcloud.log_path.read_bytes())
        (ARTIFACTS / "axe.md").write_text(axe_table())
        for key, value in saved.items():
            setattr(settings, key, value)
        if saved_config is None:
            os.environ.pop("OS_CLIENT_CONFIG_FILE", None)
        else:
            os.environ["OS_CLIENT_CONFIG_FILE"] = saved_config
        cloud.reset_client()


@pytest.fixture
def journey(request: pytest.FixtureRequest, stack: Stack, browser: Browser) -> Iterator[Journey]:
    made = Journey(
        name=request.node.name.removeprefix("test_"), stack_url=stack.url, browser=browser
    )
    request.node.stash[JOURNEY] = made
    JOURNEYS.append(made)
    try:
        yield made
    finally:
        made.close()


JOURNEY = pytest.StashKey[Journey]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" and report.failed:
        made = item.stash.get(JOURNEY, None)
        if made is not None:
            saved = made.save_failure()
            if saved:
                report.sections.append(("browser", "failing step saved: " + ", ".join(saved)))
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if AXE_RESULTS:
        terminalreporter.write_sep(
            "=", "axe-core results per page (tests/browser/artifacts/axe.md)"
        )
        terminalreporter.write_line(axe_table())
        terminalreporter.write_line(
            "{pages:.0f} pages: axe-core {axe:.1f} s, screenshots {screenshots:.1f} s".format(
                **COSTS
            )
        )
