"""/metrics: who may scrape it, its format, and the requests it counts.

The integration tier (tests/integration/test_metrics_move.py) shows the numbers move while
the portal works against a cloud.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT, clean_env, run_manage
from tests.scrape import scrape, value

pytestmark = pytest.mark.django_db

OUTSIDE = "203.0.113.7"
TOKEN = "scrape-" + "Zr4u" * 8


@pytest.fixture(autouse=True)
def _static_files_without_a_manifest(settings: Any) -> None:
    """Tests run with DEBUG off but without collectstatic's manifest (the 404 page uses it)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def token(settings: Any) -> str:
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def test_loopback_gets_the_prometheus_text_format(client: Client) -> None:
    response = client.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert "no-cache" in response["Cache-Control"]
    names = {family.name for family in text_string_to_metric_families(response.content.decode())}
    assert {
        "portal_metrics_database_up",
        "portal_operation_queue_depth",
        "portal_operation_queue_oldest_age_seconds",
        "portal_reconcile_last_success_timestamp_seconds",
    } <= names


def test_another_address_gets_the_404_of_a_page_that_does_not_exist(client: Client) -> None:
    refused = client.get("/metrics", REMOTE_ADDR=OUTSIDE)
    unknown = client.get("/no-such-page", REMOTE_ADDR=OUTSIDE)

    assert refused.status_code == unknown.status_code == 404
    assert b"portal_" not in refused.content

    # The same page, but for the path it names and the request's CSP nonce and CSRF token.
    def page(response: Any, path: str) -> str:
        text = re.sub(r'nonce="[^"]*"|[A-Za-z0-9]{64}', "", response.content.decode())
        return text.replace(path, "")

    assert page(refused, "/metrics") == page(unknown, "/no-such-page")


def test_the_token_opens_it_from_any_address(client: Client, token: str) -> None:
    response = client.get("/metrics", REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 200
    assert b"portal_operation_queue_depth" in response.content


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer ", f"Basic {TOKEN}", TOKEN],
)
def test_a_wrong_token_gets_a_404(client: Client, token: str, authorization: str) -> None:
    response = client.get("/metrics", REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION=authorization)

    assert response.status_code == 404


def test_without_a_configured_token_no_token_opens_it(client: Client, settings: Any) -> None:
    settings.METRICS_TOKEN = ""

    assert (
        client.get("/metrics", REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION="Bearer ").status_code == 404
    )


def test_the_allowed_networks_come_from_the_setting(client: Client, settings: Any) -> None:
    settings.METRICS_ALLOWED_NETWORKS = ["10.20.0.0/16", "2001:db8::/32"]

    assert client.get("/metrics", REMOTE_ADDR="10.20.3.4").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="2001:db8::5").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.21.0.1").status_code == 404
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 404


def test_behind_the_proxy_the_address_the_proxy_saw_decides(client: Client, settings: Any) -> None:
    # What BEHIND_TLS_PROXY sets for axes; the proxy runs on the portal's host.
    settings.AXES_IPWARE_PROXY_COUNT = 1
    settings.AXES_IPWARE_META_PRECEDENCE_ORDER = [
        "HTTP_X_FORWARDED_FOR",
        "REMOTE_ADDR",
    ]

    def status(forwarded_for: str) -> int:
        return client.get(
            "/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=forwarded_for
        ).status_code

    assert status(OUTSIDE) == 404
    # A client cannot pass for loopback by sending its own X-Forwarded-For: the proxy appends.
    assert status(f"127.0.0.1, {OUTSIDE}") == 404
    assert status("127.0.0.1") == 200


def test_a_scraper_may_ask_by_address_but_nobody_else_may(client: Client) -> None:
    assert client.get("/metrics", HTTP_HOST="10.0.0.5").status_code == 200
    # Anyone else meets the host check every page has.
    assert client.get("/metrics", HTTP_HOST="10.0.0.5", REMOTE_ADDR=OUTSIDE).status_code == 400


def test_only_get_is_answered(client: Client) -> None:
    assert client.post("/metrics").status_code == 405
    assert client.post("/metrics", REMOTE_ADDR=OUTSIDE).status_code == 404


def test_requests_are_counted_by_view_method_and_status_class(client: Client) -> None:
    count = "portal_http_request_duration_seconds_count"
    before = scrape(client)

    client.get("/healthz")
    client.get("/healthz")
    client.post("/healthz")
    client.get("/no-such-page/")
    client.get("/login/")
    after = scrape(client)

    def moved(**labels: str) -> float:
        return value(after, count, **labels) - value(before, count, **labels)

    assert moved(view="healthz", method="GET", status="2xx") == 2
    assert moved(view="healthz", method="POST", status="4xx") == 1
    assert moved(view="unmatched", method="GET", status="4xx") == 1
    assert moved(view="selfservice:login", method="GET", status="2xx") == 1
    # The scrape before this one counts too.
    assert moved(view="metrics", method="GET", status="2xx") == 1
    assert (
        value(
            after,
            "portal_http_request_duration_seconds_sum",
            view="healthz",
            method="GET",
            status="2xx",
        )
        > 0
    )


def test_a_bad_allowed_network_stops_the_start(tmp_path: Path) -> None:
    env = clean_env(VAR_DIR=str(tmp_path), DEBUG="true", METRICS_ALLOWED_NETWORKS="10.0.0.0/33")
    result = run_manage("check", env=env)

    assert result.returncode != 0
    assert "METRICS_ALLOWED_NETWORKS" in result.stderr


def test_counts_reach_the_files_even_if_the_library_was_imported_before_the_settings(
    tmp_path: Path,
) -> None:
    # Imported first, prometheus-client would keep counts in memory, out of every scrape.
    code = (
        "import prometheus_client, django\n"
        "django.setup()\n"
        "from portal import metrics\n"
        "metrics.record_poll_answer('probe', changed=True)\n"
        "print(metrics.render()[0].decode())\n"
    )
    env = clean_env(VAR_DIR=str(tmp_path), DEBUG="true")
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stderr
    assert 'portal_poll_answers_total{answer="changed",view="probe"} 1.0' in result.stdout
    assert [p.name.split("_")[0] for p in (tmp_path / "metrics").iterdir()] == ["counter"]
