"""The durable-operation engine: steps, leases, waits, retries and how an operation ends.

An operation is a list of named steps (registered by the use-case modules with ``register``).
Before a step runs its name is saved, so a crash, a timeout or a retry resumes at that step.
A worker holds a lease on the operation while it runs; a worker that dies loses it when the lease
lapses, and ``operations_resume_stale`` hands the operation to another. A step that must wait
for the cloud returns ``Wait`` and the operation is re-enqueued with a delay, up to a deadline
counted from the step's start, instead of holding a worker.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.dispatch import Signal
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from portal import cloud
from portal.models import (
    Batch,
    Instance,
    Operation,
    Soldier,
)
from portal.openstack import OpenStackClient, errors

logger = logging.getLogger(__name__)

# Sent before every step with the operation and the step's name. Observability hooks (and the
# resumability tests, which interrupt an operation here) connect to it.
step_reached = Signal()


class OperationRefused(Exception):
    """The portal will not start this action; ``str()`` is a sentence for people."""

    def __init__(self, message: str, **params: Any) -> None:
        super().__init__(message)
        self.message = message
        self.params = params

    def __str__(self) -> str:
        text = gettext(self.message)
        return text % self.params if self.params else text


class ClaimLost(Exception):
    """This worker no longer holds the operation (its lease lapsed and another took it over).

    Raised before a write or a cloud call; the worker stops at once and leaves the operation to
    its new owner.
    """


class StepFailed(Exception):
    """A step met a condition retrying cannot fix; the operation fails with this message."""

    def __init__(self, message: str, **params: Any) -> None:
        super().__init__(message)
        self.message = message
        self.params = params


@dataclass(frozen=True)
class Wait:
    """The step is not finished; check again after ``seconds``."""

    seconds: float


StepFunction = Callable[[Operation, OpenStackClient], "Wait | None"]

# Filled by the use-case modules at import: the ordered step names of each kind of operation,
# every step's function, and what people read when an operation of that kind succeeds.
STEPS: dict[str, list[str]] = {}
STEP_FUNCTIONS: dict[str, StepFunction] = {}
SUCCESS_MESSAGES: dict[str, str] = {}


def register(kind: str, steps: Sequence[tuple[str, StepFunction]], *, success: str) -> None:
    """Declare the steps of one kind of operation, in the order they run."""
    for name, function in steps:
        if STEP_FUNCTIONS.get(name, function) is not function:
            raise ValueError(f"step name {name!r} is already taken")
        STEP_FUNCTIONS[name] = function
    STEPS[kind] = [name for name, _ in steps]
    SUCCESS_MESSAGES[kind] = success


def setting(name: str, default: float) -> float:
    """A numeric tuning setting (see .env.example); tests shorten them."""
    return float(getattr(settings, name, default))


def _lease() -> timedelta:
    return timedelta(seconds=setting("OPERATION_LEASE_SECONDS", 300))


def poll_seconds() -> float:
    """How long a waiting step lets the cloud work before it looks again."""
    return setting("OPERATION_POLL_SECONDS", 2)


def _wait_deadline(kind: str) -> timedelta:
    names: dict[str, str] = {
        Operation.Kind.LAUNCH: "OPERATION_LAUNCH_TIMEOUT_SECONDS",
        Operation.Kind.DELETE: "OPERATION_DELETE_TIMEOUT_SECONDS",
        Operation.Kind.DISCHARGE: "OPERATION_DISCHARGE_TIMEOUT_SECONDS",
    }
    return timedelta(seconds=setting(names.get(kind, "OPERATION_POWER_TIMEOUT_SECONDS"), 900))


def _max_retries() -> int:
    return int(setting("OPERATION_MAX_RETRIES", 4))


def retry_delay(retry: int) -> float:
    """Backoff before the ``retry``-th retry after a 5xx or a connection failure."""
    base = setting("OPERATION_RETRY_BASE_SECONDS", 2)
    return float(min(base * 2 ** (retry - 1), setting("OPERATION_RETRY_MAX_SECONDS", 60)))


def enqueue(op: Operation, *, delay: float = 0) -> None:
    """Queue a task for ``op`` once the surrounding transaction commits; frees its lease."""
    run_after = timezone.now() + timedelta(seconds=delay) if delay > 0 else None
    Operation.objects.filter(pk=op.pk).update(run_after=run_after, lease_expires_at=None)
    op.run_after = run_after
    op.lease_expires_at = None
    op_id = op.pk

    def send() -> None:
        from portal.tasks import operation_run

        task = operation_run.using(run_after=run_after) if run_after else operation_run
        task.enqueue(op_id)

    transaction.on_commit(send)


def _claim(operation_id: int) -> bool:
    """Take the worker lease on an operation; False if it is finished, leased or not yet due."""
    now = timezone.now()
    return bool(
        Operation.objects.filter(pk=operation_id, state__in=Operation.ACTIVE_STATES)
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .filter(Q(run_after__isnull=True) | Q(run_after__lte=now + timedelta(seconds=1)))
        .update(
            state=Operation.State.RUNNING,
            claim=uuid.uuid4().hex,
            lease_expires_at=now + _lease(),
            attempts=F("attempts") + 1,
            started_at=Coalesce(F("started_at"), Value(now)),
            run_after=None,
        )
    )


@contextlib.contextmanager
def fenced(op: Operation) -> Iterator[None]:
    """A transaction for a step's writes that commits only while this worker holds ``op``.

    The conditional UPDATE on the operation row takes its lock first, so a worker whose lease
    lapsed cannot write after its successor claimed the operation (raises ``ClaimLost``).
    """
    with transaction.atomic():
        if op.claim and not (
            Operation.objects.filter(
                pk=op.pk, claim=op.claim, state=Operation.State.RUNNING
            ).update(updated_at=timezone.now())
        ):
            raise ClaimLost(op.pk)
        yield


def save_fields(op: Operation, *fields: str) -> None:
    """Save some fields of an operation (its progress), touching ``updated_at``."""
    op.save(update_fields=[*fields, "updated_at"])


def record_request_id(op: Operation, request_id: str | None) -> None:
    """Keep a cloud request id for the operators (the last twenty)."""
    if request_id and request_id not in op.request_ids:
        op.request_ids = [*op.request_ids, request_id][-20:]


def finish(
    op: Operation,
    state: Operation.State,
    message: str = "",
    *,
    technical: str = "",
    **params: Any,
) -> None:
    """End an operation; ``params`` fill the message's placeholders when it is shown."""
    op.state = state
    op.message = message
    op.message_params = params
    op.error_detail = technical
    op.finished_at = timezone.now()
    op.lease_expires_at = None
    op.run_after = None
    op.deadline_at = None
    with transaction.atomic():
        if not (
            Operation.objects.select_for_update()
            .filter(pk=op.pk, state__in=Operation.ACTIVE_STATES)
            .exists()
        ):
            # A worker whose lease lapsed while it was still busy: the operation was handed on
            # and has already ended; the later word must not overwrite it or count it twice.
            logger.warning("operation %s already ended; not ending it again as %s", op.pk, state)
            return
        save_fields(
            op,
            "state",
            "message",
            "message_params",
            "error_detail",
            "finished_at",
            "lease_expires_at",
            "run_after",
            "deadline_at",
            "request_ids",
            "progress",
            "step",
        )
        if op.instance_id is not None:
            changes: dict[str, Any] = {"pending_action": "", "pending_operation": None}
            if state == Operation.State.FAILED:
                changes["last_error"] = op.message_text
            elif op.kind != Operation.Kind.RECONCILE:
                changes["last_error"] = ""
            Instance.objects.filter(pk=op.instance_id, pending_operation=op).update(**changes)
        if op.batch_id is not None:
            counter = "succeeded" if state == Operation.State.SUCCEEDED else "failed"
            Batch.objects.filter(pk=op.batch_id).update(**{counter: F(counter) + 1})
            Batch.objects.filter(pk=op.batch_id, finished_at__isnull=True).filter(
                total__lte=F("succeeded") + F("failed") + F("cancelled")
            ).update(finished_at=op.finished_at)
    logger.info("operation %s %s %s", op.pk, op.kind, state)


