"""Load: 500 soldiers logged in and polling their VM card while a 100-VM batch runs.

Run from the repository root::

    .venv/bin/python bench/load_self_service.py          # 500 soldiers, 60 s + 60 s of polling
    .venv/bin/python bench/load_self_service.py --ci     # CI: 200 soldiers, 50 VMs, 20 s + 20 s
    .venv/bin/python bench/load_self_service.py --scenario morning-start   # 500 VMs started

What runs, all on loopback: devcloud (short build delays), PostgreSQL (a fresh database made
beside the one ``DATABASE_URL`` names, dropped at the end), gunicorn with 2 workers serving the
portal (plus the bench's bare view), one real ``manage.py db_worker``, and locust
(``load_locust.py``, headless, in its own process). Each simulated soldier has a Keystone
account and a VM in devcloud; it logs in through ``/login/`` (Keystone checks the password) and
opens ``/``. Once all are in, two phases of the same shape: every soldier asks for a bare Django
view every 2 s (the baseline, ``--baseline-time``, default the same as ``--run-time``), then
for its VM card every 2 s as the page does (``--run-time``); same soldiers, same pace, same
gunicorn. When the card phase starts, the bench queues a 100-VM launch batch through the
service the console's launch action calls, and the worker runs it meanwhile.

``--scenario morning-start`` (``--soldiers``, default 500; ``--ci`` 100): the soldiers' VMs
are shut off in devcloud (made through its bulk endpoint, mirrored by one reconcile pass), and
gunicorn runs with the production config's own worker count. After the logins and a bare-view
phase of the same shape (``--baseline-time``, default 30 s; --ci 20 s), the bench starts every
VM at once with one batch of starts through the service the console's "Start" action calls;
the worker (one, as ``bin/run`` starts; ``--workers``) sends them to devcloud. Each soldier's
page, opened at login, stays open: its card asks with the page's ``seen`` value at the pace
the last answer set (every 20 s at rest, every 2 s under way: 200 new card, 204 nothing new),
until it shows the VM Running. Printed: the time of each phase, the request figures, the polls'
answers, the cloud calls, and PASS/FAIL against: no failed request, no cloud call by the web
processes while polling, poll p99 at most 3x that of a bare view asked beside the polls (every
fourth poll of each soldier, so under the same load; the quiet bare-view phase's ratio is
printed too), and every VM Running (mirror, devcloud and card). Results:
``bench/results/morning-start.md``.

Which process made each cloud call: the web processes and the worker each reach devcloud
through their own recording loopback relay (their own clouds.yaml and token cache), and the
request ids the relays saw are looked up in devcloud's request log. Required: no failed
request, every login through, no cloud call by the web processes while polling and the whole
batch launched; the exit status is 1 otherwise.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/cs_load"
RESULTS = BENCH_DIR / "results" / "load-self-service.md"
BUILD_SECONDS = 0.5  # short on purpose: the batch must fit the window; the figures do not need it


# --- a recording relay between one kind of portal process and devcloud ------------------------


@dataclass
class Relay:
    """A loopback HTTP relay to devcloud that remembers the request id of every answer.

    Devcloud writes its own address into token catalogs and links; the relay rewrites it to
    its own, so a client that came in through the relay stays on it.
    """

    name: str
    upstream_port: int
    seen: list[tuple[float, str, str, int, str]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    def start(self) -> None:
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            upstream: http.client.HTTPConnection | None = None

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the record is kept in relay.seen

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("connection", "keep-alive", "host")
                }
                old = f"127.0.0.1:{relay.port}"
                new = f"127.0.0.1:{relay.upstream_port}"
                headers = {k: v.replace(old, new) for k, v in headers.items()}
                for attempt in (1, 2):
                    if self.upstream is None:
                        self.upstream = http.client.HTTPConnection(
                            "127.0.0.1", relay.upstream_port, timeout=120
                        )
                    try:
                        self.upstream.request(self.command, self.path, body=body, headers=headers)
                        answer = self.upstream.getresponse()
                        payload = answer.read()
                        break
                    except (ConnectionError, http.client.HTTPException):
                        # Devcloud closed a kept-alive connection: one retry on a new one.
                        self.upstream.close()
                        self.upstream = None
                        if attempt == 2:
                            raise
                payload = payload.replace(new.encode(), old.encode())
                self.send_response_only(answer.status, answer.reason)
                for key, value in answer.getheaders():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value.replace(new, old))
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
                request_id = answer.getheader("x-openstack-request-id") or ""
                relay.seen.append(
                    (time.time(), self.command, self.path.split("?")[0], answer.status, request_id)
                )

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def clouds_yaml(self, original: Path, target: Path) -> Path:
        """devcloud's clouds.yaml with the auth URL pointing at this relay."""
        import yaml

        config = yaml.safe_load(original.read_text())
        auth = config["clouds"]["devcloud"]["auth"]
        parts = urlsplit(auth["auth_url"])
        auth["auth_url"] = urlunsplit(parts._replace(netloc=f"127.0.0.1:{self.port}"))
        target.write_text(yaml.safe_dump(config))
        target.chmod(0o600)
        return target


# --- a database of its own ---------------------------------------------------------------------


def scratch_database(base_url: str) -> tuple[str, str]:
    """Create a fresh database beside the one ``base_url`` names; (its URL, its name)."""
    import psycopg

    parts = urlsplit(base_url)
    name = f"{parts.path.lstrip('/') or 'cs_load'}_run{os.getpid()}"
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}")), name


