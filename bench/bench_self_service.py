"""The soldier page's poll endpoint against a bare Django view, through gunicorn (2 workers).

Run from the repository root, once per database (two invocations make the SQLite and the
PostgreSQL rows of ``bench/results/poll-cost.md``)::

    .venv/bin/python bench/bench_self_service.py
    DATABASE_URL=postgres://codesquare:codesquare@127.0.0.1:5432/cs_bench \
        .venv/bin/python bench/bench_self_service.py

PostgreSQL needs a scratch database: the bench migrates it and adds rows it removes again at the
end. The cache is the deployment's default (a file cache under the bench's own VAR_DIR) unless
``CACHE_URL`` names another (``redis://...``). The baseline is a view that returns "ok" without
touching the database, served by the same gunicorn in the same run. The polls are a logged-in
soldier's ``/vm/<id>/card/`` while their VM builds, with other soldiers' VMs in the database:

- *unchanged*: the client sends the ``seen`` value its card carries, as htmx does (a 200 would
  replace it); nothing is written meanwhile, so the answer is 204 from the cache;
- *changed*: the client's card names a version that is not the VM's current one (what a poll
  after a write sends), so every answer is a full card (200).

Per endpoint it prints the CPU time the gunicorn workers spent per request (psutil, user +
system; PostgreSQL's own processes are not counted, its time shows in the latency), the median
and p95 latency, and the ratios against the bare view; and it counts the cloud calls made during
the polls (expected: 0). Targets: unchanged <= 1.5x, changed <= 3x the bare view's CPU time.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import http.client
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from importlib import import_module
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psutil
from portal_site import ROOT, free_port, setup, wait_for_bare_view

BENCH_DIR = Path(__file__).resolve().parent


def make_data(others: int, prefix: str) -> tuple[str, int]:
    """A soldier whose VM is being built (its session cookie, the VM id) and others' VMs."""
    from django.conf import settings
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )

    SessionStore = import_module(settings.SESSION_ENGINE).SessionStore

    from portal import services
    from portal.models import Instance, Operation, Project, VmTemplate

    template = VmTemplate.objects.create(
        name=f"{prefix}tpl",
        image_id="img",
        image_name="ubuntu-24.04",
        flavor_id="1",
        flavor_name="m1.small",
    )
    users = get_user_model().objects

    def soldier(n: int) -> Any:
        user = users.create_user(username=f"{prefix}{n}")
        made = services.soldier_create(user=user, service_number=f"{prefix}{n}", name=f"s{n}")
        Project.objects.create(soldier=made, name=f"{prefix}p{n}")
        return made

    for n in range(others):
        other = soldier(n + 1)
        Instance.objects.create(
            project=other.project,
            owner=other,
            name=f"{prefix}vm{n}",
            template=template,
            server_id=f"{prefix}srv{n}",
            status="ACTIVE",
            power_state=1,
            floating_ip="203.0.113.9",
        )
    me = soldier(0)
    instance = Instance.objects.create(
        project=me.project,
        owner=me,
        name=f"{prefix}mine",
        template=template,
        pending_action=Instance.Action.LAUNCH,
        status="BUILD",
    )
    op = Operation.objects.create(
        kind=Operation.Kind.LAUNCH,
        soldier=me,
        instance=instance,
        state=Operation.State.RUNNING,
        step="wait_active",
        params={"action": "launch"},
    )
    Instance.objects.filter(pk=instance.pk).update(pending_operation=op)
    session = SessionStore()
    session[SESSION_KEY] = str(me.user.pk)
    session[BACKEND_SESSION_KEY] = "portal.selfservice.auth.KeystoneBackend"
    session[HASH_SESSION_KEY] = me.user.get_session_auth_hash()
    session.create()
    return str(session.session_key), instance.pk


