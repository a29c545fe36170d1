"""Key pair calls of portal.openstack: import for another user (2.10), show, list, delete."""

from __future__ import annotations

import pytest

from portal.openstack import Conflict, Forbidden, NotFound, OpenStackClient
from tests.integration.client_support import Tenant, unique
from tests.sshkeys import ed25519

pytest_plugins = ["tests.integration.client_fixtures"]
pytestmark = pytest.mark.cloud


def test_the_admin_imports_a_key_pair_owned_by_a_soldier(
    os_admin: OpenStackClient, os_tenant: Tenant
) -> None:
    name = unique("key")
    public_key = ed25519()
    created = os_admin.create_keypair(name=name, public_key=public_key, user_id=os_tenant.user.id)
    assert created.name == name
    assert created.user_id == os_tenant.user.id
    assert created.public_key == public_key
    assert created.type == "ssh"
    assert created.fingerprint

    # The soldier sees it as their own; the admin's own key pairs do not include it.
    assert [k.name for k in os_tenant.member.list_keypairs()] == [name]
    assert name not in {k.name for k in os_admin.list_keypairs()}
    assert [k.name for k in os_admin.list_keypairs(user_id=os_tenant.user.id)] == [name]
    assert os_admin.get_keypair(name, user_id=os_tenant.user.id).public_key == public_key
    with pytest.raises(NotFound):
        os_admin.get_keypair(name)
    with pytest.raises(Conflict):
        os_admin.create_keypair(name=name, public_key=ed25519(), user_id=os_tenant.user.id)

    os_admin.delete_keypair(name, user_id=os_tenant.user.id)
    assert os_tenant.member.list_keypairs() == []
    with pytest.raises(NotFound):
        os_admin.delete_keypair(name, user_id=os_tenant.user.id)


def test_a_member_cannot_import_a_key_pair_for_someone_else(
    os_admin: OpenStackClient, os_tenant: Tenant
) -> None:
    admin_user = os_admin.token().user_id
    with pytest.raises(Forbidden):
        os_tenant.member.create_keypair(
            name=unique("key"), public_key=ed25519(), user_id=admin_user
        )