def drop_database(base_url: str, name: str) -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    admin = urlunsplit(urlsplit(base_url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the fixture --------------------------------------------------------------------------------


def _own_connection[**P, R](work: Callable[P, R]) -> Callable[P, R]:
    """Run ``work`` in a pool thread and close that thread's database connection after it."""

    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from django.db import connection

        try:
            return work(*args, **kwargs)
        finally:
            connection.close()

    return wrapper


def start_site(
    build_seconds: float, *, operation_poll_seconds: int
) -> tuple[Any, dict[str, str], Path, list[Relay]]:
    """devcloud and the portal's settings as in production (persistent connections, DEBUG off
    so pages name their assets through the manifest), and a recording relay per process kind:
    (devcloud, env, the work directory, [web relay, worker relay])."""
    from django.core.management import call_command
    from portal_site import setup

    devcloud, env = setup(
        build_seconds=build_seconds,
        CONN_MAX_AGE="60",
        OPERATION_POLL_SECONDS=str(operation_poll_seconds),
        LOG_LEVEL="WARNING",
    )
    call_command("collectstatic", interactive=False, verbosity=0)
    devcloud_port = int(urlsplit(devcloud.url).port or 0)
    return (
        devcloud,
        env,
        Path(env["VAR_DIR"]),
        [Relay("web", devcloud_port), Relay("worker", devcloud_port)],
    )


def cloud_soldier(devcloud: Any, name: str, **server: str) -> tuple[Any, str, Any, str]:
    """A soldier with a Keystone account (its password), a project and one devcloud server
    (``server``: devcloud's bulk-server options): (soldier, password, project, server id)."""
    from django.contrib.auth import get_user_model

    from portal import cloud, services
    from portal.models import Project

    client = cloud.get_client()
    domain = services.onboarding.domain_id()
    user = get_user_model().objects.create_user(username=name)
    soldier = services.soldier_create(user=user, service_number=name.upper(), name=name)
    password = secrets.token_urlsafe(18)
    account = client.create_user(
        name=soldier.keystone_user_name,
        domain_id=domain,
        password=password,
        description=services.onboarding.account_marker(soldier),
    )
    project_name = services.onboarding.project_name(soldier)
    project_id = client.create_project(name=project_name, domain_id=domain).id
    server_id = devcloud.faults.bulk_servers(
        project_id=project_id,
        count=1,
        name_prefix=soldier.keystone_user_name,
        user_id=account.id,
        **server,
    )[0]
    soldier.keystone_user_id = account.id
    soldier.state = soldier.State.ACTIVE
    soldier.save(update_fields=["keystone_user_id", "state"])
    project = Project.objects.create(
        soldier=soldier, keystone_id=project_id, name=project_name, roles_granted=True
    )
    return soldier, password, project, server_id


def make_pollers(count: int, devcloud: Any) -> list[dict[str, str]]:
    """``count`` soldiers with a Keystone account, a project and a server; their credentials.

    Their cards are held in "Building" (a launch operation waiting for ACTIVE, with no task
    behind it) so the page keeps polling all through the window, as during a long build.
    """
    from portal import services
    from portal.models import Instance, Operation

    template = services.vm_template_from_cloud(name="load")

    @_own_connection
    def one(n: int) -> dict[str, str]:
        soldier, password, project, server_id = cloud_soldier(devcloud, f"load{n:04d}")
        instance = Instance.objects.create(
            project=project,
            owner=soldier,
            name=f"{soldier.keystone_user_name}-vm",
            template=template,
            image_name=template.image_name,
            flavor_name=template.flavor_name,
            server_id=server_id,
            status="BUILD",
            pending_action=Instance.Action.LAUNCH,
        )
        op = Operation.objects.create(
            kind=Operation.Kind.LAUNCH,
            soldier=soldier,
            instance=instance,
            state=Operation.State.RUNNING,
            step="wait_active",
            params={"action": "launch"},
        )
        Instance.objects.filter(pk=instance.pk).update(pending_operation=op)
        return {"username": soldier.keystone_user_name, "password": password}

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


def make_batch_soldiers(count: int) -> list[Any]:
    """``count`` soldiers onboarded through the service (run here, in threads), without a VM."""
    from django.contrib.auth import get_user_model

    from portal import services

    @_own_connection
    def one(n: int) -> Any:
        user = get_user_model().objects.create_user(username=f"batch{n:03d}")
        soldier = services.soldier_create(
            user=user, service_number=f"BATCH-{n:03d}", name=f"batch {n}"
        )
        op = services.soldier_onboard(soldier=soldier, run_now=True)
        assert op.state == "succeeded", op.message_text
        soldier.refresh_from_db()
        return soldier

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(count)))


# --- processes ----------------------------------------------------------------------------------


def kind_env(env: dict[str, str], devcloud: Any, relay: Relay) -> dict[str, str]:
    """The environment of one kind of portal process: its cloud calls go through ``relay``."""
    work = Path(env["VAR_DIR"])
    return {
        **env,
        # Each kind has its own token cache: a catalog fetched through one relay must
        # not send the other kind's calls through it.
        "CACHE_URL": f"filecache://{work / ('cache-' + relay.name)}",
        # ... but the sessions and the polls' versions are shared, as deployed.
        "POLL_CACHE_URL": env.get("POLL_CACHE_URL") or f"filecache://{work / 'cache-poll'}",
        "OS_CLIENT_CONFIG_FILE": str(
            relay.clouds_yaml(devcloud.clouds_yaml, work / f"clouds-{relay.name}.yaml")
        ),
    }


def start_gunicorn(
    env: dict[str, str], port: int, workers: int | None = 2
) -> subprocess.Popen[bytes]:
    """gunicorn with the production config; ``workers`` None keeps the config's own count."""
    from portal_site import ROOT, wait_for_bare_view

    env = {k: v for k, v in env.items() if not k.startswith("GUNICORN_")}
    if workers is not None:
        env["GUNICORN_WORKERS"] = str(workers)
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "codesquare/gunicorn.conf.py")],
        env={
            **env,
            "DJANGO_SETTINGS_MODULE": "bench_settings",
            "PYTHONPATH": os.pathsep.join([str(BENCH_DIR), str(ROOT)]),
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "ALLOWED_HOSTS": "localhost,127.0.0.1",
            # gunicorn 27 opens a control socket at one path in $HOME by default: several
            # gunicorns on one machine would fight over it, and this one needs none.
            "GUNICORN_CMD_ARGS": "--log-level warning --no-control-socket",
            "GUNICORN_ACCESSLOG": "/dev/null",
            "LOG_LEVEL": "WARNING",
        },
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    return wait_for_bare_view(process, port, timeout=60, interval=0.2)


