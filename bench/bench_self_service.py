"""The soldier page's poll endpoint against a bare Django view, through gunicorn (2 workers).

Run from the repository root: ``.venv/bin/python bench/bench_self_service.py``; on SQLite by
default, or on PostgreSQL with ``DATABASE_URL=postgres://...`` (a scratch database: the bench
migrates it and adds rows it removes again at the end). The baseline is a view that returns "ok"
without touching the database, served by the same gunicorn in the same run; the poll is a
logged-in soldier's ``/vm/<id>/card/`` while their VM builds (200, polling goes on), with other
soldiers' VMs in the database. It also counts the cloud calls during the polls (expected: 0).
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from portal_site import ROOT, free_port, setup, wait_for_bare_view

BENCH_DIR = Path(__file__).resolve().parent


def make_data(others: int, prefix: str) -> tuple[str, int]:
    """A soldier whose VM is being built (its session cookie, the VM id) and others' VMs."""
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.sessions.backends.db import SessionStore

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


def load(port: int, path: str, cookie: str, *, seconds: float, threads: int) -> list[float]:
    """Keep-alive GETs from ``threads`` clients for ``seconds``; every latency, in seconds."""
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds
    headers = {"Cookie": f"sessionid={cookie}", "HX-Request": "true", "Host": "localhost"}
    failures: list[str] = []

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        while time.perf_counter() < stop:
            started = time.perf_counter()
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
            if response.status != 200:
                failures.append(f"{path}: HTTP {response.status}")
                break
        connection.close()
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if failures:
        raise SystemExit(failures[0])
    return latencies


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
    try:
        endpoints = {
            "bare Django view": "/bench/bare",
            "poll (VM card)": f"/vm/{instance_id}/card/",
        }
        for path in endpoints.values():  # warm up both workers
            load(port, path, cookie, seconds=1.0, threads=args.threads)
        devcloud.faults.clear_requests()
        results: dict[str, list[float]] = {name: [] for name in endpoints}
        for _ in range(args.rounds):  # interleaved, so drift hits both alike
            for name, path in endpoints.items():
                results[name].extend(
                    load(port, path, cookie, seconds=args.seconds, threads=args.threads)
                )
        cloud_calls = len(devcloud.faults.requests())
    finally:
        gunicorn.terminate()
        gunicorn.wait(timeout=15)
        remove_data(prefix)
        devcloud.stop()

    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    total = args.seconds * args.rounds
    print(
        f"database {engine} ({connection.vendor}), gunicorn 2 workers x "
        f"{os.environ.get('GUNICORN_THREADS', '4')} threads, {args.threads} clients, "
        f"{args.rounds} x {args.seconds:.0f} s per endpoint, {args.others} other soldiers' VMs, "
        f"CONN_MAX_AGE={settings.DATABASES['default']['CONN_MAX_AGE']}"
    )
    print(f"{'endpoint':<18} {'requests':>9} {'req/s':>8} {'median ms':>10} {'p95 ms':>8}")
    rates: dict[str, float] = {}
    medians: dict[str, float] = {}
    for name, latencies in results.items():
        latencies.sort()
        rates[name] = len(latencies) / total
        medians[name] = statistics.median(latencies) * 1000
        p95 = latencies[int(len(latencies) * 0.95)] * 1000
        print(
            f"{name:<18} {len(latencies):>9} {rates[name]:>8.0f} {medians[name]:>10.2f} {p95:>8.2f}"
        )
    bare, poll = "bare Django view", "poll (VM card)"
    print(
        f"ratio poll / bare: {rates[poll] / rates[bare]:.2f}x the requests per second, "
        f"{medians[poll] / medians[bare]:.2f}x the median latency"
    )
    print(f"cloud calls while polling: {cloud_calls}")


if __name__ == "__main__":
    main()
