"""Soldiers' logins against a Keystone that hangs: does the rest of the portal stay up?

Run from the repository root: ``.venv/bin/python bench/bench_login_hang.py``. devcloud is told to
hold every ``POST /v3/auth/tokens`` unanswered; 20 soldiers then log in at once through gunicorn
as configured for production on this machine, while a prober asks ``/healthz`` every 0.2 s and a
staff browser opens the console's index. Two configurations in the same run, each on a fresh
gunicorn:

- baseline: the login waits for Keystone as long as any cloud call may (``OPENSTACK_TIMEOUT``,
  30 s) and any number of logins wait at once — how the portal behaved before the login had
  limits of its own;
- portal: the shipped settings (``LOGIN_KEYSTONE_TIMEOUT``, ``LOGIN_KEYSTONE_CONCURRENCY``).

It prints the /healthz p50/p99/max (a probe that got no answer counts with the time it waited),
the console page's time and how the logins were answered, with the baseline's figure divided by
the portal's.
"""

from __future__ import annotations

import argparse
import http.client
import re
import statistics
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from portal_site import ROOT, free_port, setup, wait_for_bare_view

LOGINS = 20


def make_people(prefix: str) -> str:
    """``LOGINS`` soldiers (not in the cloud: Keystone never answers anyway) and a staff session."""
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.sessions.backends.db import SessionStore

    from portal import services

    users = get_user_model().objects
    for n in range(LOGINS):
        user = users.create_user(username=f"{prefix}{n}")
        services.soldier_create(user=user, service_number=f"{prefix}{n}", name=f"s{n}")
    staff = users.create_superuser(username=f"{prefix}staff", password=None)
    session = SessionStore()
    session[SESSION_KEY] = str(staff.pk)
    session[BACKEND_SESSION_KEY] = "portal.selfservice.auth.StaffBackend"
    session[HASH_SESSION_KEY] = staff.get_session_auth_hash()
    session.create()
    return str(session.session_key)


def start_gunicorn(env: dict[str, str], port: int, **settings: str) -> Any:
    import os
    import subprocess

    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "codesquare/gunicorn.conf.py")],
        env={
            **env,
            **settings,
            "DJANGO_SETTINGS_MODULE": "bench_settings",
            "PYTHONPATH": os.pathsep.join([str(ROOT / "bench"), str(ROOT)]),
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "GUNICORN_ACCESSLOG": "/dev/null",
            "LOG_LEVEL": "ERROR",
        },
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    return wait_for_bare_view(process, port, timeout=60, interval=0.1)


def get(port: int, path: str, *, cookie: str = "", timeout: float = 120) -> tuple[int, float]:
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Host": "localhost", **({"Cookie": cookie} if cookie else {})}
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, time.perf_counter() - started
    except OSError:
        return 0, time.perf_counter() - started
    finally:
        connection.close()