def lockout_check(
    port: int, victim: dict[str, str], bystander: dict[str, str]
) -> tuple[int, int, int]:
    """django-axes after the load: (failure limit, status of the locked soldier's right
    password, status of another soldier's login from the same address).

    500 good logins from one address must not trip it; this shows it is still on.
    """
    import http.cookiejar
    import urllib.error
    import urllib.parse
    import urllib.request

    from django.conf import settings

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    def log_in(username: str, password: str) -> int:
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
        url = f"http://127.0.0.1:{port}/login/"
        with opener.open(url, timeout=60) as page:
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.read().decode())
        assert token is not None
        form = {"username": username, "password": password, "csrfmiddlewaretoken": token[1]}
        try:
            with opener.open(url, urllib.parse.urlencode(form).encode(), timeout=60) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:  # 302 (not followed) and 429 land here
            return int(exc.code)

    limit = int(settings.AXES_FAILURE_LIMIT)
    for _ in range(limit):
        log_in(victim["username"], "not-" + victim["password"])
    return (
        limit,
        log_in(victim["username"], victim["password"]),
        log_in(bystander["username"], bystander["password"]),
    )


def wait_batch(batch_id: int, timeout: float) -> float | None:
    """Seconds until the batch finished, counted from its creation; None if it did not."""
    from portal.models import Batch

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = Batch.objects.get(pk=batch_id)
        if batch.finished_at is not None:
            return (batch.finished_at - batch.created_at).total_seconds()
        time.sleep(0.5)
    return None


Sample = tuple[float, dict[str, dict[int, float]]]
MACHINE = "machine, every process"


def cpu_sample(groups: dict[str, list[int]], database: str) -> Sample:
    """(wall clock, CPU seconds used so far by each process of each group, and the machine's).

    Per process, so that a database backend that came or went between two samples counts only
    for what it used in between (one that ended in between is not seen: a small undercount).
    """
    import psutil
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [database])
        backends = [int(row[0]) for row in cursor.fetchall()]
    used: dict[str, dict[int, float]] = {}
    for name, pids in {**groups, "PostgreSQL (this database's backends)": backends}.items():
        used[name] = {}
        for pid in pids:
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            used[name][pid] = times.user + times.system
    machine = psutil.cpu_times()
    used[MACHINE] = {0: sum(machine) - machine.idle - getattr(machine, "iowait", 0)}
    return time.monotonic(), used


def cpu_used(
    before: dict[str, dict[int, float]], after: dict[str, dict[int, float]], name: str
) -> float:
    return sum(t - before[name].get(pid, 0.0) for pid, t in after[name].items())


def process_groups(
    gunicorn: subprocess.Popen[bytes],
    workers: list[subprocess.Popen[bytes]],
    load: Any,
    devcloud: Any,
) -> dict[str, list[int]]:
    import psutil

    web = [c.pid for c in psutil.Process(gunicorn.pid).children()]
    return {
        f"gunicorn ({len(web)} workers)": web,
        "db_worker" if len(workers) == 1 else f"db_worker ({len(workers)})": [
            w.pid for w in workers
        ],
        "locust": [load.pid],
        "devcloud": [devcloud.process.pid],
    }


# --- figures ------------------------------------------------------------------------------------


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))
    return sorted_values[index]


UUID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}")
LOGIN_NAMES = ("login form", "login", "home")
POLL_NAMES = ("card poll", "bare view")


def summarize(
    requests: list[list[Any]], names: tuple[str, ...], start: float, end: float
) -> dict[str, dict[str, Any]]:
    """Per request name, for requests started in [start, end): count, rate, percentiles."""
    by_name: dict[str, list[list[Any]]] = {name: [] for name in names}
    for row in requests:
        name, began = row[0], row[1]
        if name in by_name and began is not None and start <= began < end:
            by_name.setdefault(name, []).append(row)
    figures = {}
    for name, rows in by_name.items():
        if not rows:
            continue
        times = sorted(float(r[2]) for r in rows)
        figures[name] = {
            "requests": len(rows),
            "rate": len(rows) / (end - start),
            "errors": sum(1 for r in rows if r[3]),
            "p50": percentile(times, 0.50),
            "p95": percentile(times, 0.95),
            "p99": percentile(times, 0.99),
            "max": times[-1],
            "mean": statistics.fmean(times),
        }
    return figures


def attribute(
    log: list[dict[str, Any]], relays: list[Relay], window: tuple[float, float]
) -> dict[str, Counter[str]]:
    """Count devcloud's log entries by the process kind whose relay saw their request id."""
    owner = {rid: relay.name for relay in relays for (_, _, _, _, rid) in relay.seen if rid}
    counts: dict[str, Counter[str]] = {}
    for entry in log:
        who = owner.get(entry["request_id"], "other (the bench itself)")
        phase = "window" if window[0] <= entry["time"] < window[1] else "outside"
        path = UUID.sub("{id}", entry["path"])
        key = f"{entry['service']} {entry['method']} {path}"
        counts.setdefault(f"{who}|{phase}", Counter())[key] += 1
    return counts


# --- the morning start: every soldier's VM started at once, every card polling until Running ---


MORNING_RESULTS = BENCH_DIR / "results" / "morning-start.md"
# devcloud's start takes half its build delay: small, so the figures are the portal's own.
MORNING_BUILD_SECONDS = 0.5
MORNING_P99_LIMIT = 3.0  # poll p99 may be at most this many times the bare view's p99


def make_sleepers(count: int, devcloud: Any) -> tuple[list[dict[str, str]], list[int]]:
    """``count`` soldiers, each with a Keystone account, a project and a VM shut off in devcloud.

    The servers are made through devcloud's bulk endpoint (SHUTOFF, with their ports), so the
    worker's starts are real cloud calls; the mirrors are then filled by one reconcile pass, the
    portal's own way of learning a server's state. Returns (credentials, the instances' pks).
    """
    from portal import services
    from portal.models import Instance

    template = services.vm_template_from_cloud(name="morning")

    @_own_connection
    def one(n: int) -> tuple[dict[str, str], int]:
        soldier, password, project, server_id = cloud_soldier(
            devcloud, f"morning{n:04d}", status="SHUTOFF"
        )
        instance = Instance.objects.create(
            project=project,
            owner=soldier,
            name=f"{soldier.keystone_user_name}-0001",
            template=template,
            server_id=server_id,
        )
        return {"username": soldier.keystone_user_name, "password": password}, instance.pk

    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(one, range(count)))
    sync = services.cloud_reconcile(run_now=True)
    assert sync.state == "succeeded", sync.message_text
    return [m[0] for m in made], [m[1] for m in made]


