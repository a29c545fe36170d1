"""Cloud passwords: synchronous calls, recorded as operations; a password is never stored."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.utils import timezone
from django.utils.translation import gettext_noop

from portal import cloud, password_policy
from portal.models import (
    Operation,
    Soldier,
)
from portal.openstack import errors
from portal.openstack.types import PasswordRule
from portal.operations.engine import (
    clean_cloud_text,
    create_operation,
    fail_from_cloud_error,
    finish,
    record_request_id,
)
from portal.operations.errors import OperationRefused
from portal.services.onboarding import domain_id
from portal.services.sessions import end_portal_sessions

logger = logging.getLogger(__name__)

# What a lost answer leaves people with: Keystone may or may not have the new password.
UNCONFIRMED = gettext_noop(
    "The cloud did not confirm the change (%(detail)s; request %(request_id)s). Log in with the "
    "new password; if it is refused, the old one still works."
)


RULE_CACHE_SECONDS = 300
RULE_CACHE_KEY = "codesquare:keystone-password-rule:{domain}"


def cloud_password_rule(*, ask_cloud: bool = True) -> PasswordRule:
    """Keystone's own password rule, for the forms to show before anyone submits.

    Read through the cache (the rule is keystone.conf's and changes with a redeploy). A page view
    passes ``ask_cloud=False`` (pages make no cloud call: it shows the rule once a submit has read
    it); a cloud that cannot say gives no rule, and Keystone still refuses what it does not take.
    """
    key = RULE_CACHE_KEY.format(domain=domain_id())
    cached = caches["default"].get(key)
    if isinstance(cached, tuple) and len(cached) == 2:
        return PasswordRule(*cached)
    if not ask_cloud:
        return PasswordRule(None, None)
    try:
        rule = cloud.get_client().password_rule(domain_id())
    except errors.OpenStackError as exc:
        logger.warning("Keystone's password rule unreadable: %s", type(exc).__name__)
        return PasswordRule(None, None)
    caches["default"].set(key, (rule.regex, rule.description), RULE_CACHE_SECONDS)
    return rule


def _synchronous_operation(
    *, kind: Operation.Kind, soldier: Soldier, requested_by: Any
) -> Operation:
    """The operation that records a password call, holding the soldier's password lock.

    One password call per soldier at a time (the lock key's constraint): two staff resetting
    at once would otherwise each be shown a password while only the later one works. A call
    whose process died keeps the lock only until it could no longer be waiting for the cloud.
    """
    now = timezone.now()
    lock = f"password:{soldier.pk}"
    abandoned = now - timedelta(seconds=2 * settings.OPENSTACK_TIMEOUT + 30)
    Operation.objects.filter(
        lock_key=lock, state=Operation.State.RUNNING, started_at__lt=abandoned
    ).update(
        state=Operation.State.FAILED,
        finished_at=now,
        message=gettext_noop("Interrupted before the cloud answered."),
        message_params={},
    )
    try:
        return create_operation(
            kind=kind, lock_key=lock, soldier=soldier, requested_by=requested_by, running=True
        )
    except OperationRefused:
        raise OperationRefused(
            gettext_noop(
                "The password of this soldier is being changed right now (by staff or by the "
                "soldier). Wait a moment, then look at the result before trying again."
            )
        ) from None


def _refuse_by_policy(soldier: Soldier, password: str) -> None:
    found = password_policy.problems(password, username=soldier.keystone_user_name)
    if found:
        raise OperationRefused(
            gettext_noop("The new password does not follow the password rules: %(rules)s"),
            rules=" ".join(found),
        )


def _new_password_works(soldier: Soldier, password: str) -> bool | None:
    """Whether Keystone takes ``password`` for the soldier now (None: it could not tell)."""
    try:
        cloud.get_client().authenticate(
            username=soldier.keystone_user_name,
            password=password,
            user_domain_id=domain_id(),
            timeout=settings.LOGIN_KEYSTONE_TIMEOUT,
        )
    except errors.Unauthorized:
        return False
    except errors.OpenStackError:
        return None
    return True


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
    _refuse_by_policy(soldier, new_password)
    op = _synchronous_operation(
        kind=Operation.Kind.PASSWORD_CHANGE, soldier=soldier, requested_by=requested_by
    )
    changed = gettext_noop("The password was changed.")
    try:
        cloud.get_client().change_own_password(
            soldier.keystone_user_id,
            original_password=original_password,
            new_password=new_password,
        )
    except errors.Unauthorized as exc:
        record_request_id(op, exc.request_id)
        if _new_password_works(soldier, new_password):
            # A retry of a change whose answer was lost: it went through the first time, and
            # the "wrong" current password is the soldier's old one, not a guess.
            finish(op, Operation.State.SUCCEEDED, changed)
            end_portal_sessions(soldier)
        else:
            # The soldier mistyped: nothing failed for staff to look at or to retry.
            finish(
                op, Operation.State.REFUSED, gettext_noop("The current password is not correct.")
            )
    except errors.BadRequest as exc:
        record_request_id(op, exc.request_id)
        finish(
            op,
            Operation.State.REFUSED,  # Keystone's own rules refused what the soldier typed
            gettext_noop("The cloud did not accept the new password: %(detail)s"),
            detail=exc.message,
        )
    except errors.OpenStackError as exc:
        # The answer was lost or the cloud failed: ask Keystone which password it now takes
        # before telling the soldier anything.
        works = _new_password_works(soldier, new_password)
        if works:
            record_request_id(op, exc.request_id)
            finish(op, Operation.State.SUCCEEDED, changed)
            end_portal_sessions(soldier)
        elif works is None:
            record_request_id(op, exc.request_id)
            finish(
                op,
                Operation.State.FAILED,
                UNCONFIRMED,
                detail=clean_cloud_text(exc.message, limit=300),
                request_id=exc.request_id or "-",
            )
        else:
            fail_from_cloud_error(op, exc)
    else:
        finish(op, Operation.State.SUCCEEDED, changed)
        end_portal_sessions(soldier)
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
    if new_password is not None:
        _refuse_by_policy(soldier, new_password)
    password = new_password or password_policy.generate()
    op = _synchronous_operation(
        kind=Operation.Kind.PASSWORD_RESET, soldier=soldier, requested_by=requested_by
    )
    try:
        cloud.get_client().reset_user_password(soldier.keystone_user_id, password)
    except errors.OpenStackError as exc:
        fail_from_cloud_error(op, exc)
        return PasswordReset(operation=op, password=None)
    finish(op, Operation.State.SUCCEEDED, gettext_noop("A new password was set."))
    end_portal_sessions(soldier)
    return PasswordReset(operation=op, password=password)
