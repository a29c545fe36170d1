"""The card poll's "unchanged" answer, decided from the session and the shared cache alone.

A card the poll renders carries a ``seen`` value: the status key it shows, the time its words
change by the clock alone (0: never), and a MAC over those, the VM, the soldier, the language
and the VM's version token (``portal.pollcache``). The next poll answers 204 (htmx keeps the
card and goes on polling) when that MAC still matches the current token, for the soldier whose
session is, by the cached auth state, still the one the database last approved. Any doubt (a
cache miss, a stale generation, another soldier, a changed hash, an expired clock) falls through
to the full view, which checks everything in the database and re-primes the cache.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.http import HttpRequest, HttpResponse
from django.utils.crypto import constant_time_compare
from django.utils.functional import empty
from django.utils.translation import get_language

from portal import pollcache
from portal.models import Soldier
from portal.selfservice.cards import Card
from portal.status import StatusKey

_SALT = "portal.selfservice.poll.seen"
# A deleted VM's card stops polling (286): only the full view answers for one, with its content.
_WATCHED_KEYS = frozenset(str(k) for k in StatusKey if k != StatusKey.DELETED)


def _mac(pk: int, soldier_id: Any, version: str, key: str, until: str) -> str:
    value = f"{pk}|{soldier_id}|{version}|{get_language()}|{key}|{until}"
    return hmac.new(_mac_key(settings.SECRET_KEY), value.encode(), hashlib.sha256).hexdigest()[:32]


@functools.cache
def _mac_key(secret: str) -> bytes:
    # salted_hmac's key derivation, done once per secret instead of on every poll.
    return hashlib.sha256((_SALT + secret).encode()).digest()


def seen_value(card: Card, *, soldier_id: int, version: str, now: datetime) -> str:
    """What the rendered card hands back on its next poll."""
    change = card.words_change_at(now)
    # One second late rather than early: at ``until`` the words may not have changed yet.
    until = str(int(change.timestamp()) + 1) if change is not None else "0"
    key = str(card.status.key)
    return f"{key}.{until}.{_mac(card.instance.pk, soldier_id, version, key, until)}"


def seen_key(seen: str) -> str:
    """The status key the poller's card shows (for the announcement of a change)."""
    return seen.split(".", 1)[0]


def _still_current(seen: str, pk: int, soldier_id: Any, version: str | None) -> bool:
    parts = seen.split(".")
    if version is None or len(parts) != 3:
        return False
    key, until, mac = parts
    if key not in _WATCHED_KEYS or not until.isdigit():
        return False
    if until != "0" and time.time() >= int(until):
        return False
    return constant_time_compare(mac, _mac(pk, soldier_id, version, key, until))


@dataclass(frozen=True)
class Check:
    """What the cache alone says about a card poll."""

    # The session's soldier, when the cached auth state still vouches for the session.
    soldier_id: int | None = None
    # The VM's version token as read before any row (None: none in the cache).
    version: str | None = None
    # Nothing changed since the poller's card was rendered: 204.
    unchanged: bool = False


def check(request: HttpRequest, pk: int) -> Check:
    """The cache's view of this poll (the session read is a cache read too); no database."""
    if request.method != "GET" or not pollcache.enabled() or not getattr(request, "htmx", False):
        return Check()
    session = request.session
    user_id = session.get(SESSION_KEY)
    session_hash = session.get(HASH_SESSION_KEY)
    backend = session.get(BACKEND_SESSION_KEY)
    if not (user_id and session_hash and backend):
        return Check()
    generation_key, auth_key = pollcache.auth_keys(user_id)
    vm_key = pollcache.vm_key(pk)
    found = pollcache.cache().get_many([generation_key, auth_key, vm_key])
    version = found.get(vm_key)
    entry = found.get(auth_key)
    if entry is None or found.get(generation_key) is None:
        return Check(version=version)
    generation, known_hash, soldier_id, known_backend = entry
    if (
        generation != found[generation_key]
        or known_backend != backend
        or not constant_time_compare(known_hash, session_hash)
    ):
        return Check(version=version)
    seen = request.GET.get("seen", "")
    return Check(soldier_id, version, _still_current(seen, pk, soldier_id, version))


def auth_generation(request: HttpRequest) -> str | None:
    """The session user's auth generation, read before the user is (None: nothing to prime)."""
    if not pollcache.enabled():
        return None
    user = request.user
    if getattr(user, "_wrapped", None) is not empty:
        return None  # already loaded by someone before us: no safe order to prime in
    user_id = request.session.get(SESSION_KEY)
    return pollcache.auth_generation(user_id) if user_id else None


def remember_auth(request: HttpRequest, generation: str | None, soldier: Soldier) -> None:
    """The database just approved this session (``soldier_view``): cache what it checked."""
    if generation is None:
        return
    user: Any = request.user
    session = request.session
    session_hash = session.get(HASH_SESSION_KEY)
    if (
        not session_hash
        or str(session.get(SESSION_KEY)) != str(user.pk)
        or not user.is_active
        or soldier.state == Soldier.State.DISABLED
        or not constant_time_compare(session_hash, user.get_session_auth_hash())
    ):
        return
    pollcache.auth_remember(
        user.pk,
        generation=generation,
        session_hash=session_hash,
        soldier_id=soldier.pk,
        backend=str(session.get(BACKEND_SESSION_KEY, "")),
    )


def unchanged_response() -> HttpResponse:
    """204: htmx swaps nothing and keeps polling."""
    response = HttpResponse(status=204)
    response["Cache-Control"] = "no-store"
    return response
