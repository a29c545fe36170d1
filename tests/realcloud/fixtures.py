"""What a test expects to find in a fresh cloud, created over the REST APIs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.realcloud import seed, services
from tests.realcloud.rest import Admin

if TYPE_CHECKING:
    from tests.realcloud.cloud import Build

# As in devcloud's seed.
ROLES = ("admin", "member", "reader", "manager", "service")


def create(build: Build) -> None:
    admin = Admin(build.state["auth_url"], build.admin_password)
    # bootstrap makes these three (reader implied by member, member by admin) in current
    # releases; asking again keeps the cloud right if a release stops doing so.
    for role in ROLES:
        admin.find_or_create(admin.identity("/roles"), "role", role, {"name": role})
    if build.mode == "full":
        seed.create(build, admin)
        # The compute hosts have been starting meanwhile; a boot needs them mapped.
        services.wait_for_compute_hosts(build, admin)
