"""Keystone: SQLite, fernet tokens, bootstrap, served by gunicorn."""

from __future__ import annotations

import grp
import os
import pwd
from typing import TYPE_CHECKING

from tests.realcloud import proc, services

if TYPE_CHECKING:
    from tests.realcloud.cloud import Build

KEYSTONE_CONF = """\
[DEFAULT]
debug = false
use_stderr = true

[database]
connection = {database}

[token]
provider = fernet
# Long enough for a whole CI run; token expiry itself is exercised against devcloud.
expiration = 14400

[fernet_tokens]
key_repository = {etc}/fernet-keys

[fernet_receipts]
key_repository = {etc}/fernet-keys

[credential]
key_repository = {etc}/credential-keys

[cache]
enabled = false
"""


def start(build: Build) -> None:
    etc = build.dir / "etc" / "keystone"
    data = build.dir / "data"
    etc.mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    conf = etc / "keystone.conf"
    if build.mode == "full":
        database = services.db_url(build, "keystone")
        # Nova and Neutron validate every token against Keystone while tests run: that
        # concurrency needs a real SQL server and more than one worker.
        workers = 2
    else:
        database = f"sqlite:///{data}/keystone.db"
        # SQLite refuses a second concurrent writer ("database is locked", a 500 to the
        # client), so one sync worker serialises requests; the identity tests are sequential.
        workers = 1
    conf.write_text(KEYSTONE_CONF.format(database=database, etc=etc))

    port = build.port("keystone")
    url = f"http://127.0.0.1:{port}/v3"
    manage = [str(build.venv / "bin" / "keystone-manage"), "--config-file", str(conf)]
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    with build.step("keystone db_sync + keys + bootstrap"):
        proc.run([*manage, "db_sync"])
        for repo in ("fernet_setup", "credential_setup"):
            proc.run([*manage, repo, "--keystone-user", user, "--keystone-group", group])
        # Nova's API looks the identity service up by its internal endpoint and answers 500
        # without one, so all three interfaces are registered.
        proc.run(
            [
                *manage,
                "bootstrap",
                # One argument: a generated password may start with "-", which argparse
                # would take for an option.
                f"--bootstrap-password={build.admin_password}",
                "--bootstrap-username",
                "admin",
                "--bootstrap-project-name",
                "admin",
                "--bootstrap-role-name",
                "admin",
                "--bootstrap-service-name",
                "keystone",
                "--bootstrap-region-id",
                build.region,
                "--bootstrap-admin-url",
                url,
                "--bootstrap-internal-url",
                url,
                "--bootstrap-public-url",
                url,
            ]
        )
    with build.step("keystone serving"):
        build.serve_wsgi(
            "keystone",
            "keystone.wsgi.api",
            port,
            {"OS_KEYSTONE_CONFIG_FILES": str(conf)},
            health=url,
            workers=workers,
        )
    build.state["auth_url"] = url