def bulk_start(instance_ids: list[int]) -> Any:
    """What the console's "Start" action does once the operator confirms: one batch of starts."""
    from django.contrib.auth import get_user_model

    from portal import services
    from portal.models import Instance

    operator, _ = get_user_model().objects.get_or_create(
        username="morning-operator", defaults={"is_staff": True}
    )
    action = Instance.Action.START
    return services.batch_apply(
        kind=str(action),
        targets=Instance.objects.filter(pk__in=instance_ids).order_by("pk"),
        start=lambda i, batch: services.instance_power(
            instance=i, action=action, requested_by=operator, batch=batch
        ),
        requested_by=operator,
    )


def running_count(instance_ids: list[int]) -> int:
    """How many of these VMs the portal's mirror shows Running with nothing pending."""
    from portal.models import Instance
    from portal.openstack.types import PowerState, ServerStatus

    return Instance.objects.filter(
        pk__in=instance_ids,
        status=ServerStatus.ACTIVE,
        power_state=PowerState.RUNNING,
        pending_operation__isnull=True,
    ).count()


def cloud_active(server_ids: set[str]) -> int:
    """How many of these servers devcloud itself lists as ACTIVE and running."""
    from portal import cloud
    from portal.openstack.types import PowerState, ServerStatus

    return sum(
        1
        for server in cloud.get_client().list_servers(all_projects=True)
        if server.id in server_ids
        and server.status is ServerStatus.ACTIVE
        and server.power_state == PowerState.RUNNING
    )


@dataclass
class Morning:
    """What one morning-start run measured, beside locust's own record."""

    soldiers: int
    gunicorn_workers: int = 0
    phases: dict[str, float] = field(default_factory=dict)
    queued: int = 0
    refusals: list[str] = field(default_factory=list)
    batch_seconds: float | None = None
    batch_failed: int = 0
    mirror_running: int = 0
    # Seconds from the operator's click until the mirror showed every VM Running.
    all_running_seconds: float | None = None
    cloud_running: int = 0
    calls: dict[str, Counter[str]] = field(default_factory=dict)
    cpu: tuple[Sample, ...] = ()


def morning_start(args: argparse.Namespace) -> int:
    """The morning start: see ``--scenario morning-start`` in the module's docstring."""
    from locust.util.timespan import parse_timespan

    soldiers = args.soldiers or args.users or (100 if args.ci else 500)
    baseline_seconds = parse_timespan(args.baseline_time or ("20s" if args.ci else "30s"))
    start_timeout = parse_timespan(args.start_timeout or ("240s" if args.ci else "900s"))
    results = args.results or (None if args.ci else MORNING_RESULTS)
    base_database = os.environ.get("DATABASE_URL", DEFAULT_DATABASE)
    if not base_database.startswith("postgres"):
        raise SystemExit("the load bench runs on PostgreSQL: DATABASE_URL=postgres://...")
    database_url, database_name = scratch_database(base_database)
    os.environ["DATABASE_URL"] = database_url
    began = time.monotonic()
    run = Morning(soldiers=soldiers)

    from portal_site import ROOT, free_port, start_workers, stop

    # As .env.example has them for production: a wait step that looks at the cloud every 2 s.
    devcloud, env, work, relays = start_site(MORNING_BUILD_SECONDS, operation_poll_seconds=2)
    processes: list[subprocess.Popen[bytes]] = []
    locust_out = work / "locust.json"
    ready_file, card_file, start_file = (work / n for n in ("ready", "card", "start"))
    log: list[dict[str, Any]] = []
    started = None
    try:
        for relay in relays:
            relay.start()
        credentials, instance_ids = make_sleepers(soldiers, devcloud)
        from portal.models import Instance

        server_ids = {
            str(server_id)
            for server_id in Instance.objects.filter(pk__in=instance_ids).values_list(
                "server_id", flat=True
            )
        }
        stopped = Instance.objects.filter(pk__in=instance_ids, status="SHUTOFF").count()
        print(
            f"setup: {soldiers} soldiers with accounts and shut-off VMs ({stopped} mirrored "
            f"SHUTOFF) at {time.monotonic() - began:.0f} s"
        )
        secrets_file = work / "credentials.json"
        secrets_file.touch(mode=0o600)
        secrets_file.write_text(json.dumps(credentials))
        del credentials
        from django.db import connections

        connections.close_all()  # the forked-off processes get their own
        port = free_port()
        # The production config's own worker count on this machine (gunicorn.conf.py).
        processes.append(start_gunicorn(kind_env(env, devcloud, relays[0]), port, workers=None))
        processes.extend(start_workers(args.workers, kind_env(env, devcloud, relays[1])))
        run.phases["setup"] = time.monotonic() - began
        print(f"setup done in {run.phases['setup']:.0f} s; gunicorn on port {port}")
        devcloud.faults.clear_requests()
        for relay in relays:
            relay.seen.clear()

        load = subprocess.Popen(
            [
                sys.executable,
                str(BENCH_DIR / "load_locust.py"),
                "--scenario",
                "morning-start",
                "--host",
                f"http://127.0.0.1:{port}",
                "--credentials",
                str(secrets_file),
                "--spawn-rate",
                str(args.spawn_rate),
                "--baseline-seconds",
                str(baseline_seconds),
                "--ready-file",
                str(ready_file),
                "--card-file",
                str(card_file),
                "--start-file",
                str(start_file),
                "--start-timeout",
                str(start_timeout),
                "--out",
                str(locust_out),
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(BENCH_DIR)},
        )
        processes.append(load)
        while not ready_file.exists() and load.poll() is None:
            time.sleep(0.05)
        # Every gunicorn worker has booted by now: the logins went through them.
        groups = process_groups(processes[0], processes[1:-1], load, devcloud)
        run.gunicorn_workers = len(next(v for k, v in groups.items() if k.startswith("gunicorn")))
        cpu_ready = cpu_sample(groups, database_name)
        while not card_file.exists() and load.poll() is None:
            time.sleep(0.05)
        cpu_start = cpu_sample(groups, database_name)
        if card_file.exists():
            clicked = time.monotonic()
            started = bulk_start(instance_ids)
            run.phases["queue the start"] = time.monotonic() - clicked
            run.queued = len(started.operations)
            run.refusals = started.refusals
            # The soldiers open their page once the batch is there to be seen.
            partial = start_file.with_suffix(".part")
            partial.write_text(str(time.time()))
            partial.rename(start_file)
            deadline = clicked + start_timeout
            while time.monotonic() < deadline and load.poll() is None:
                run.mirror_running = running_count(instance_ids)
                if run.mirror_running == soldiers:
                    run.all_running_seconds = time.monotonic() - clicked
                    break
                time.sleep(0.25)
        # Sampled while locust still runs: a process that has ended is no longer seen.
        run.cpu = (cpu_ready, cpu_start, cpu_sample(groups, database_name))
        load.wait(timeout=start_timeout + 180)
        run.mirror_running = running_count(instance_ids)
        if started is not None and started.batch is not None:
            run.batch_seconds = wait_batch(started.batch.pk, timeout=30)
            run.batch_failed = started.batch.operations.filter(state="failed").count()
        log = devcloud.faults.requests()
        run.cloud_running = cloud_active(server_ids)  # after the log: not counted in it
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        stop([p for p in processes if p.poll() is None])
        for relay in relays:
            relay.stop()
        devcloud.stop()
        drop_database(base_database, database_name)

    outcome = json.loads(locust_out.read_text())
    shutil.rmtree(work, ignore_errors=True)
    queue = run.phases.pop("queue the start", float("nan"))
    run.phases["logins"] = outcome["ready_at"] - outcome["started_at"]
    run.phases["bare-view phase"] = outcome["card_at"] - outcome["ready_at"]
    run.phases["queue the start (one batch, one transaction)"] = queue
    run.phases["start to all Running (the portal's mirror)"] = run.all_running_seconds or float(
        "nan"
    )
    last = max((d["at"] for d in outcome["done"]), default=None)
    if last is not None and outcome["queued_at"]:
        run.phases["start queued to the last card stable"] = last - outcome["queued_at"]
    run.phases["the whole run"] = time.monotonic() - began
    run.calls = attribute(log, relays, (outcome["ready_at"], outcome["end_at"]))
    return morning_report(
        args=args, run=run, outcome=outcome, results=results, database=base_database
    )


