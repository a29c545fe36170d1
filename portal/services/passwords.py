"""Cloud passwords: synchronous calls, recorded as operations; a password is never stored."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext_noop

from portal import cloud
from portal.models import (
    Operation,
    Soldier,
)
from portal.openstack import errors
from portal.operations.engine import fail_from_cloud_error, finish, record_request_id
from portal.operations.errors import OperationRefused


def _synchronous_operation(
    *, kind: Operation.Kind, soldier: Soldier, requested_by: Any
) -> Operation:
    now = timezone.now()
    return Operation.objects.create(
        kind=kind,
        soldier=soldier,
        requested_by=requested_by,
        state=Operation.State.RUNNING,
        attempts=1,
        started_at=now,
    )


def soldier_password_change(
    *,
    soldier: Soldier,
    original_password: str,
    new_password: str,
    requested_by: Any = None,
) -> Operation:
    """A soldier changes their own cloud password, proving the original (Keystone 204)."""
    if not soldier.keystone_user_id:
        raise OperationRefused(gettext_noop("This soldier has no cloud account yet."))
    op = _synchronous_operation(
        kind=Operation.Kind.PASSWORD_CHANGE, soldier=soldier, requested_by=requested_by
    )
    try:
        cloud.get_client().change_own_password(
            soldier.keystone_user_id,
            original_password=original_password,
            new_password=new_password,
        )
    except errors.Unauthorized as exc:
        record_request_id(op, exc.request_id)
        finish(op, Operation.State.FAILED, gettext_noop("The current password is not correct."))
    except errors.BadRequest as exc:
        record_request_id(op, exc.request_id)
        finish(
            op,
            Operation.State.FAILED,
            gettext_noop("The cloud did not accept the new password: %(detail)s"),
            detail=exc.message,
        )
    except errors.OpenStackError as exc:
        fail_from_cloud_error(op, exc)
    else:
        finish(op, Operation.State.SUCCEEDED, gettext_noop("The password was changed."))
    return op


@dataclass(frozen=True)
class PasswordReset:
    """The outcome of a staff reset; ``password`` is shown once and never stored."""

    operation: Operation
    password: str | None = field(repr=False)


def soldier_password_reset(
    *, soldier: Soldier, requested_by: Any = None, new_password: str | None = None
) -> PasswordReset:
    """Staff set a new cloud password for a soldier (Keystone PATCH); shown once."""
    if not soldier.keystone_user_id:
        raise OperationRefused(gettext_noop("This soldier has no cloud account yet."))
    password = new_password or secrets.token_urlsafe(12)
    op = _synchronous_operation(
        kind=Operation.Kind.PASSWORD_RESET, soldier=soldier, requested_by=requested_by
    )
    try:
        cloud.get_client().reset_user_password(soldier.keystone_user_id, password)
    except errors.OpenStackError as exc:
        fail_from_cloud_error(op, exc)
        return PasswordReset(operation=op, password=None)
    finish(op, Operation.State.SUCCEEDED, gettext_noop("A new password was set."))
    return PasswordReset(operation=op, password=password)