def log_in(port: int, username: str) -> tuple[int, float]:
    """A browser's login: the form (its CSRF cookie and token), then the POST."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request("GET", "/login/", headers={"Host": "localhost"})
        form = connection.getresponse()
        page = form.read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        cookie = re.search(r"csrftoken=([^;]+)", form.getheader("Set-Cookie") or "")
        if token is None or cookie is None:
            raise SystemExit("no CSRF token on the login page")
        body = f"csrfmiddlewaretoken={token[1]}&username={username}&password=whatever"
        started = time.perf_counter()
        connection.request(
            "POST",
            "/login/",
            body=body,
            headers={
                "Host": "localhost",
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": f"csrftoken={cookie[1]}",
                "Referer": "http://localhost/login/",
            },
        )
        answer = connection.getresponse()
        answer.read()
        return answer.status, time.perf_counter() - started
    except OSError:
        return 0, time.perf_counter() - started
    finally:
        connection.close()


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def run(env: dict[str, str], prefix: str, staff_cookie: str, **settings: str) -> dict[str, Any]:
    """One configuration: the logins, and probes started on a clock (not one after the other,
    so a stretch in which the portal does not answer weighs as long as it lasts)."""
    port = free_port()
    gunicorn = start_gunicorn(env, port, **settings)
    healthz: list[tuple[int, float]] = []
    console: list[tuple[int, float]] = []
    cookie = f"sessionid={staff_cookie}"
    try:
        with ThreadPoolExecutor(LOGINS) as pool, ThreadPoolExecutor(400) as probes:
            logins = [pool.submit(log_in, port, f"{prefix}{n}") for n in range(LOGINS)]
            time.sleep(1.0)  # let the logins reach Keystone first, as in the finding
            started, tick = time.monotonic(), 0
            pending: list[tuple[list[tuple[int, float]], Future[tuple[int, float]]]] = []
            while not all(future.done() for future in logins):
                pending.append((healthz, probes.submit(get, port, "/healthz")))
                if tick % 4 == 0:
                    pending.append((console, probes.submit(get, port, "/admin/", cookie=cookie)))
                tick += 1
                time.sleep(max(0.0, started + tick * 0.25 - time.monotonic()))
            answers = [future.result() for future in logins]
            for figures, future in pending:
                figures.append(future.result())
    finally:
        gunicorn.terminate()
        gunicorn.wait(timeout=30)
    health_times = [seconds for _, seconds in healthz]
    return {
        "healthz_p50": statistics.median(health_times),
        "healthz_p99": _percentile(health_times, 0.99),
        "healthz_max": max(health_times),
        "healthz_failed": f"{sum(1 for status, _ in healthz if status != 200)} of {len(healthz)}",
        "console": _percentile([seconds for _, seconds in console], 0.5),
        "console_max": max(seconds for _, seconds in console),
        "console_status": sorted({status for status, _ in console}),
        "login_statuses": sorted({status for status, _ in answers}),
        "login_first": min(seconds for _, seconds in answers),
        "login_last": max(seconds for _, seconds in answers),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    devcloud, env = setup(build_seconds=1)
    from django.core.management import call_command

    call_command("collectstatic", interactive=False, verbosity=0)
    prefix = "hang"
    staff_cookie = make_people(prefix)
    devcloud.faults.add(method="POST", path="^/identity/v3/auth/tokens$", action="timeout")
    try:
        from django.conf import settings

        timeout = str(settings.OPENSTACK_TIMEOUT)
        baseline = run(
            env,
            prefix,
            staff_cookie,
            LOGIN_KEYSTONE_TIMEOUT=timeout,
            LOGIN_KEYSTONE_CONCURRENCY="1000",
        )
        portal = run(env, prefix, staff_cookie)
    finally:
        devcloud.faults.reset()
        devcloud.stop()
    print(
        f"{LOGINS} logins against a Keystone that never answers; gunicorn as configured "
        f"(codesquare/gunicorn.conf.py); OPENSTACK_TIMEOUT {timeout} s; "
        f"portal: LOGIN_KEYSTONE_TIMEOUT {settings.LOGIN_KEYSTONE_TIMEOUT} s, "
        f"LOGIN_KEYSTONE_CONCURRENCY {settings.LOGIN_KEYSTONE_CONCURRENCY} per process, "
        f"LOGIN_KEYSTONE_QUEUE_SECONDS {settings.LOGIN_KEYSTONE_QUEUE_SECONDS} s\n"
    )
    print("| figure | baseline (no login limits) | portal | baseline / portal |")
    print("|---|---:|---:|---:|")
    for key, label in (
        ("healthz_p50", "/healthz p50 (s)"),
        ("healthz_p99", "/healthz p99 (s)"),
        ("healthz_max", "/healthz max (s)"),
        ("console", "console index /admin/ p50 (s)"),
        ("console_max", "console index /admin/ max (s)"),
        ("login_first", "first login answered after (s)"),
        ("login_last", "last login answered after (s)"),
    ):
        ratio = baseline[key] / portal[key] if portal[key] else float("inf")
        print(f"| {label} | {baseline[key]:.3f} | {portal[key]:.3f} | {ratio:.1f}x |")
    for key, label in (
        ("healthz_failed", "/healthz probes not answered 200"),
        ("console_status", "console index answers (HTTP; 0: no answer)"),
        ("login_statuses", "login answers (HTTP; 0: no answer)"),
    ):
        print(f"| {label} | {baseline[key]} | {portal[key]} | |")


if __name__ == "__main__":
    main()