def fail_from_cloud_error(op: Operation, exc: errors.OpenStackError) -> None:
    """Fail an operation with the cloud's own words, its request id and what to do next."""
    record_request_id(op, exc.request_id)
    params: dict[str, Any] = {
        "detail": exc.message,
        "request_id": exc.request_id or "-",
        "step": op.step,
    }
    if isinstance(exc, errors.QuotaExceeded):
        message = gettext_noop(
            "The project's quota is used up, so the cloud refused (%(detail)s; request "
            "%(request_id)s). This is not retried: free some resources or ask for a larger quota."
        )
    elif isinstance(exc, errors.Forbidden):
        message = gettext_noop(
            "The cloud's policy does not allow this (%(detail)s; request %(request_id)s). "
            "This is not retried: ask a cloud administrator."
        )
    elif isinstance(exc, errors.Unavailable):
        params["attempts"] = op.retries + 1
        message = gettext_noop(
            "The cloud did not answer after %(attempts)s tries (%(detail)s; request "
            "%(request_id)s). Try again later."
        )
    elif isinstance(exc, errors.Conflict):
        message = gettext_noop(
            "The cloud refused because of the resource's current state (%(detail)s; request "
            "%(request_id)s)."
        )
    elif isinstance(exc, errors.NotFound):
        message = gettext_noop(
            "The cloud could not find something this needs (%(detail)s; request %(request_id)s)."
        )
    elif isinstance(exc, errors.BadRequest):
        message = gettext_noop(
            "The cloud rejected the request (%(detail)s; request %(request_id)s)."
        )
    else:
        message = gettext_noop("The cloud call failed (%(detail)s; request %(request_id)s).")
    finish(op, Operation.State.FAILED, message, technical=f"{type(exc).__name__}: {exc}", **params)