def _shown_url(url: str) -> str:
    """A database URL fit for a results file: its password left out."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":…@")
    return urlunsplit(parts._replace(netloc=netloc))


def morning_report(
    *,
    args: argparse.Namespace,
    run: Morning,
    outcome: dict[str, Any],
    results: Path | None,
    database: str,
) -> int:
    lines: list[str] = []
    out = lines.append
    requests = outcome["requests"]
    queued_at = outcome["queued_at"] or outcome["end_at"]
    logins = summarize(
        requests,
        (*LOGIN_NAMES, "login (busy: try again shortly)"),
        outcome["started_at"],
        outcome["ready_at"],
    )
    bare = summarize(requests, ("bare view",), outcome["ready_at"], outcome["card_at"])
    # Every card poll once the bare-view phase ended: before the start is queued the cards ask
    # at their resting pace, then faster.
    morning = summarize(
        requests,
        ("card poll", "bare view (during the start)"),
        outcome["card_at"],
        outcome["end_at"],
    )
    figures = {**logins, **bare, **morning}
    poll, quiet = morning.get("card poll", {}), bare.get("bare view", {})
    # The ratio's baseline: the bare view asked beside the polls, under the same load (the
    # worker running 500 starts, PostgreSQL, the polls' own rendering); the bare-view phase
    # before it, on a machine doing nothing else, is printed too.
    base = morning.get("bare view (during the start)", {})
    errors = sum(f["errors"] for f in figures.values())
    failed_logins = run.soldiers - int(outcome["logins_ok"])
    answers = Counter(
        str(r[4]) for r in requests if r[0] == "card poll" and r[1] is not None and not r[3]
    )
    done = outcome["done"]
    running_cards = sum(1 for d in done if d["ok"] and d["seen"].split(".", 1)[0] == "running")
    last_card = max((d["at"] for d in done), default=None)
    polls_each = sorted(d["polls"] for d in done)
    web_window = run.calls.get("web|window", Counter())
    web_outside = run.calls.get("web|outside", Counter())
    worker: Counter[str] = Counter()
    for key in ("worker|window", "worker|outside"):
        worker.update(run.calls.get(key, Counter()))

    out(
        f"{run.soldiers} soldiers; gunicorn {run.gunicorn_workers} workers x "
        f"{os.environ.get('GUNICORN_THREADS', '4')} threads (codesquare/gunicorn.conf.py's "
        f"defaults on this machine) on PostgreSQL; {args.workers} db_worker "
        f"(OPERATION_POLL_SECONDS 2); "
        f"devcloud start {MORNING_BUILD_SECONDS / 2:g} s; {os.cpu_count()} CPUs (load average "
        f"at the end {os.getloadavg()[0]:.1f})"
    )
    out("")
    out("| phase | seconds |")
    out("|---|---:|")
    for name, seconds in run.phases.items():
        out(f"| {name} | {'not reached' if math.isnan(seconds) else f'{seconds:.1f}'} |")
    out("")
    out("| requests | count | req/s | errors | p50 ms | p95 ms | p99 ms | max ms |")
    out("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, f in figures.items():
        out(
            f"| {name} | {f['requests']} | {f['rate']:.1f} | {f['errors']} | {f['p50']:.0f} | "
            f"{f['p95']:.0f} | {f['p99']:.0f} | {f['max']:.0f} |"
        )
    out("")
    total = sum(f["requests"] for f in figures.values())
    out(f"requests: {total}; errors: {errors}; failed logins: {failed_logins}")
    for message in outcome["errors"][:5]:
        out(f"  {message}")
    out(
        "card poll answers: "
        + ", ".join(f"{n} x {status}" for status, n in sorted(answers.items()))
        + " (200 news, 204 nothing new, 286 stable: polling stops)"
    )
    if polls_each:
        out(
            f"polls per soldier: median {polls_each[len(polls_each) // 2]}, max {polls_each[-1]}; "
            f"{sum(1 for n in polls_each if n == 0)} soldiers found their VM Running on opening "
            f"the page"
        )
    ratio = poll["p99"] / base["p99"] if poll and base else float("nan")
    if poll and base:
        out(
            f"poll p99 / bare p99 beside it: {ratio:.2f}x ({poll['p99']:.0f} ms / "
            f"{base['p99']:.0f} ms; limit {MORNING_P99_LIMIT:g}x); p50 "
            f"{poll['p50'] / base['p50']:.2f}x"
        )
    if poll and quiet:
        out(
            f"poll p99 / bare p99 of the quiet bare-view phase: {poll['p99'] / quiet['p99']:.2f}x "
            f"({poll['p99']:.0f} ms / {quiet['p99']:.0f} ms; printed for comparison)"
        )
    slow = Counter(
        int((r[1] - queued_at) // 5) * 5
        for r in requests
        if r[0] == "card poll" and r[1] is not None and r[2] > 10 * (quiet.get("p99") or 1)
    )
    if slow:
        out(
            "polls over 10x the bare p99, by when they were sent (s after the start was queued): "
            + ", ".join(f"{at:+d}..{at + 5:+d}: {n}" for at, n in sorted(slow.items()))
        )
    out("")
    out("OpenStack calls (devcloud's request log, attributed through each process kind's relay):")
    out(f"- web processes from the bare-view phase to the last poll: {sum(web_window.values())}")
    for key, n in web_window.most_common():
        out(f"  - {n} x {key}")
    out(f"- web processes, logins: {sum(web_outside.values())}")
    for key, n in web_outside.most_common():
        out(f"  - {n} x {key}")
    out(f"- worker (the starts): {sum(worker.values())}")
    for key, n in worker.most_common():
        out(f"  - {n} x {key}")
    batch = f"finished in {run.batch_seconds:.0f} s" if run.batch_seconds else "NOT finished"
    out(
        f"bulk start: {run.queued} starts queued ({len(run.refusals)} refused) in one batch, "
        f"{run.batch_failed} failed, {batch}"
    )
    if run.all_running_seconds:
        out(
            f"the worker's pace: {run.soldiers / run.all_running_seconds:.1f} starts/s "
            f"({args.workers} db_worker)"
        )
    out(
        f"Running: {run.mirror_running} of {run.soldiers} in the portal's mirror, "
        f"{run.cloud_running} in devcloud, {running_cards} cards ended on Running"
        + (
            f" (the last {last_card - queued_at:.0f} s after the start was queued)"
            if last_card
            else ""
        )
    )
    if run.cpu:
        (t0, ready), (t1, start), (t2, end) = run.cpu
        phases = ((t1 - t0, ready, start), (t2 - t1, start, end))
        out("")
        out(
            f"CPU used, as % of one CPU ({os.cpu_count()} CPUs = "
            f"{(os.cpu_count() or 1) * 100} %), in the bare-view phase ({t1 - t0:.0f} s) and "
            f"from the start until every VM was Running ({t2 - t1:.0f} s):"
        )
        out("")
        out("| processes | bare-view phase | morning start |")
        out("|---|---:|---:|")
        mine = [0.0, 0.0]
        for name in ready:
            cells = []
            for index, (span, before, after) in enumerate(phases):
                used = cpu_used(before, after, name)
                if name != MACHINE:
                    mine[index] += used
                cells.append(f"{used / span * 100:.0f} %")
            out(f"| {name} | {' | '.join(cells)} |")
        shares = " | ".join(
            f"{(cpu_used(before, after, MACHINE) - mine[i]) / span * 100:.0f} %"
            for i, (span, before, after) in enumerate(phases)
        )
        out(f"| everything else (other people's work) | {shares} |")
    checks = {
        "0 errors (every request, every login)": errors == 0 and failed_logins == 0,
        "0 cloud calls by the web processes while polling": not web_window,
        f"poll p99 <= {MORNING_P99_LIMIT:g} x the p99 of the bare view beside it": (
            ratio <= MORNING_P99_LIMIT
        ),
        "every VM Running (mirror, devcloud, every card), no start failed": (
            run.queued == run.soldiers
            and run.mirror_running == run.soldiers
            and run.cloud_running == run.soldiers
            and running_cards == run.soldiers
            and run.batch_failed == 0
            and bool(outcome["all_done"])
        ),
    }
    out("")
    for name, passed in checks.items():
        out(f"- {'PASS' if passed else 'FAIL'}: {name}")
    ok = all(checks.values())
    out(f"morning start: {'PASS' if ok else 'FAIL'}")
    text = "\n".join(lines)
    print(text)
    if results is not None:
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(
            "# Load: the morning start\n\n"
            "Written by `bench/load_self_service.py --scenario morning-start` (see its docstring "
            "for the set-up), run as "
            f"`DATABASE_URL={_shown_url(database)} "
            f"{' '.join(['.venv/bin/python', 'bench/load_self_service.py', *sys.argv[1:]])}` "
            f"on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. The CPU table shows how "
            "much of the machine the bench had: the rest went to other work on it.\n\n"
            + text
            + "\n"
        )
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-time", default=None, help="polling window, locust style (60s)")
    parser.add_argument(
        "--baseline-time", default=None, help="bare-view phase before it (as --run-time)"
    )
    parser.add_argument("--users", type=int, default=None, help="simulated soldiers (500)")
    parser.add_argument("--batch", type=int, default=None, help="VMs in the batch (100)")
    parser.add_argument("--spawn-rate", type=float, default=50, help="logins started per second")
    parser.add_argument(
        "--ci", action="store_true", help="CI: 200 soldiers, 50 VMs, 20s, no results file"
    )
    parser.add_argument(
        "--results", type=Path, default=None, help=f"default {RESULTS} (or {MORNING_RESULTS})"
    )
    parser.add_argument(
        "--scenario",
        choices=("batch-poll", "morning-start"),
        default="batch-poll",
        help="batch-poll (the default): cards polled while a launch batch runs; morning-start: "
        "every soldier's VM started by one bulk start, every card polled until Running",
    )
    parser.add_argument(
        "--soldiers", type=int, default=None, help="morning-start: soldiers (500; --ci 100)"
    )
    parser.add_argument(
        "--start-timeout",
        default=None,
        help="morning-start: how long every card may take to be stable (900s; --ci 240s)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="morning-start: db_worker processes (1)"
    )
    args = parser.parse_args()
    if args.scenario == "morning-start":
        return morning_start(args)
    from locust.util.timespan import parse_timespan

    run_time = args.run_time or ("20s" if args.ci else "60s")
    poll_seconds = parse_timespan(run_time)
    baseline_seconds = parse_timespan(args.baseline_time or run_time)
    # CI's run is smaller to keep .ci/run inside its hour; it checks the same things.
    users = args.users or (200 if args.ci else 500)
    batch_size = args.batch or (50 if args.ci else 100)
    results = args.results or (None if args.ci else RESULTS)
    base_database = os.environ.get("DATABASE_URL", DEFAULT_DATABASE)
    if not base_database.startswith("postgres"):
        raise SystemExit("the load bench runs on PostgreSQL: DATABASE_URL=postgres://...")
    database_url, database_name = scratch_database(base_database)
    os.environ["DATABASE_URL"] = database_url
    began = time.monotonic()

    from portal_site import ROOT, free_port, start_workers, stop

    # The worker follows operations quickly.
    devcloud, env, work, relays = start_site(BUILD_SECONDS, operation_poll_seconds=1)
    processes: list[subprocess.Popen[bytes]] = []
    locust_out = work / "locust.json"
    ready_file = work / "locust.ready"
    card_file = work / "locust.card"
    batch_seconds: float | None = None
    batch_total = batch_failed = 0
    launched = None
    try:
        for relay in relays:
            relay.start()
        print(f"setup: migrated and collected in {time.monotonic() - began:.0f} s")
        credentials = make_pollers(users, devcloud)
        print(f"setup: {users} soldiers with accounts and VMs at {time.monotonic() - began:.0f} s")
        batch_soldiers = make_batch_soldiers(batch_size)
        print(f"setup: {batch_size} soldiers onboarded at {time.monotonic() - began:.0f} s")
        secrets_file = work / "credentials.json"
        secrets_file.touch(mode=0o600)
        secrets_file.write_text(json.dumps(credentials))
        victim, bystander = credentials[0], credentials[1]
        del credentials
        from django.db import connections

        connections.close_all()  # the forked-off processes get their own

        port = free_port()
        processes.append(start_gunicorn(kind_env(env, devcloud, relays[0]), port))
        processes.extend(start_workers(1, kind_env(env, devcloud, relays[1])))
        print(f"setup done in {time.monotonic() - began:.0f} s; gunicorn on port {port}")
        devcloud.faults.clear_requests()
        for relay in relays:
            relay.seen.clear()

        load = subprocess.Popen(
            [
                sys.executable,
                str(BENCH_DIR / "load_locust.py"),
                "--host",
                f"http://127.0.0.1:{port}",
                "--credentials",
                str(secrets_file),
                "--spawn-rate",
                str(args.spawn_rate),
                "--poll-seconds",
                str(poll_seconds),
                "--baseline-seconds",
                str(baseline_seconds),
                "--ready-file",
                str(ready_file),
                "--card-file",
                str(card_file),
                "--out",
                str(locust_out),
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(BENCH_DIR)},
        )
        processes.append(load)
        from portal import services
        from portal.models import VmTemplate

        template = VmTemplate.objects.get(name="load")
        groups = process_groups(processes[0], [processes[1]], load, devcloud)
        while not ready_file.exists() and load.poll() is None:
            time.sleep(0.05)
        cpu_ready = cpu_sample(groups, database_name)
        while not card_file.exists() and load.poll() is None:
            time.sleep(0.05)
        cpu_before = cpu_sample(groups, database_name)
        if card_file.exists():
            # What the console's "launch VMs" action calls once the operator confirms.
            launched = services.batch_launch_many(soldiers=batch_soldiers, template=template)
            assert launched.batch is not None
            assert not launched.refusals, launched.refusals
            batch_total = launched.batch.total
        # Sampled while locust still runs, at the window's end (as the driver sees it).
        time.sleep(max(0.0, cpu_before[0] + poll_seconds - time.monotonic()))
        cpu_after = cpu_sample(groups, database_name)
        load.wait(timeout=poll_seconds + 180)
        lockout = lockout_check(port, victim, bystander)
        if launched is not None and launched.batch is not None:
            batch_seconds = wait_batch(launched.batch.pk, timeout=180)
            batch_failed = launched.batch.operations.filter(state="failed").count()
        log = devcloud.faults.requests()
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        stop([p for p in processes if p.poll() is None])
        for relay in relays:
            relay.stop()
        devcloud.stop()
        drop_database(base_database, database_name)

    outcome = json.loads(locust_out.read_text())
    shutil.rmtree(work, ignore_errors=True)
    window = (outcome["ready_at"], outcome["end_at"])
    logins = summarize(outcome["requests"], LOGIN_NAMES, outcome["started_at"], window[0])
    polls = {
        **summarize(outcome["requests"], ("bare view",), window[0], outcome["card_at"]),
        **summarize(outcome["requests"], ("card poll",), outcome["card_at"], window[1]),
    }
    calls = attribute(log, relays, window)
    return report(
        args=args,
        users=users,
        batch_size=batch_size,
        run_time=run_time,
        outcome=outcome,
        logins=logins,
        polls=polls,
        calls=calls,
        batch=(batch_total, batch_failed, batch_seconds),
        cpu=(cpu_ready, cpu_before, cpu_after),
        lockout=lockout,
        results=results,
    )


def _sum(counter: Counter[str] | None, prefix: str = "") -> int:
    return sum(v for k, v in (counter or Counter()).items() if k.startswith(prefix))


def report(
    *,
    args: argparse.Namespace,
    users: int,
    batch_size: int,
    run_time: str,
    outcome: dict[str, Any],
    logins: dict[str, dict[str, Any]],
    polls: dict[str, dict[str, Any]],
    calls: dict[str, Counter[str]],
    batch: tuple[int, int, float | None],
    cpu: tuple[Sample, Sample, Sample],
    lockout: tuple[int, int, int],
    results: Path | None,
) -> int:
    lines: list[str] = []
    out = lines.append
    card, bare = polls.get("card poll", {}), polls.get("bare view", {})
    errors = sum(f["errors"] for f in polls.values()) + sum(f["errors"] for f in logins.values())
    failed_logins = users - int(outcome["logins_ok"])
    web_window = calls.get("web|window", Counter())
    web_logins = calls.get("web|outside", Counter())
    worker: Counter[str] = Counter()
    for key in ("worker|window", "worker|outside"):
        worker.update(calls.get(key, Counter()))
    other_window = calls.get("other (the bench itself)|window", Counter())
    total, failed, seconds = batch
    out(
        f"{users} soldiers, gunicorn 2 workers x {os.environ.get('GUNICORN_THREADS', '4')} "
        f"threads on PostgreSQL, 1 db_worker, devcloud build {BUILD_SECONDS} s, "
        f"bare-view phase {outcome['card_at'] - outcome['ready_at']:.0f} s then card phase "
        f"{outcome['end_at'] - outcome['card_at']:.0f} s (--run-time {run_time}), "
        f"{os.cpu_count()} CPUs "
        f"(load average at the end {os.getloadavg()[0]:.1f})"
    )
    out("")
    out("| requests | count | req/s | errors | p50 ms | p95 ms | p99 ms | max ms |")
    out("|---|---:|---:|---:|---:|---:|---:|---:|")
    rows = [(name, "logging in", f) for name, f in logins.items()]
    rows += [(name, "every 2 s per soldier", f) for name, f in polls.items()]
    for name, phase, figures in rows:
        out(
            f"| {name} ({phase}) | {figures['requests']} | {figures['rate']:.1f} | "
            f"{figures['errors']} | {figures['p50']:.0f} | {figures['p95']:.0f} | "
            f"{figures['p99']:.0f} | {figures['max']:.0f} |"
        )
    out("")
    out(
        f"asked for: {users / 2:.0f} requests/s in each phase ({users} soldiers, one request "
        f"every 2 s each); a slower answer delays that soldier's next poll, so the rates above "
        f"are what the server kept up with"
    )
    if card and bare:
        out(
            f"card poll / bare view (same soldiers, pace and gunicorn, one phase after the other): "
            f"p99 {card['p99'] / bare['p99']:.2f}x ({card['p99']:.0f} ms / {bare['p99']:.0f} ms), "
            f"p50 {card['p50'] / bare['p50']:.2f}x"
        )
    login_seconds = outcome["ready_at"] - outcome["started_at"]
    out(
        f"logins: {users - failed_logins} of {users} succeeded in {login_seconds:.0f} s "
        f"(spawn rate {args.spawn_rate:g}/s; django-axes on, as configured for production)"
    )
    limit, locked, other = lockout
    lockout_ok = locked == 429 and other == 302
    out(
        f"django-axes still guards: after {limit} wrong passwords one soldier's right password "
        f"gets {locked} (429 expected), another soldier from the same address then gets "
        f"{other} (302 expected)"
    )
    out(f"failed requests: {errors}")
    for message in outcome["errors"][:5]:
        out(f"  {message}")
    out("")
    out("OpenStack calls (devcloud's request log, attributed through each process kind's relay):")
    out(f"- web processes, while polling (both phases): {sum(web_window.values())}")
    for key, n in web_window.most_common():
        out(f"  - {n} x {key}")
    out(f"- web processes, logins and the lockout check: {sum(web_logins.values())}")
    for key, n in web_logins.most_common():
        out(f"  - {n} x {key}")
    in_window = sum(calls.get("worker|window", Counter()).values())
    out(f"- worker (the batch): {sum(worker.values())}, {in_window} of them while polling")
    for key, n in worker.most_common():
        out(f"  - {n} x {key}")
    out(f"- anything else while polling: {sum(other_window.values())}")
    finished = f"finished in {seconds:.0f} s" if seconds is not None else "NOT finished"
    out(f"batch: {total} VMs launched by the worker, {failed} failed, {finished}")
    (t0, ready), (t1, card_start), (t2, end) = cpu
    phases = ((t1 - t0, ready, card_start), (t2 - t1, card_start, end))
    out("")
    out(
        f"CPU used, as % of one CPU ({os.cpu_count()} CPUs = {(os.cpu_count() or 1) * 100} %), "
        f"in the bare-view phase ({t1 - t0:.0f} s) and the card phase ({t2 - t1:.0f} s):"
    )
    out("")
    out("| processes | bare-view phase | card phase |")
    out("|---|---:|---:|")
    mine = [0.0, 0.0]
    for name in ready:
        cells = []
        for index, (span, before, after) in enumerate(phases):
            used = cpu_used(before, after, name)
            if name != MACHINE:
                mine[index] += used
            cells.append(f"{used / span * 100:.0f} %")
        out(f"| {name} | {' | '.join(cells)} |")
    others = [
        (cpu_used(before, after, MACHINE) - mine[i]) / span
        for i, (span, before, after) in enumerate(phases)
    ]
    shares = " | ".join(f"{share * 100:.0f} %" for share in others)
    out(f"| everything else (other people's work) | {shares} |")
    web = next(name for name in ready if name.startswith("gunicorn"))
    per_request = []
    for (_, before, after), figures in zip(phases, (bare, card), strict=True):
        if figures:
            per_request.append(cpu_used(before, after, web) / figures["requests"] * 1000)
    if len(per_request) == 2 and per_request[0] > 0:
        out("")
        out(
            f"web CPU per request: bare view {per_request[0]:.1f} ms, card poll "
            f"{per_request[1]:.1f} ms ({per_request[1] / per_request[0]:.1f}x); at that cost, "
            f"{users} soldiers polling every 2 s need {users / 2 * per_request[1] / 1000:.2f} "
            f"CPUs for gunicorn alone"
        )
    text = "\n".join(lines)
    print(text)
    ok = (
        errors == 0
        and failed_logins == 0
        and not web_window
        and total == batch_size
        and failed == 0
        and seconds is not None
        and lockout_ok
    )
    print("OK" if ok else "FAILED: see the figures above (required: all 0 / as expected)")
    if results is not None:
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(
            "# Load: soldiers polling their VM card while a batch runs\n\n"
            "Written by `bench/load_self_service.py` (see its docstring for the set-up), run as "
            f"`{' '.join(['.venv/bin/python', 'bench/load_self_service.py', *sys.argv[1:]])}` "
            f"on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. The CPU table shows how "
            "much of the machine the bench had: the rest went to other work on it.\n\n"
            + text
            + "\n"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
