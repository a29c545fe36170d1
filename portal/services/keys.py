"""A soldier's SSH key: imported as Nova key pairs, used by every VM launched afterwards.

Nova looks a new server's ``key_name`` up among the key pairs of the user whose token creates
the server, and the portal creates servers with its own user. So the key is imported twice: for
the soldier's Keystone user (``POST /os-keypairs`` with ``user_id``, compute 2.10, admin), so it
is theirs in the cloud, and for the portal's user, so launches can name it. Both names end in a
hash of the key: a retry finds what an earlier try created, and a replacement is imported
before the old key pairs are deleted, so there is never a moment without a key.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_noop

from portal import cloud
from portal.models import Instance, Operation, Soldier, SshKey
from portal.openstack import OpenStackClient, errors
from portal.operations.engine import create_operation, finish, record_request_id
from portal.operations.errors import OperationRefused
from portal.sshkeys import PublicKey

logger = logging.getLogger(__name__)


def soldier_key_name(key: PublicKey) -> str:
    """The key pair's name among the soldier's own."""
    return f"codesquare-{key.short_id}"


def launch_key_name(soldier: Soldier, key: PublicKey) -> str:
    """The name of the portal user's copy; Keystone ids are hex, safe in a key pair name."""
    return f"cs-{soldier.keystone_user_id}-{key.short_id}"


def _same_key(a: str, b: str) -> bool:
    return a.split()[:2] == b.split()[:2]


def _import(client: OpenStackClient, *, name: str, key: PublicKey, user_id: str | None) -> bool:
    """Import one key pair; False when an earlier try already did (same name, same key)."""
    try:
        client.create_keypair(name=name, public_key=key.openssh, user_id=user_id)
    except errors.Conflict:
        existing = client.get_keypair(name, user_id=user_id)
        if not _same_key(existing.public_key, key.openssh):
            raise
        return False
    return True


def _forget(client: OpenStackClient, name: str, *, user_id: str | None) -> None:
    """Delete a key pair the portal no longer needs; one left behind is only untidy."""
    try:
        client.delete_keypair(name, user_id=user_id)
    except errors.NotFound:
        pass
    except errors.OpenStackError as exc:
        logger.warning("key pair %s left in the cloud: %s", name, exc)


def soldier_ssh_key_set(*, soldier: Soldier, key: PublicKey, requested_by: Any = None) -> Operation:
    """Register (or replace) the soldier's SSH public key; synchronous, recorded as an operation.

    VMs that exist keep the key they were created with; launches still waiting to create their
    server take the new one.
    """
    if not soldier.keystone_user_id:
        raise OperationRefused(
            gettext_noop("Your cloud account is not ready yet; try again once it is set up.")
        )
    op = create_operation(
        kind=Operation.Kind.SSH_KEY,
        lock_key=f"ssh_key:{soldier.pk}",
        soldier=soldier,
        requested_by=requested_by,
        params={"fingerprint": key.fingerprint},
    )
    op.state = Operation.State.RUNNING
    op.attempts = 1
    op.started_at = timezone.now()
    op.save(update_fields=["state", "attempts", "started_at", "updated_at"])

    previous = SshKey.objects.filter(soldier=soldier).first()
    own_name, launch_name = soldier_key_name(key), launch_key_name(soldier, key)
    client = cloud.get_client()
    created_own = False
    try:
        created_own = _import(client, name=own_name, key=key, user_id=soldier.keystone_user_id)
        _import(client, name=launch_name, key=key, user_id=None)
    except errors.OpenStackError as exc:
        record_request_id(op, exc.request_id)
        if created_own:
            _forget(client, own_name, user_id=soldier.keystone_user_id)
        _fail(op, exc)
        return op

    with transaction.atomic():
        SshKey.objects.update_or_create(
            soldier=soldier,
            defaults={
                "key_type": key.key_type,
                "bits": key.bits,
                "fingerprint": key.fingerprint,
                "comment": key.comment,
                "public_key": key.openssh,
                "soldier_key_name": own_name,
                "launch_key_name": launch_name,
            },
        )
        # Launches that have not created their server yet get the new key too.
        Instance.objects.filter(
            owner=soldier, pending_action=Instance.Action.LAUNCH, server_id__isnull=True
        ).update(key_name=launch_name)
    if previous is not None:
        if previous.soldier_key_name != own_name:
            _forget(client, previous.soldier_key_name, user_id=soldier.keystone_user_id)
        if previous.launch_key_name != launch_name:
            _forget(client, previous.launch_key_name, user_id=None)
    finish(
        op,
        Operation.State.SUCCEEDED,
        gettext_noop(
            "Your SSH key was saved. VMs you request from now on accept it; VMs that already "
            "exist keep the key they were created with."
        )
        if previous is not None
        else gettext_noop("Your SSH key was saved. VMs you request from now on accept it."),
    )
    return op


def _fail(op: Operation, exc: errors.OpenStackError) -> None:
    technical = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, errors.Unavailable):
        message = gettext_noop(
            "The cloud cannot be reached right now. Nothing was changed; try again in a few "
            "minutes."
        )
        finish(op, Operation.State.FAILED, message, technical=technical)
    elif isinstance(exc, errors.BadRequest):
        message = gettext_noop(
            "The cloud did not accept this key (%(detail)s). Nothing was changed."
        )
        finish(op, Operation.State.FAILED, message, technical=technical, detail=exc.message)
    else:
        message = gettext_noop(
            "The cloud refused to import the key (%(detail)s). Nothing was changed; staff can "
            "look at it."
        )
        finish(op, Operation.State.FAILED, message, technical=technical, detail=exc.message)
