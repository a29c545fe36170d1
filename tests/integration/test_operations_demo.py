"""``manage.py demo_data`` onboards the demo soldier in the cloud, idempotently."""

import sqlite3
from typing import Any

import pytest

from portal.management.commands.demo_data import DEMO_SOLDIER
from portal.models import Soldier
from portal.openstack import OpenStackClient
from tests.conftest import run_manage
from tests.integration.conftest import ONBOARDED, Site, inventory

pytestmark = [pytest.mark.cloud, pytest.mark.needs("identity", "network", "image", "compute")]


def test_demo_data_onboards_the_demo_soldier_with_a_working_password_and_a_template(
    site: Site, admin: OpenStackClient, portal_cloud: Any
) -> None:
    username, password = DEMO_SOLDIER
    first = site.manage("demo_data")
    assert f"demo soldier {username} onboarded" in first
    second = site.manage("demo_data")  # a second run changes nothing
    assert "demo logins ready" in second

    assert inventory(admin, Soldier(keystone_user_name=username)) == ONBOARDED
    token = admin.authenticate(username=username, password=password)
    assert token.user_name == username
    with sqlite3.connect(site.db_path) as db:
        templates = db.execute("select name, image_id, flavor_id from portal_vmtemplate").fetchall()
        states = db.execute("select state from portal_soldier").fetchall()
    assert [t[0] for t in templates] == ["standard"]
    assert all(templates[0][1:])
    assert states == [("active",)]
    logins = (site.db_path.parent / "demo_logins.txt").read_text()
    assert f"{username} / {password}" in logins


def test_demo_data_without_a_cloud_still_creates_the_logins(site: Site) -> None:
    site.env.pop("OS_CLOUD")
    site.env.pop("OS_CLIENT_CONFIG_FILE")
    output = site.manage("demo_data")
    assert "no cloud configured" in output
    assert "demo logins ready" in output


def test_demo_data_refuses_unless_bin_run_started_devcloud(site: Site) -> None:
    site.manage("migrate", "--noinput", "-v", "0")
    site.env.pop("CODESQUARE_DEMO_DATA")
    result = run_manage("demo_data", env=site.env)

    assert result.returncode != 0
    assert "createsuperuser" in result.stderr
    # Refused before anything: no login with a published password, no soldier to onboard.
    with sqlite3.connect(site.db_path) as db:
        assert db.execute("select count(*) from auth_user").fetchone() == (0,)
        assert db.execute("select count(*) from portal_soldier").fetchone() == (0,)