def remove_data(prefix: str) -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.models import Session

    from portal.models import Instance, Operation, Project, Soldier, VmTemplate

    Instance.objects.filter(name__startswith=prefix).update(pending_operation=None)
    Operation.objects.filter(soldier__service_number__startswith=prefix).delete()
    Instance.objects.filter(name__startswith=prefix).delete()
    Project.objects.filter(name__startswith=prefix).delete()
    Soldier.objects.filter(service_number__startswith=prefix).delete()
    get_user_model().objects.filter(username__startswith=prefix).delete()
    VmTemplate.objects.filter(name__startswith=prefix).delete()
    Session.objects.all().delete()


SEEN = re.compile(rb'name="seen" value="([^"]*)"')


def load(
    port: int,
    path: str,
    cookie: str,
    *,
    seconds: float,
    threads: int,
    seen: str | None = None,
    track: bool = False,
) -> tuple[list[float], Counter[int]]:
    """Keep-alive GETs from ``threads`` clients for ``seconds``: every latency (s), the statuses.

    ``seen`` is sent as the card's ``seen`` parameter; with ``track`` each client does what htmx
    does with the card: a 200 replaces it, so the next poll sends the ``seen`` it carries.
    """
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    stop = time.perf_counter() + seconds
    headers = {"Cookie": f"sessionid={cookie}", "HX-Request": "true", "Host": "localhost"}
    failures: list[str] = []

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        codes: Counter[int] = Counter()
        current = seen
        while time.perf_counter() < stop:
            url = path if current is None else f"{path}?{urlencode({'seen': current})}"
            started = time.perf_counter()
            connection.request("GET", url, headers=headers)
            response = connection.getresponse()
            body = response.read()
            mine.append(time.perf_counter() - started)
            codes[response.status] += 1
            if response.status not in (200, 204):
                failures.append(f"{path}: HTTP {response.status}")
                break
            found = SEEN.search(body) if track and response.status == 200 else None
            if found:
                current = html.unescape(found.group(1).decode())
        connection.close()
        with lock:
            latencies.extend(mine)
            statuses.update(codes)

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if failures:
        raise SystemExit(failures[0])
    return latencies, statuses


def worker_cpu_seconds(master: subprocess.Popen[bytes]) -> float:
    """User + system CPU time of gunicorn's worker processes so far."""
    total = 0.0
    for child in psutil.Process(master.pid).children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = child.cpu_times()
            total += times.user + times.system
    return total


