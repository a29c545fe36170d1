"""Injected faults and the request log, both driven through the control endpoint."""

from __future__ import annotations

import random
import re
import threading
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from devcloud.core import new_hex_id

ACTIONS = ("error", "drop", "timeout")


@dataclass
class Fault:
    """One rule: requests whose method and full path match may be slowed, failed or cut off.

    `path` is a regular expression searched in the full request path (e.g. "/compute/v2.1/servers").
    `status` None with action "error" means latency only. `count` None means "until removed".
    `after` means the request is carried out first and only its response is replaced or lost,
    the case where a client cannot tell whether its call took effect. With `defer` seconds as
    well, the request is carried out that long after the client got its answer (or lost its
    connection): a service that records a create late, after the client gave up on it.
    """

    method: str = "*"
    path: str = ".*"
    status: int | None = 503
    fraction: float = 1.0
    count: int | None = None
    latency: float = 0.0
    action: str = "error"
    message: str | None = None
    after: bool = False
    defer: float = 0.0
    # The first `skip` matching calls pass untouched (e.g. fail a listing's second page only).
    skip: int = 0
    id: str = field(default_factory=new_hex_id)
    hits: int = 0

    def __post_init__(self) -> None:
        self._regex = re.compile(self.path)

    @property
    def has_effect(self) -> bool:
        return self.action != "error" or self.status is not None

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method)) and self._regex.search(path) is not None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Decision:
    latency: float = 0.0
    fault: Fault | None = None


class Faults:
    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._build_failures: deque[str] = deque()
        self._random = random.Random(seed)

    def add(self, fault: Fault) -> Fault:
        if fault.action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}")
        if not 0.0 <= fault.fraction <= 1.0:
            raise ValueError("fraction must be between 0 and 1")
        if fault.count is not None and fault.count < 1:
            raise ValueError("count must be a positive integer or null")
        if fault.latency < 0:
            raise ValueError("latency must not be negative")
        if fault.skip < 0:
            raise ValueError("skip must not be negative")
        if fault.defer < 0 or (fault.defer and not fault.after):
            raise ValueError("defer must not be negative, and needs after=true")
        if fault.action == "error" and fault.status is not None and not 400 <= fault.status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        with self._lock:
            self._faults.append(fault)
        return fault

    def remove(self, fault_id: str) -> bool:
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if f.id != fault_id]
            return len(self._faults) != before

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self._build_failures.clear()

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.as_dict() for f in self._faults]

    def decide(self, method: str, path: str) -> Decision:
        """Roll every matching rule once; latencies add up, the first effect wins."""
        decision = Decision()
        with self._lock:
            for fault in list(self._faults):
                if not fault.matches(method, path):
                    continue
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                if fault.fraction < 1.0 and self._random.random() >= fault.fraction:
                    continue
                fault.hits += 1
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                decision.latency += fault.latency
                if decision.fault is None and fault.has_effect:
                    decision.fault = fault
        return decision

    def fail_builds(self, count: int, message: str) -> None:
        with self._lock:
            self._build_failures.extend([message] * count)

    def next_build_failure(self) -> str | None:
        with self._lock:
            return self._build_failures.popleft() if self._build_failures else None

    def pending_build_failures(self) -> int:
        with self._lock:
            return len(self._build_failures)


class RequestLog:
    """One entry per HTTP request to the four APIs (control calls are not logged)."""

    def __init__(self, maxlen: int = 200_000) -> None:
        self._lock = threading.Lock()
        self._entries: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self._seq = 0

    def add(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._seq += 1
            entry["seq"] = self._seq
            self._entries.append(entry)

    def entries(self, since: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self._entries if e["seq"] > since]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
