"""``manage.py demo_data`` gives the console an operator and a viewer, and the soldier a VM."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from portal.management.commands.demo_data import DEMO_OPERATOR, DEMO_SOLDIER, DEMO_VIEWER
from tests.integration.conftest import Site

pytestmark = [pytest.mark.cloud, pytest.mark.needs("identity", "network", "image", "compute")]


def test_demo_data_adds_an_operator_a_viewer_and_queues_the_soldiers_vm(
    site: Site, portal_cloud: Any
) -> None:
    first = site.manage("demo_data")
    assert "demo VM" in first
    site.manage("demo_data")  # a second run queues nothing more
    logins = (site.db_path.parent / "demo_logins.txt").read_text()
    for name, password in (DEMO_OPERATOR, DEMO_VIEWER, DEMO_SOLDIER):
        assert f"{name} / {password}" in logins
    with sqlite3.connect(site.db_path) as db:
        groups = dict(
            db.execute(
                "select u.username, g.name from auth_user u "
                "join auth_user_groups ug on ug.user_id = u.id "
                "join auth_group g on g.id = ug.group_id"
            ).fetchall()
        )
        launches = db.execute(
            "select o.state from portal_operation o join portal_soldier s on s.id = o.soldier_id "
            "where o.kind = 'launch' and s.keystone_user_name = ?",
            (DEMO_SOLDIER[0],),
        ).fetchall()
    assert groups == {DEMO_OPERATOR[0]: "operators", DEMO_VIEWER[0]: "viewers"}
    assert launches == [("queued",)]  # bin/run's worker launches it
