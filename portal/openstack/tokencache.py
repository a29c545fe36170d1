"""Where authenticated state is shared between processes (keystoneauth's auth state strings)."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class TokenCache(Protocol):
    """A shared key-value store for keystoneauth auth states.

    Values carry a live token, so the store must be as private as the portal's own secrets
    (Django's cache is). ``ttl`` is in seconds.
    """

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str, ttl: float) -> None: ...

    def delete(self, key: str) -> None: ...


class MemoryTokenCache:
    """A per-process cache: what the client uses when nothing shared is given."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            value, expires = item
            if time.monotonic() >= expires:
                del self._data[key]
                return None
            return value

    def set(self, key: str, value: str, ttl: float) -> None:
        with self._lock:
            self._data[key] = (value, time.monotonic() + ttl)

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)
