"""/healthz answers 200 when the database is reachable and 503 with a clear body when not."""

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests
from django.test import Client

from tests.conftest import ROOT, free_port


@pytest.mark.django_db
def test_healthz_is_ok_with_the_database_up(client: Client) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_healthz_only_answers_get(client: Client) -> None:
    assert client.post("/healthz").status_code == 405


@contextmanager
def gunicorn(env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    env = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "codesquare/gunicorn.conf.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(url + "/healthz", timeout=2)
                break
            # A worker still importing Django on a busy machine may take longer than one try.
            except (requests.ConnectionError, requests.Timeout):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_healthz_over_gunicorn_is_ok_on_sqlite(child_env: dict[str, str]) -> None:
    child_env["ALLOWED_HOSTS"] = "127.0.0.1"
    with gunicorn(child_env) as url:
        response = requests.get(url + "/healthz", timeout=10, allow_redirects=False)

    assert response.status_code == 200
    assert response.json()["database"] == "ok"


def test_healthz_over_gunicorn_is_503_when_the_database_is_unreachable(
    child_env: dict[str, str],
) -> None:
    # Port 1 on loopback refuses connections: a database server that is down.
    child_env["DATABASE_URL"] = "postgres://portal:secret@127.0.0.1:1/codesquare"
    child_env["ALLOWED_HOSTS"] = "127.0.0.1"
    with gunicorn(child_env) as url:
        response = requests.get(url + "/healthz", timeout=10, allow_redirects=False)

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["database"] == "unreachable"
    assert "secret" not in response.text


@pytest.mark.django_db
def test_healthz_answers_a_probe_whatever_its_host_header(client: Client) -> None:
    # Load balancers probe by address; ALLOWED_HOSTS refuses that host for every other page.
    probe = client.get("/healthz", headers={"host": "10.0.0.5:8000"})
    page = client.get("/admin/login/", headers={"host": "10.0.0.5:8000"})

    assert probe.status_code == 200
    assert probe.json() == {"status": "ok", "database": "ok"}
    assert page.status_code == 400


def test_healthz_over_gunicorn_answers_an_unknown_host_and_says_nothing_internal(
    child_env: dict[str, str],
) -> None:
    child_env["DATABASE_URL"] = "postgres://portal:secret@127.0.0.1:1/codesquare"
    child_env["ALLOWED_HOSTS"] = "portal.codesquare.example"
    with gunicorn(child_env) as url:
        response = requests.get(
            url + "/healthz", timeout=10, allow_redirects=False, headers={"Host": "10.1.2.3"}
        )

    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "unreachable"}
    for internal in ("secret", "127.0.0.1", "postgres", "OperationalError", "5432"):
        assert internal not in response.text
