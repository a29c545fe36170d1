"""portal.cloud: the client built from Django settings, sharing tokens through Django's cache."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches

from portal import cloud
from tests.conftest import ROOT, clean_env
from tests.integration.client_support import log_entries

pytestmark = pytest.mark.cloud

CHILD = """
import django
django.setup()
from portal.cloud import get_client
client = get_client()
client.list_networks()
print(client.transport.authentications)
"""


@pytest.fixture
def file_cache(tmp_path: Path, settings: Any) -> Path:
    where = tmp_path / "cache"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(where),
        }
    }
    return where


@pytest.fixture
def portal_settings(devcloud: Any, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(devcloud.clouds_yaml))
    monkeypatch.delenv("OS_REGION_NAME", raising=False)
    monkeypatch.delenv("OS_INTERFACE", raising=False)
    settings.OPENSTACK_CLOUD = "devcloud"
    settings.OPENSTACK_TIMEOUT = 9.0
    settings.OPENSTACK_REGION = "RegionOne"
    settings.OPENSTACK_INTERFACE = "public"
    cloud.reset_client()
    yield settings
    cloud.reset_client()


def test_client_from_settings(portal_settings: Any) -> None:
    client = cloud.get_client()
    assert cloud.get_client() is client
    assert (client.config.timeout, client.config.region_name) == (9.0, "RegionOne")
    assert client.token().project_name == "admin"
    project = client.create_project(name=f"cloud-py-{uuid.uuid4().hex[:8]}", domain_id="default")
    scoped = cloud.get_project_client(project.id)
    assert scoped is client.for_project(project.id)
    portal_settings.OPENSTACK_TIMEOUT = 3.0  # setting_changed drops the cached client
    assert cloud.get_client() is not client
    assert cloud.get_client().config.timeout == 3.0


def test_processes_share_one_token_through_the_django_cache(
    devcloud: Any, portal_settings: Any, file_cache: Path
) -> None:
    first = cloud.build_client()
    first.list_networks()
    assert first.transport.authentications == 1
    devcloud.faults.clear_requests()
    env = clean_env(
        CACHE_URL=f"filecache://{file_cache}",
        OS_CLOUD="devcloud",
        OS_CLIENT_CONFIG_FILE=str(devcloud.clouds_yaml),
        OPENSTACK_TIMEOUT="9",
        SECRET_KEY="k3y-" + "x7Qp!" * 12,
        DEBUG="false",
        ALLOWED_HOSTS="localhost",
    )
    for _worker in range(3):
        child = subprocess.run(
            [sys.executable, "-c", CHILD],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert child.returncode == 0, child.stderr
        assert child.stdout.strip().splitlines()[-1] == "0"
    assert log_entries(devcloud, "POST", "/identity/v3/auth/tokens") == []
    assert len(log_entries(devcloud, "GET", "/networking/v2.0/networks")) == 3
    # What is shared is keystoneauth's auth state (the token and its body), never the password.
    key = first.transport._cache_key
    assert key is not None
    stored = caches["default"].get(key)
    assert first.token().value in stored
    assert devcloud.admin_password not in stored
    caches["default"].clear()
