"""The declared kinds of operation, and the lookups the engine and the pages use.

A kind module (``portal/operations/<kind>.py``) declares ``KIND = OperationKind(...)``: the steps
in the order they run, each step's words for people, where a retry starts again and what people
read when it succeeds. ``install`` fills the registry from the modules listed in
``portal.operations.kinds.KIND_MODULES``; ``PortalConfig.ready()`` calls it once, so nothing is
registered as a side effect of importing a module.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.utils.functional import Promise
from django.utils.translation import gettext

if TYPE_CHECKING:
    from portal.models import Operation
    from portal.openstack import OpenStackClient


@dataclass(frozen=True)
class Wait:
    """The step is not finished; check again after ``seconds``."""

    seconds: float


StepFunction = Callable[["Operation", "OpenStackClient"], "Wait | None"]


@dataclass(frozen=True)
class Step:
    """One step: a stable name (saved on the operation, so a resume finds it) and its function.

    ``label`` is what people read while the step runs (a lazy or ``gettext_noop`` msgid), or
    None where no page names this step. Every step is written to be run again (it looks for what
    it creates before creating it), so a retry may resume at any of them; ``retry_from`` on the
    kind names the one step a retry must go back to instead.
    """

    name: str
    function: StepFunction
    label: str | Promise | None = None


@dataclass(frozen=True)
class OperationKind:
    """A kind of operation: its steps in order and what its ending means to people."""

    kind: str
    steps: tuple[Step, ...]
    # The msgid of what people read when an operation of this kind succeeds.
    success: str
    # Where a retry starts again when later steps only wait for earlier ones' effects (waiting
    # again would not redo what failed); None resumes at the step where it stopped.
    retry_from: str | None = None
    # The setting that bounds how long one step may wait for the cloud, counted from its start.
    timeout_setting: str = "OPERATION_POWER_TIMEOUT_SECONDS"
    _by_name: dict[str, Step] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [step.name for step in self.steps]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.kind}: a step name appears twice in {names}")
        if self.retry_from is not None and self.retry_from not in names:
            raise ValueError(f"{self.kind}: retry_from {self.retry_from!r} is not one of its steps")
        object.__setattr__(self, "_by_name", {step.name: step for step in self.steps})

    @property
    def step_names(self) -> list[str]:
        return [step.name for step in self.steps]

    def step(self, name: str) -> Step | None:
        return self._by_name.get(name)


_KINDS: dict[str, OperationKind] = {}


def install(module_names: Iterable[str]) -> None:
    """Load the kind modules named (each defines ``KIND``) and register what they declare."""
    kinds: dict[str, OperationKind] = {}
    for name in module_names:
        declared: Any = getattr(importlib.import_module(name), "KIND", None)
        if not isinstance(declared, OperationKind):
            raise TypeError(f"{name} does not declare KIND = OperationKind(...)")
        if declared.kind in kinds:
            raise ValueError(f"{name}: the kind {declared.kind!r} is declared twice")
        kinds[declared.kind] = declared
    _KINDS.clear()
    _KINDS.update(kinds)


def find(kind: str) -> OperationKind | None:
    """The declared kind, or None for a kind the engine does not run (a password change)."""
    return _KINDS.get(kind)


def kind_of(kind: str) -> OperationKind:
    """The declared kind; ``KeyError`` for a kind nobody declared."""
    return _KINDS[kind]


def declared_kinds() -> list[OperationKind]:
    return list(_KINDS.values())


def step_label(kind: str, step_name: str) -> str:
    """What people read while an operation of ``kind`` is at ``step_name`` ("" if nothing)."""
    declared = _KINDS.get(kind)
    step = declared.step(step_name) if declared is not None and step_name else None
    if step is None or step.label is None:
        return ""
    return str(step.label) if isinstance(step.label, Promise) else gettext(step.label)
