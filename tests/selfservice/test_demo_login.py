"""``bin/run``'s demo soldier logs in at /login/ with the password it prints, over real HTTP."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.conftest import ROOT, free_port
from tests.integration.conftest import Site

pytestmark = [pytest.mark.cloud, pytest.mark.needs("identity", "network", "image", "compute")]


@pytest.fixture
def served(site: Site) -> Iterator[str]:
    """The site behind gunicorn, as bin/run starts it; its base URL."""
    site.manage("collectstatic", "--noinput", "-v", "0")
    port = free_port()
    env = {
        **site.env,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "1",
        "GUNICORN_ACCESSLOG": "-",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "codesquare/gunicorn.conf.py"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=(site.db_path.parent / "gunicorn.log").open("w"),
    )
    url = f"http://localhost:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet, or still starting up on a busy machine
            assert process.poll() is None, (site.db_path.parent / "gunicorn.log").read_text()
            assert time.monotonic() < deadline, "gunicorn did not answer"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_the_demo_soldier_logs_in_with_the_printed_password(
    site: Site, served: str, portal_cloud: Any
) -> None:
    site.manage("demo_data")
    printed = (site.db_path.parent / "demo_logins.txt").read_text()
    found = re.search(r"demo soldier login:\s+(\S+) / (\S+)", printed)
    assert found, printed
    username, password = found.groups()

    browser = requests.Session()
    form = browser.get(f"{served}/login/", timeout=10)
    assert form.status_code == 200
    assert '<html lang="ko">' in form.text  # Korean first
    response = browser.post(
        f"{served}/login/",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": browser.cookies["csrftoken"],
        },
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 302, response.text[-2000:]
    assert response.headers["Location"] == "/"
    home = browser.get(f"{served}/", headers={"Accept-Language": "en"}, timeout=10)
    assert home.status_code == 200
    assert "My VM" in home.text
    assert "sessionid" in browser.cookies
    # The wrong password does not get in.
    stranger = requests.Session()
    stranger.get(f"{served}/login/", timeout=10)
    refused = stranger.post(
        f"{served}/login/",
        data={
            "username": username,
            "password": password + "-not",
            "csrfmiddlewaretoken": stranger.cookies["csrftoken"],
        },
        allow_redirects=False,
        timeout=30,
    )
    assert refused.status_code == 200
