"""What a poll needs to answer "unchanged" from the shared cache alone.

Two kinds of entries, both throwaway (a missing one only sends the poll down the full path, which
puts it back):

- a **VM version**: a random token per VM, dropped after the commit of every write to the VM or
  to one of its operations (the querysets and signals in ``portal.models`` call ``vms_changed``).
  The full path reads the token *before* it reads the database, so a page can only carry a token
  that was minted before what it shows: a write committed after the read drops the token, and the
  next poll is a full one. A page that shows news under an old token only costs one extra render.
- a soldier's **auth state**: the user's session hash, soldier id and login backend, stamped with
  a generation token that ``users_changed`` drops after every write to the user or the soldier
  (password, active flag, soldier state). The full path reads the generation before it loads the
  user, for the same reason: a password change or a discharge that commits while a request is
  between the two can never leave a valid-looking entry behind.

Both expire after ``POLL_CACHE_SECONDS`` as well: a write path that somehow bypassed the hooks
(raw SQL, a future bulk helper) is seen within that time, and an "unchanged" answer carries no
data in any case. Only a cache every process shares (file, Redis) can carry the invalidations
between the web and worker processes; ``settings.POLL_FAST_PATH`` is off for a per-process one.
"""

from __future__ import annotations

import logging
import random
import secrets
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.db import transaction

logger = logging.getLogger(__name__)

_VM = "cs:poll:vm:{}"
_AUTH_GEN = "cs:poll:gen:{}"
_AUTH = "cs:poll:auth:{}"


def cache() -> Any:
    """The cache every web and worker process shares (``CACHES["poll"]``, the sessions' too)."""
    return caches["poll"]


def vm_key(instance_id: int) -> str:
    return _VM.format(instance_id)


def auth_keys(user_id: Any) -> tuple[str, str]:
    """(generation key, entry key) of a user's cached auth state."""
    return _AUTH_GEN.format(user_id), _AUTH.format(user_id)


def enabled() -> bool:
    return bool(settings.POLL_FAST_PATH)


def _ttl() -> float:
    # Spread between half and all of POLL_CACHE_SECONDS: entries primed together (a whole unit's
    # cards after a morning start) would otherwise all expire in the same second, and every one
    # of those polls would take the full path at once.
    return float(settings.POLL_CACHE_SECONDS) * random.uniform(0.5, 1.0)  # noqa: S311 (no secret)


def _drop_after_commit(keys: list[str]) -> None:
    if not keys:
        return

    def drop() -> None:
        cache().delete_many(keys)

    # robust: a cache that is down must not stop the callbacks queued after this one (tasks
    # are enqueued on commit too); its readers fall through to the full path anyway.
    transaction.on_commit(drop, robust=True)


def vms_changed(instance_ids: Iterable[int | None]) -> None:
    """Every poll of these VMs answers with a fresh card once the current transaction commits."""
    _drop_after_commit(sorted({vm_key(i) for i in instance_ids if i is not None}))


def users_changed(user_ids: Iterable[Any]) -> None:
    """These users' sessions are checked against the database again at their next poll."""
    keys: list[str] = []
    for user_id in {u for u in user_ids if u is not None}:
        keys.extend(auth_keys(user_id))
    _drop_after_commit(sorted(keys))


def _token_for(key: str) -> str:
    token = cache().get(key)
    if token is None:
        fresh = secrets.token_hex(8)
        token = fresh if cache().add(key, fresh, _ttl()) else cache().get(key, fresh)
    return str(token)


def vm_version(instance_id: int) -> str:
    """The VM's current version token (minted if there is none); read it before the rows."""
    return _token_for(vm_key(instance_id))


def auth_generation(user_id: Any) -> str:
    """The user's current auth generation (minted if there is none); read it before the user."""
    return _token_for(auth_keys(user_id)[0])


def auth_remember(
    user_id: Any, *, generation: str, session_hash: str, soldier_id: int, backend: str
) -> None:
    """Store what the full path just checked in the database, under the generation read first."""
    entry = (generation, session_hash, soldier_id, backend)
    cache().set(auth_keys(user_id)[1], entry, _ttl())


# --- what single-row writes tell the pollers (bulk writes: the querysets in portal.models) ---


def _instance_written(sender: Any, instance: Any, **kwargs: Any) -> None:
    vms_changed([instance.pk])


def _operation_written(sender: Any, instance: Any, **kwargs: Any) -> None:
    vms_changed([instance.instance_id])


def _soldier_written(sender: Any, instance: Any, **kwargs: Any) -> None:
    users_changed([instance.user_id])


def _user_written(sender: Any, instance: Any, **kwargs: Any) -> None:
    users_changed([instance.pk])


def receivers() -> list[tuple[str, Any]]:
    """(model label, receiver) for ``post_save`` and ``post_delete``; wired in ``PortalConfig``."""
    return [
        ("portal.Instance", _instance_written),
        ("portal.Operation", _operation_written),
        ("portal.Soldier", _soldier_written),
        (settings.AUTH_USER_MODEL, _user_written),
    ]
