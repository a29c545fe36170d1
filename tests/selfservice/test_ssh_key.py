"""How do I get in: the soldier's SSH key, imported as Nova key pairs and used by launches."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from portal import services
from portal.models import Instance, Operation, SshKey
from portal.openstack import NotFound, OpenStackClient
from portal.sshkeys import parse_public_key
from tests import sshkeys
from tests.integration.conftest import Cast, PortalCloud, recorded_calls
from tests.selfservice.conftest import CloudSoldier, everything_stored

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.cloud,
    pytest.mark.needs("identity", "network", "image", "compute"),
]


def register(client: Any, public_key: str) -> Any:
    return client.post("/ssh-key/", {"public_key": public_key})


def test_a_registered_key_belongs_to_the_soldier_in_the_cloud_and_new_vms_get_it(
    soldier_a: CloudSoldier, cast: Cast, tasks: Any, admin: OpenStackClient
) -> None:
    public_key = sshkeys.ed25519("me@laptop")
    response = register(soldier_a.client, public_key)
    assert response.status_code == 302
    text = soldier_a.client.get(response["Location"]).content.decode()
    assert "Your SSH key was saved. VMs you request from now on accept it." in text
    key = parse_public_key(public_key)
    assert key.fingerprint in text
    assert "ssh-ed25519 (256 bits)" in text

    stored = SshKey.objects.get(soldier=soldier_a.soldier)
    user_id = soldier_a.soldier.keystone_user_id
    # The soldier's own key pair, imported for their Keystone user (compute 2.10, admin) ...
    own = admin.get_keypair(stored.soldier_key_name, user_id=user_id)
    assert own.user_id == user_id
    assert own.public_key == public_key
    # ... and the portal user's copy that launches name (Nova looks key_name up under the user
    # whose token creates the server).
    assert admin.get_keypair(stored.launch_key_name).public_key == public_key
    op = Operation.objects.get(kind=Operation.Kind.SSH_KEY, soldier=soldier_a.soldier)
    assert op.state == Operation.State.SUCCEEDED

    instance = services.soldier_vm_request(soldier=soldier_a.soldier, template=cast.template)
    assert instance.key_name == stored.launch_key_name
    tasks()
    instance.refresh_from_db()
    assert admin.get_server(instance.server_id or "").key_name == stored.launch_key_name


def test_replacing_the_key_applies_to_new_vms_and_retires_the_old_key_pairs(
    soldier_a: CloudSoldier, admin: OpenStackClient
) -> None:
    assert register(soldier_a.client, sshkeys.ed25519()).status_code == 302
    first = SshKey.objects.get(soldier=soldier_a.soldier)
    page = soldier_a.client.get("/ssh-key/").content.decode()
    assert "Replace the key" in page
    assert "A new key applies to VMs you request from now on." in page

    replacement = sshkeys.rsa(4096)
    response = register(soldier_a.client, replacement)
    text = soldier_a.client.get(response["Location"]).content.decode()
    assert "VMs that already exist keep the key they were created with." in text
    second = SshKey.objects.get(soldier=soldier_a.soldier)
    assert second.key_type == "ssh-rsa"
    assert second.bits == 4096
    user_id = soldier_a.soldier.keystone_user_id
    assert admin.get_keypair(second.soldier_key_name, user_id=user_id).public_key == replacement
    assert admin.get_keypair(second.launch_key_name).public_key == replacement
    with pytest.raises(NotFound):
        admin.get_keypair(first.soldier_key_name, user_id=user_id)
    with pytest.raises(NotFound):
        admin.get_keypair(first.launch_key_name)


def test_a_launch_still_waiting_for_its_server_takes_the_replaced_key(
    soldier_a: CloudSoldier, cast: Cast, tasks: Any, admin: OpenStackClient
) -> None:
    register(soldier_a.client, sshkeys.ed25519())
    instance = services.soldier_vm_request(soldier=soldier_a.soldier, template=cast.template)
    register(soldier_a.client, sshkeys.ecdsa("nistp384"))
    latest = SshKey.objects.get(soldier=soldier_a.soldier)
    instance.refresh_from_db()
    assert instance.key_name == latest.launch_key_name
    tasks()
    instance.refresh_from_db()
    assert admin.get_server(instance.server_id or "").key_name == latest.launch_key_name


def test_registering_the_same_key_again_changes_nothing(
    soldier_a: CloudSoldier, admin: OpenStackClient
) -> None:
    public_key = sshkeys.ed25519()
    register(soldier_a.client, public_key)
    first = SshKey.objects.get(soldier=soldier_a.soldier)
    assert register(soldier_a.client, public_key).status_code == 302
    again = SshKey.objects.get(soldier=soldier_a.soldier)
    assert (again.soldier_key_name, again.launch_key_name) == (
        first.soldier_key_name,
        first.launch_key_name,
    )
    assert admin.get_keypair(first.launch_key_name).public_key == public_key


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (sshkeys.rsa(2048), "This RSA key has 2048 bits; at least 3072 are needed."),
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5", "The key is damaged"),
        ("hello there", "This is not an SSH public key."),
    ],
)
def test_a_key_that_is_not_accepted_is_refused_and_nothing_reaches_the_cloud(
    soldier_a: CloudSoldier, text: str, message: str
) -> None:
    with recorded_calls() as calls:
        response = register(soldier_a.client, text)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert calls.exchanges == []
    assert not SshKey.objects.exists()
    assert not Operation.objects.filter(kind=Operation.Kind.SSH_KEY).exists()


def test_a_pasted_private_key_is_refused_with_a_warning_and_never_stored_or_logged(
    soldier_a: CloudSoldier, caplog: pytest.LogCaptureFixture
) -> None:
    body = sshkeys.PRIVATE_KEY.splitlines()[1]
    with caplog.at_level(logging.DEBUG), recorded_calls() as calls:
        response = register(soldier_a.client, sshkeys.PRIVATE_KEY)
    assert response.status_code == 200
    text = response.content.decode()
    assert "That was your PRIVATE key — it was not saved." in text
    assert body not in text  # not even echoed back into the form
    assert calls.exchanges == []
    assert body not in everything_stored()
    assert body not in "\n".join(r.getMessage() for r in caplog.records)
    assert not SshKey.objects.exists()


def test_the_cloud_being_down_changes_nothing_and_says_so(
    devcloud: Any, soldier_a: CloudSoldier, portal_cloud: PortalCloud, admin: OpenStackClient
) -> None:
    register(soldier_a.client, sshkeys.ed25519())
    first = SshKey.objects.get(soldier=soldier_a.soldier)
    portal_cloud.faults.add(method="POST", path="/os-keypairs$", status=503)
    response = register(soldier_a.client, sshkeys.ed25519())
    assert response.status_code == 200
    assert "The cloud cannot be reached right now. Nothing was changed" in (
        response.content.decode()
    )
    assert SshKey.objects.get(soldier=soldier_a.soldier).fingerprint == first.fingerprint
    assert admin.get_keypair(first.launch_key_name).public_key == first.public_key
    failed = Operation.objects.get(kind=Operation.Kind.SSH_KEY, state=Operation.State.FAILED)
    assert failed.request_ids


def test_when_the_second_import_fails_the_first_is_taken_back(
    soldier_a: CloudSoldier, admin: OpenStackClient
) -> None:
    from portal.services.keys import launch_key_name, soldier_key_name

    replacement = sshkeys.ed25519()
    key = parse_public_key(replacement)
    # Someone put another key under the name of the portal's copy.
    admin.create_keypair(name=launch_key_name(soldier_a.soldier, key), public_key=sshkeys.ed25519())
    response = register(soldier_a.client, replacement)
    assert response.status_code == 200
    assert "The cloud refused to import the key" in response.content.decode()
    with pytest.raises(NotFound):
        admin.get_keypair(soldier_key_name(key), user_id=soldier_a.soldier.keystone_user_id)
    assert not SshKey.objects.exists()


def test_a_soldier_without_a_cloud_account_is_told_to_wait(cast: Cast) -> None:
    from tests.selfservice.conftest import logged_in

    client = logged_in(cast.soldier)
    response = register(client, sshkeys.ed25519())
    text = client.get("/ssh-key/").content.decode() if response.status_code == 302 else ""
    assert "Your cloud account is not ready yet" in (text or response.content.decode())
    assert not SshKey.objects.exists()
    assert not Instance.objects.exists()