def operation_run(*, operation_id: int) -> str:
    """Run an operation's remaining steps; the body of the ``operation_run`` task."""
    if not _claim(operation_id):
        return "skipped"
    op = Operation.objects.select_related("soldier", "instance", "batch").get(pk=operation_id)
    steps = STEPS[op.kind]
    try:
        index = steps.index(op.step) if op.step else 0
        client = cloud.get_client()
        while index < len(steps):
            name = steps[index]
            if op.step != name or op.deadline_at is None:
                # A step that has to wait may do so until this deadline, counted from its start.
                op.step = name
                op.deadline_at = timezone.now() + _wait_deadline(op.kind)
                op.lease_expires_at = timezone.now() + _lease()
                save_fields(op, "step", "deadline_at", "lease_expires_at", "progress")
            # (Resuming the step it stopped at: the claim has just renewed the lease.)
            step_reached.send(sender=Operation, operation=op, step=name)
            outcome = STEP_FUNCTIONS[name](op, client)
            if isinstance(outcome, Wait):
                return _reschedule_wait(op, outcome)
            index += 1
    except StepFailed as exc:
        finish(op, Operation.State.FAILED, exc.message, **exc.params)
        return "failed"
    except errors.OpenStackError as exc:
        retryable = isinstance(exc, errors.Unavailable)
        if retryable and op.retries < _max_retries():
            op.retries += 1
            record_request_id(op, exc.request_id)
            op.error_detail = f"{type(exc).__name__}: {exc}"
            save_fields(op, "retries", "request_ids", "error_detail")
            enqueue(op, delay=retry_delay(op.retries))
            logger.warning("operation %s step %s will retry: %s", op.pk, op.step, exc)
            return "retrying"
        fail_from_cloud_error(op, exc)
        return "failed"
    except Exception as exc:
        finish(
            op,
            Operation.State.FAILED,
            gettext_noop("The portal hit an internal error at step %(step)s; staff can retry it."),
            technical="".join(traceback.format_exception_only(exc)).strip(),
            step=op.step,
        )
        raise
    op.step = ""
    finish(op, Operation.State.SUCCEEDED, SUCCESS_MESSAGES.get(op.kind, ""))
    return "succeeded"


def _reschedule_wait(op: Operation, wait: Wait) -> str:
    if op.deadline_at is not None and timezone.now() >= op.deadline_at:
        minutes = max(1, round(_wait_deadline(op.kind).total_seconds() / 60))
        finish(
            op,
            Operation.State.FAILED,
            gettext_noop(
                "The cloud did not finish step %(step)s within %(minutes)s minutes. Check the "
                "VM's state; staff can retry, which resumes from this step."
            ),
            step=op.step,
            minutes=minutes,
        )
        return "failed"
    enqueue(op, delay=wait.seconds)
    return "waiting"


