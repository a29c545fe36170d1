"""What a soldier may do for themselves: log in with the cloud account, ask for a VM, act on theirs.

The staff console has the same powers and more; these use-cases add the limits a soldier works
under (how many VMs, whether they may delete one) and call the same instance services.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils.translation import gettext_noop

from portal import cloud
from portal.errors import Refusal
from portal.models import Instance, Operation, PowerState, Soldier, VmTemplate
from portal.openstack import errors
from portal.openstack.types import ServerStatus
from portal.operations.errors import OperationRefused
from portal.services.instances import (
    instance_delete,
    instance_launch,
    instance_power,
    live_instances_from,
)
from portal.services.onboarding import domain_id
from portal.validation import reserved_usernames

logger = logging.getLogger(__name__)


class CloudLoginUnavailable(Exception):
    """Keystone could not answer a login (down, too slow, failing): nobody's credentials were
    judged, so this is not a failed login."""


class CloudLoginBusy(CloudLoginUnavailable):
    """As many logins as the setting allows are already waiting for Keystone in this process;
    this one is not sent (it would only queue behind them and hold a web thread)."""


_login_slots: tuple[int, threading.BoundedSemaphore] | None = None
_login_slots_lock = threading.Lock()


def _login_slot() -> threading.BoundedSemaphore:
    global _login_slots
    size = max(1, settings.LOGIN_KEYSTONE_CONCURRENCY)
    with _login_slots_lock:
        if _login_slots is None or _login_slots[0] != size:
            _login_slots = (size, threading.BoundedSemaphore(size))
        return _login_slots[1]


class LoginRefused(Refusal):
    """Keystone accepted the credentials but the portal does not serve this account.

    ``message`` is a gettext msgid, translated when shown.
    """


def soldier_authenticate(*, username: str, password: str) -> Soldier | None:
    """The soldier whose cloud credentials these are (Keystone ``POST /v3/auth/tokens``).

    None for credentials Keystone rejects, and for a name no soldier of the portal has (the
    cloud's own and service accounts included) without asking Keystone at all: the login is no
    way to test an administrator's password, nor to lock a service account out at Keystone. The
    token Keystone issues only proves the password and is dropped here: the portal acts with
    its own account, never the soldier's.
    """
    if not _may_be_a_soldier(username):
        return None
    slot = _login_slot()
    # A healthy Keystone frees a slot within tens of milliseconds, so a morning's burst of
    # logins waits that long for one; a hanging Keystone holds every slot, and the login is
    # told "try again shortly" after this short wait instead of tying up a web thread.
    if not slot.acquire(timeout=settings.LOGIN_KEYSTONE_QUEUE_SECONDS):
        logger.warning(
            "cloud login refused: %s logins already wait for Keystone",
            settings.LOGIN_KEYSTONE_CONCURRENCY,
        )
        raise CloudLoginBusy("busy")
    try:
        token = cloud.get_client().authenticate(
            username=username,
            password=password,
            user_domain_id=domain_id(),
            timeout=settings.LOGIN_KEYSTONE_TIMEOUT,
        )
    except errors.Unauthorized:
        return None
    except errors.OpenStackError as exc:
        # No username in the log line: it may be a password typed into the wrong field.
        logger.warning("cloud login unavailable: %s (status %s)", type(exc).__name__, exc.status)
        raise CloudLoginUnavailable(type(exc).__name__) from exc
    finally:
        slot.release()
    user_id = token.user_id
    del token
    soldier = Soldier.objects.select_related("user").filter(keystone_user_id=user_id).first()
    if soldier is None:
        raise LoginRefused(
            gettext_noop(
                "Your cloud account is not registered with the portal. Ask staff to add you."
            )
        )
    if soldier.state == Soldier.State.DISABLED or not soldier.user.is_active:
        raise LoginRefused(
            gettext_noop(
                "Your portal access has ended (discharged or disabled). Ask staff if this is "
                "a mistake."
            )
        )
    return soldier


def _may_be_a_soldier(username: str) -> bool:
    name = username.strip()
    if not name or name.lower() in reserved_usernames():
        return False
    # Without case: Keystone on MySQL compares names so, and a soldier may type "Soldier2".
    return Soldier.objects.filter(keystone_user_name__iexact=name).exists()


def live_vm_limit() -> int:
    return int(settings.SELFSERVICE_LIVE_VM_LIMIT)


def soldier_delete_allowed() -> bool:
    return bool(settings.SELFSERVICE_SOLDIER_DELETE)


def soldier_live_instances(soldier: Soldier) -> QuerySet[Instance]:
    """The soldier's VMs that count against the limit: every one not deleted (or gone)."""
    return soldier.instances.exclude(status=ServerStatus.DELETED).exclude(
        deleted_outside_portal=True
    )


def soldier_vm_request(
    *, soldier: Soldier, template: VmTemplate, requested_by: Any = None
) -> Instance:
    """Queue a VM from an offered template, within the soldier's live-VM limit.

    The VM gets the soldier's SSH key (the portal user's copy) when they registered one.
    """
    limit = live_vm_limit()
    with transaction.atomic():
        # Serializes two requests of one soldier (a row lock on PostgreSQL; SQLite's IMMEDIATE
        # transactions serialize writers already), so both cannot pass the count.
        Soldier.objects.select_for_update().get(pk=soldier.pk)
        count = soldier_live_instances(soldier).count()
        if count >= limit:
            raise OperationRefused(
                gettext_noop(
                    "You already have %(count)s VM(s) and the limit is %(limit)s. Delete one, "
                    "or ask staff, before requesting another."
                ),
                count=count,
                limit=limit,
            )
        # (instance_launch gives it the soldier's SSH key, as it does for staff launches.)
        # Within his limit a soldier may hold two VMs of one template (a limit above 1 says so).
        second = live_instances_from(soldier, template).exists()
        return instance_launch(
            soldier=soldier, template=template, requested_by=requested_by, second_vm=second
        )


def soldier_vm_delete(
    *, soldier: Soldier, instance: Instance, requested_by: Any = None
) -> Operation:
    """Queue the leak-proof delete of the soldier's own VM, if soldiers may delete."""
    if not soldier_delete_allowed():
        raise OperationRefused(
            gettext_noop("Deleting your own VM is turned off here; ask staff to delete it.")
        )
    if instance.owner_id != soldier.pk:
        raise OperationRefused(gettext_noop("This VM is not yours."))
    return instance_delete(instance=instance, requested_by=requested_by)


def soldier_vm_power(
    *, soldier: Soldier, instance: Instance, action: Instance.Action, requested_by: Any = None
) -> Operation:
    """Start, stop or reboot the soldier's own VM.

    "Start" on a VM whose guest shut itself down (ACTIVE, power off) is a hard reboot: Nova
    refuses ``os-start`` until its periodic sync has marked the server SHUTOFF.
    """
    if instance.owner_id != soldier.pk:
        raise OperationRefused(gettext_noop("This VM is not yours."))
    if (
        action == Instance.Action.START
        and instance.status == ServerStatus.ACTIVE
        and instance.power_state in (PowerState.SHUTDOWN, PowerState.NOSTATE)
    ):
        action = Instance.Action.REBOOT_HARD
    return instance_power(instance=instance, action=action, requested_by=requested_by)