def card_seen(port: int, path: str, cookie: str) -> str:
    """What the card hands back after a full poll (as after a page load)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Cookie": f"sessionid={cookie}", "HX-Request": "true", "Host": "localhost"}
    connection.request("GET", f"{path}?seen=building", headers=headers)
    response = connection.getresponse()
    found = SEEN.search(response.read())
    connection.close()
    if response.status != 200 or not found:
        raise SystemExit(f"the card did not render: HTTP {response.status}")
    return html.unescape(found.group(1).decode())


def start_gunicorn(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    gunicorn_env = {
        **env,
        "DJANGO_SETTINGS_MODULE": "bench_settings",
        "PYTHONPATH": os.pathsep.join([str(BENCH_DIR), str(ROOT)]),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
        "GUNICORN_ACCESSLOG": "/dev/null",
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "codesquare/gunicorn.conf.py")],
        env=gunicorn_env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    return wait_for_bare_view(process, port, timeout=30, interval=0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per endpoint and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4, help="concurrent keep-alive clients")
    parser.add_argument("--others", type=int, default=200, help="other soldiers' VMs in the DB")
    args = parser.parse_args()

    # Persistent database connections, as .env.example recommends for production.
    devcloud, env = setup(build_seconds=0.05, CONN_MAX_AGE=os.environ.get("CONN_MAX_AGE", "60"))
    from django.conf import settings
    from django.db import connection

    prefix = f"bench{os.getpid()}-"
    cookie, instance_id = make_data(args.others, prefix)
    port = free_port()
    gunicorn = start_gunicorn(env, port)
    card = f"/vm/{instance_id}/card/"
    try:
        seen = card_seen(port, card, cookie)
        key, until, _mac = seen.split(".")
        # name: (path, seen sent, follow the card's seen like htmx does)
        endpoints: dict[str, tuple[str, str | None, bool]] = {
            BARE: ("/bench/bare", None, False),
            UNCHANGED: (card, seen, True),
            # A card that is out of date: the version it names is not the VM's current one.
            CHANGED: (card, f"{key}.{until}.{'0' * 32}", False),
        }
        for path, sent, track in endpoints.values():  # warm up both workers
            load(port, path, cookie, seconds=1.0, threads=args.threads, seen=sent, track=track)
        devcloud.faults.clear_requests()
        results: dict[str, list[float]] = {name: [] for name in endpoints}
        statuses: dict[str, Counter[int]] = {name: Counter() for name in endpoints}
        cpu: dict[str, float] = dict.fromkeys(endpoints, 0.0)
        for _ in range(args.rounds):  # interleaved, so drift hits every endpoint alike
            for name, (path, sent, track) in endpoints.items():
                before = worker_cpu_seconds(gunicorn)
                latencies, codes = load(
                    port, path, cookie, seconds=args.seconds, threads=args.threads, seen=sent,
                    track=track,
                )  # fmt: skip
                cpu[name] += worker_cpu_seconds(gunicorn) - before
                results[name].extend(latencies)
                statuses[name].update(codes)
        cloud_calls = len(devcloud.faults.requests())
    finally:
        gunicorn.terminate()
        gunicorn.wait(timeout=15)
        remove_data(prefix)
        devcloud.stop()

    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    cache = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
    total = args.seconds * args.rounds
    print(
        f"database {engine} ({connection.vendor}), cache {cache}, sessions "
        f"{settings.SESSION_ENGINE.rsplit('.', 1)[-1]}, gunicorn 2 workers x "
        f"{os.environ.get('GUNICORN_THREADS', '4')} threads, {args.threads} clients, "
        f"{args.rounds} x {args.seconds:.0f} s per endpoint, {args.others} other soldiers' VMs, "
        f"CONN_MAX_AGE={settings.DATABASES['default']['CONN_MAX_AGE']}"
    )
    print(
        f"| {'endpoint':<26} | {'requests':>8} | {'statuses':<16} | {'req/s':>6} "
        f"| {'CPU ms/req':>10} | {'median ms':>9} | {'p95 ms':>7} |"
    )
    print(f"|{'-' * 28}|{'-' * 10}:|{'-' * 18}|{'-' * 7}:|{'-' * 11}:|{'-' * 10}:|{'-' * 8}:|")
    cpu_per: dict[str, float] = {}
    medians: dict[str, float] = {}
    for name, latencies in results.items():
        latencies.sort()
        rate = len(latencies) / total
        cpu_per[name] = cpu[name] * 1000 / len(latencies)
        medians[name] = statistics.median(latencies) * 1000
        p95 = latencies[int(len(latencies) * 0.95)] * 1000
        shown = " ".join(f"{code}:{n}" for code, n in sorted(statuses[name].items()))
        print(
            f"| {name:<26} | {len(latencies):>8} | {shown:<16} | {rate:>6.0f} "
            f"| {cpu_per[name]:>10.2f} | {medians[name]:>9.2f} | {p95:>7.2f} |"
        )
    for name, target in ((UNCHANGED, 1.5), (CHANGED, 3.0)):
        ratio = cpu_per[name] / cpu_per[BARE]
        verdict = "within" if ratio <= target else "OVER"
        print(
            f"{name}: {ratio:.2f}x the bare view's CPU per request ({verdict} the {target}x "
            f"target), {medians[name] / medians[BARE]:.2f}x its median latency"
        )
    print(f"cloud calls while polling: {cloud_calls}")


BARE = "bare Django view"
UNCHANGED = "poll, unchanged (204)"
CHANGED = "poll, changed (card)"


if __name__ == "__main__":
    main()