def operation_retry(*, operation: Operation, requested_by: Any = None) -> Operation:
    """Start a failed operation again from the step where it stopped."""
    with transaction.atomic():
        op = Operation.objects.select_for_update().get(pk=operation.pk)
        if op.state != Operation.State.FAILED:
            raise OperationRefused(gettext_noop("Only a failed operation can be retried."))
        action = op.params.get("action", "")
        if op.instance_id is not None and not Instance.objects.filter(
            pk=op.instance_id, pending_action=""
        ).update(pending_action=action, pending_operation=op):
            raise OperationRefused(
                gettext_noop(
                    "This VM already has an operation in progress; try again when it finishes."
                )
            )
        op.state = Operation.State.QUEUED
        op.retries = 0
        op.message = ""
        op.message_params = {}
        op.finished_at = None
        op.deadline_at = None
        if requested_by is not None:
            op.requested_by = requested_by
        try:
            with transaction.atomic():
                op.save()
        except IntegrityError as exc:
            raise OperationRefused(
                gettext_noop("Another operation on the same target is in progress.")
            ) from exc
        if op.batch_id is not None:
            Batch.objects.filter(pk=op.batch_id, failed__gt=0).update(
                failed=F("failed") - 1, finished_at=None
            )
        enqueue(op)
    return op


def claim_instance(instance: Instance, action: Instance.Action) -> None:
    """The concurrency guard: one pending action per VM, set by a conditional UPDATE.

    Under PostgreSQL the row lock makes a concurrent caller wait and then see the action already
    set; under SQLite the IMMEDIATE transaction serializes writers the same way.
    """
    locked = Instance.objects.select_for_update().get(pk=instance.pk)
    if locked.pending_action or not Instance.objects.filter(
        pk=instance.pk, pending_action=""
    ).update(pending_action=action):
        raise OperationRefused(
            gettext_noop(
                "This VM already has an operation in progress (%(action)s); "
                "try again when it finishes."
            ),
            action=locked.get_pending_action_display() or action.label,
        )
    # The caller's copy may be stale: the state checks that follow must see the locked row's.
    for name in ("status", "task_state", "power_state", "server_id", "deleted_outside_portal"):
        setattr(instance, name, getattr(locked, name))
    instance.pending_action = action


def start_operation(
    *,
    kind: Operation.Kind,
    lock_key: str,
    soldier: Soldier | None = None,
    instance: Instance | None = None,
    action: Instance.Action | None = None,
    check: Callable[[Instance], None] | None = None,
    requested_by: Any = None,
    batch: Batch | None = None,
    params: dict[str, Any] | None = None,
    run_now: bool = False,
) -> Operation:
    """Claim the VM for ``action``, record the operation, point the VM at it and queue it.

    One transaction: a refusal (``OperationRefused``, from the claim, from ``check`` on the
    locked VM, or from the one-active-operation-per-key index) leaves nothing behind.
    ``run_now`` runs the steps in this process after the commit instead of queueing a task.
    """
    with transaction.atomic():
        if instance is not None and action is not None:
            claim_instance(instance, action)
            if check is not None:
                check(instance)
        op = create_operation(
            kind=kind,
            lock_key=lock_key,
            soldier=soldier,
            instance=instance,
            requested_by=requested_by,
            batch=batch,
            params={**({"action": str(action)} if action else {}), **(params or {})},
        )
        if instance is not None and action is not None:
            Instance.objects.filter(pk=instance.pk).update(pending_operation=op)
            instance.pending_operation = op
        if not run_now:
            enqueue(op)
    if run_now:
        operation_run(operation_id=op.pk)
        op.refresh_from_db()
    return op


def create_operation(
    *,
    kind: Operation.Kind,
    lock_key: str,
    soldier: Soldier | None = None,
    instance: Instance | None = None,
    requested_by: Any = None,
    batch: Batch | None = None,
    params: dict[str, Any] | None = None,
) -> Operation:
    """Insert an operation; the partial unique index refuses a second active one per key."""
    try:
        with transaction.atomic():
            return Operation.objects.create(
                kind=kind,
                lock_key=lock_key,
                soldier=soldier,
                instance=instance,
                requested_by=requested_by,
                batch=batch,
                params=params or {},
            )
    except IntegrityError as exc:
        raise OperationRefused(
            gettext_noop(
                "Another operation on the same target is in progress; try again when it finishes."
            )
        ) from exc
