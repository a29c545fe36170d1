"""How an operation refuses to start, fails at a step, or is lost by its worker."""

from __future__ import annotations

from typing import Any

from portal.errors import Refusal


class OperationRefused(Refusal):
    """The portal will not start this action; ``str()`` is a sentence for people."""


class StepFailed(Refusal):
    """A step met a condition retrying cannot fix; the operation fails with this message."""

    # A msgid, not a lazy string: the failed operation stores it and translates it when shown.
    message: str

    def __init__(self, message: str, /, **params: Any) -> None:
        super().__init__(message, **params)


class ClaimLost(Exception):
    """This worker no longer holds the operation (its lease lapsed and another took it over).

    Raised before a write or a cloud call; the worker stops at once and leaves the operation to
    its new owner.
    """
