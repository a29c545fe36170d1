"""The durable-operation engine: steps, leases, waits, retries and how an operation ends.

An operation runs the named steps its kind declares (``portal.operations.registry``).
Before a step runs its name is saved, so a crash, a timeout or a retry resumes at that step.
A worker holds a lease on the operation while it runs; a worker that dies loses it when the lease
lapses, and ``operations_resume_stale`` hands the operation to another. A step that must wait
for the cloud returns ``Wait`` and the operation is re-enqueued with a delay, up to a deadline
counted from the step's start, instead of holding a worker.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.dispatch import Signal
from django.tasks import Task
from django.utils import timezone
from django.utils.translation import gettext_noop

from portal import cloud, metrics
from portal.models import (
    Batch,
    Instance,
    Operation,
    Soldier,
)
from portal.openstack import errors
from portal.openstack.transport import guard_requests
from portal.operations import registry
from portal.operations.errors import ClaimLost, OperationRefused, StepFailed
from portal.operations.registry import OperationKind, Wait

logger = logging.getLogger(__name__)

# Sent before every step with the operation and the step's name. Observability hooks (and the
# resumability tests, which interrupt an operation here) connect to it.
step_reached = Signal()


# Recorded as operations but run in the request that asked (a password is never queued): the
# engine never claims, resumes or retries them.
SYNCHRONOUS_KINDS = frozenset({Operation.Kind.PASSWORD_CHANGE, Operation.Kind.PASSWORD_RESET})

# The task that runs an operation in a worker (``portal.tasks.operation_run``). The task calls
# this module, so this module cannot import it: ``PortalConfig.ready()`` hands it over.
_task: Task | None = None


def use_task(task: Task) -> None:
    """Name the task that ``enqueue`` queues (called once, by ``PortalConfig.ready()``)."""
    global _task
    _task = task


def setting(name: str) -> float:
    """A numeric tuning setting; its one default lives in ``codesquare/settings.py``."""
    return float(getattr(settings, name))


def _lease() -> timedelta:
    return timedelta(seconds=setting("OPERATION_LEASE_SECONDS"))


def poll_seconds() -> float:
    """How long a waiting step lets the cloud work before it looks again."""
    return setting("OPERATION_POLL_SECONDS")


def _wait_deadline(kind: OperationKind) -> timedelta:
    return timedelta(seconds=setting(kind.timeout_setting))


def _max_retries() -> int:
    """Retries of one step after transient cloud errors (each step has its own budget)."""
    return int(setting("OPERATION_MAX_RETRIES"))


def retry_delay(retry: int) -> float:
    """Backoff before the ``retry``-th retry after a 5xx or a connection failure."""
    base = setting("OPERATION_RETRY_BASE_SECONDS")
    return float(min(base * 2 ** (retry - 1), setting("OPERATION_RETRY_MAX_SECONDS")))


def unknown_outcome_window() -> timedelta:
    """How long a create whose answer was lost is looked for before it is tried again.

    Longer than a request may take: a service that acted on a request the client gave up on
    has recorded it by then.
    """
    timeout = float(settings.OPENSTACK_TIMEOUT)
    return timedelta(seconds=max(setting("OPERATION_UNKNOWN_OUTCOME_SECONDS"), 2 * timeout))


# --- cloud text ------------------------------------------------------------------------------

_SECRET_FIELD = re.compile(
    r"""(?ix)
    (["']?(?:original_)?(?:password|passwd|secret|adminpass|token|auth[_-]?token
        |x-auth-token|x-subject-token|application_credential_secret|credential)["']?
     \s*[:=]\s*)
    ("[^"]*"|'[^']*'|[^\s,;}&]+)
    """
)
# Fernet tokens (gAAAA...), and any long unbroken credential-like run of characters.
_SECRET_BLOB = re.compile(r"gAAAA[\w\-=]{16,}|[A-Za-z0-9_\-+/=]{64,}")


def clean_cloud_text(text: Any, *, limit: int = 500) -> str:
    """Cloud text as data: bounded, with anything that looks like a password or token redacted.

    Services echo rejected input in their messages, so a message may carry what was sent.
    """
    value = _SECRET_FIELD.sub(lambda m: f"{m.group(1)}[redacted]", str(text))
    value = _SECRET_BLOB.sub("[redacted]", value)
    value = "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in value)
    return value if len(value) <= limit else value[: limit - 1] + "…"


# --- claims, fencing and queueing -------------------------------------------------------------


def _claimed(op: Operation) -> Any:
    """The operation's row, filtered on this worker still holding it (when it holds a claim)."""
    rows = Operation.objects.filter(pk=op.pk)
    if op.claim:
        rows = rows.filter(claim=op.claim, state=Operation.State.RUNNING)
    return rows


def enqueue(op: Operation, *, delay: float = 0) -> None:
    """Queue a task for ``op`` once the surrounding transaction commits; frees its lease.

    A worker re-queueing its own operation does so only while it still holds it: a worker whose
    lease lapsed must not wipe the lease of the worker that took over (``ClaimLost``).
    """
    run_after = timezone.now() + timedelta(seconds=delay) if delay > 0 else None
    if not _claimed(op).update(
        run_after=run_after, lease_expires_at=None, claim="", updated_at=timezone.now()
    ):
        raise ClaimLost(op.pk)
    op.run_after = run_after
    op.lease_expires_at = None
    op.claim = ""
    send_task(op.pk, run_after)


def send_task(operation_id: int, run_after: datetime | None = None) -> None:
    """Queue the ``operation_run`` task after the surrounding transaction commits."""

    if _task is None:
        raise RuntimeError("no operation task: PortalConfig.ready() has not run use_task()")
    queued = _task

    def send() -> None:
        task = queued.using(run_after=run_after) if run_after else queued
        task.enqueue(operation_id)

    transaction.on_commit(send)


def _claim(operation_id: int) -> str | None:
    """Take the worker lease on an operation; its claim token, or None if finished, leased,
    synchronous or not yet due."""
    now = timezone.now()
    token = uuid.uuid4().hex
    claimed = (
        Operation.objects.filter(pk=operation_id, state__in=Operation.ACTIVE_STATES)
        .exclude(kind__in=SYNCHRONOUS_KINDS)
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .filter(Q(run_after__isnull=True) | Q(run_after__lte=now + timedelta(seconds=1)))
        .update(
            state=Operation.State.RUNNING,
            claim=token,
            lease_expires_at=now + _lease(),
            attempts=F("attempts") + 1,
            started_at=Coalesce(F("started_at"), Value(now)),
            run_after=None,
        )
    )
    return token if claimed else None


@contextlib.contextmanager
def fenced(op: Operation) -> Iterator[None]:
    """A transaction for a step's writes that commits only while this worker holds ``op``.

    The conditional UPDATE on the operation row takes its lock first, so a worker whose lease
    lapsed cannot write after its successor claimed the operation (raises ``ClaimLost``).
    """
    with transaction.atomic():
        if op.claim and not _claimed(op).update(updated_at=timezone.now()):
            raise ClaimLost(op.pk)
        yield


def save_fields(op: Operation, *fields: str) -> None:
    """Save some fields of an operation (its progress), only while this worker holds it."""
    values = {name: getattr(op, name) for name in fields}
    op.updated_at = timezone.now()
    if not _claimed(op).update(**values, updated_at=op.updated_at):
        raise ClaimLost(op.pk)


class _Holding:
    """While a worker runs an operation: renew its lease and refuse cloud calls once it is lost.

    A step may legitimately outlast the lease (a long listing, a slow login): a heartbeat thread
    renews the lease every third of it, on the claim token only. Before every cloud call the
    request guard checks that the claim is still held, against the database before a call that
    changes something, so a worker whose lease lapsed acts on the cloud no more.
    """

    def __init__(self, op: Operation) -> None:
        self.op = op
        # The token this worker holds. Not read from ``op`` at each beat: once the worker
        # re-queues the operation (``enqueue`` empties ``op.claim``), a beat filtering on the
        # empty claim would lease the released row again, and its next task would skip it.
        self._token = op.claim
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{op.pk}", daemon=True)

    def __enter__(self) -> _Holding:
        self._thread.start()
        self._guard = guard_requests(self.check)
        self._guard.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._guard.__exit__(*exc)
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        interval = max(0.05, _lease().total_seconds() / 3)
        try:
            while not self._stop.wait(interval):
                renewed = Operation.objects.filter(
                    pk=self.op.pk, claim=self._token, state=Operation.State.RUNNING
                ).update(lease_expires_at=timezone.now() + _lease())
                if not renewed:
                    self.lost.set()
                    return
        finally:
            connection.close()  # this thread's own connection

    def check(self, method: str) -> None:
        if self.lost.is_set():
            raise ClaimLost(self.op.pk)
        if method in ("GET", "HEAD"):
            return
        held = Operation.objects.filter(
            pk=self.op.pk,
            claim=self.op.claim,
            state=Operation.State.RUNNING,
            lease_expires_at__gt=timezone.now(),
        ).exists()
        if not held:
            self.lost.set()
            raise ClaimLost(self.op.pk)


# --- outcomes --------------------------------------------------------------------------------


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
) -> bool:
    """End an operation; ``params`` fill the message's placeholders when it is shown.

    Returns False (and changes nothing) when it has already ended or this worker lost it.
    """
    op.state = state
    op.message = message
    op.message_params = {
        key: clean_cloud_text(value) if isinstance(value, str) else value
        for key, value in params.items()
    }
    op.error_detail = clean_cloud_text(technical, limit=2000)
    op.finished_at = timezone.now()
    op.lease_expires_at = None
    op.run_after = None
    op.deadline_at = None
    with transaction.atomic():
        rows = _claimed(op).filter(state__in=Operation.ACTIVE_STATES)
        if not rows.select_for_update().exists():
            # A worker whose lease lapsed while it was still busy: the operation was handed on
            # and has already ended; the later word must not overwrite it or count it twice.
            logger.warning("operation %s already ended; not ending it again as %s", op.pk, state)
            return False
        rows.update(
            state=op.state,
            message=op.message,
            message_params=op.message_params,
            error_detail=op.error_detail,
            finished_at=op.finished_at,
            lease_expires_at=None,
            run_after=None,
            deadline_at=None,
            request_ids=op.request_ids,
            progress=op.progress,
            step=op.step,
            updated_at=op.finished_at,
        )
        if op.instance_id is not None:
            changes: dict[str, Any] = {"pending_action": "", "pending_operation": None}
            if state == Operation.State.FAILED:
                changes["last_error"] = op.message_text
            elif op.kind != Operation.Kind.RECONCILE:
                changes["last_error"] = ""
            Instance.objects.filter(pk=op.instance_id, pending_operation=op).update(**changes)
        if op.batch_id is not None:
            count_in_batch(op.batch_id, state, op.finished_at)
    logger.info("operation %s %s %s", op.pk, op.kind, state)
    metrics.record_operation_finished(op.kind, state)
    return True


def count_in_batch(batch_id: int, state: str, when: datetime) -> None:
    """Count an ended operation in its batch, and close the batch when every one has ended."""
    counter = {
        Operation.State.SUCCEEDED: "succeeded",
        Operation.State.CANCELLED: "cancelled",
    }.get(Operation.State(state), "failed")
    Batch.objects.filter(pk=batch_id).update(**{counter: F(counter) + 1})
    close_batch_if_done(batch_id, when)


def close_batch_if_done(batch_id: int, when: datetime) -> None:
    """Set ``finished_at`` once no operation of the batch is queued or running."""
    if not Operation.objects.active().filter(batch_id=batch_id).exists():
        Batch.objects.filter(pk=batch_id, finished_at__isnull=True).update(finished_at=when)


# Neutron's names for a network (a floating-IP pool among them) with no address left to give.
_ADDRESSES_EXHAUSTED = frozenset({"IpAddressGenerationFailure", "ExternalIpAddressExhausted"})


def fail_from_cloud_error(op: Operation, exc: errors.OpenStackError) -> None:
    """Fail an operation with the cloud's own words, its request id and what to do next."""
    record_request_id(op, exc.request_id)
    params: dict[str, Any] = {
        "detail": clean_cloud_text(exc.message, limit=300),
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
        params["attempts"] = int(op.progress.get("step_retries", 0)) + 1
        message = gettext_noop(
            "The cloud did not answer after %(attempts)s tries (%(detail)s; request "
            "%(request_id)s). Try again later."
        )
    elif exc.error_type in _ADDRESSES_EXHAUSTED:
        message = gettext_noop(
            "The network has no free address left (%(detail)s; request %(request_id)s). Ask a "
            "cloud administrator to free or add addresses, then retry."
        )
    elif isinstance(exc, errors.Conflict):
        # Nova answers 409 to an action on a server busy with another task (powering-off,
        # deleting, ...): usually over by the time a person reads this.
        message = gettext_noop(
            "The cloud refused because of the resource's current state (%(detail)s; request "
            "%(request_id)s). Retry when it has finished its current task; if it is refused "
            "again, look at it in the cloud."
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


class LookAgain(Exception):
    """A step cannot go on yet (a create whose outcome is unknown); run it again later.

    Not a retry after an error: it does not use the step's retry budget.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds


def create_once[T](
    op: Operation, key: str, *, find: Callable[[], T | None], create: Callable[[], T]
) -> T:
    """Find the resource this step creates, else create it, never twice.

    A create that timed out or lost its connection has an unknown outcome: the service may
    have acted and record it late. Until ``unknown_outcome_window()`` has passed, the step
    keeps looking (``LookAgain``) instead of creating again.
    """
    marker = f"unknown:{key}"
    found = find()
    if found is not None:
        if op.progress.pop(marker, None) is not None:
            save_fields(op, "progress")
        return found
    since = op.progress.get(marker)
    if since is not None and timezone.now() < _parse(since) + unknown_outcome_window():
        raise LookAgain(poll_seconds())
    try:
        created = create()
    except errors.Unavailable as exc:
        if exc.status is not None:
            raise  # an answer came back: the service says it did not act; retry as usual
        record_request_id(op, exc.request_id)
        op.progress[marker] = timezone.now().isoformat()
        save_fields(op, "progress", "request_ids")
        logger.warning("operation %s: %s outcome unknown (%s); looking for it", op.pk, key, exc)
        raise LookAgain(poll_seconds()) from exc
    if op.progress.pop(marker, None) is not None:
        save_fields(op, "progress")
    return created


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


# --- running ---------------------------------------------------------------------------------


def operation_run(*, operation_id: int) -> str:
    """Run an operation's remaining steps; the body of the ``operation_run`` task."""
    token = _claim(operation_id)
    if token is None:
        return "skipped"
    op = Operation.objects.select_related("soldier", "instance", "batch").get(pk=operation_id)
    if op.claim != token:
        return "skipped"  # claimed again in between by a worker that found the lease lapsed
    kind = registry.find(op.kind)
    if kind is None:
        finish(
            op,
            Operation.State.FAILED,
            gettext_noop("The portal cannot run operations of kind %(kind)s."),
            kind=op.kind,
        )
        return "failed"
    try:
        with _Holding(op):
            return _run_steps(op, kind)
    except ClaimLost:
        logger.warning("operation %s: this worker lost its claim; stopping", op.pk)
        return "lost"


def _run_steps(op: Operation, kind: OperationKind) -> str:
    steps = kind.steps
    names = kind.step_names
    try:
        index = names.index(op.step) if op.step in names else 0
        client = cloud.get_client()
        while index < len(steps):
            name = steps[index].name
            if op.step != name or op.deadline_at is None:
                # A step that has to wait may do so until this deadline, counted from its start.
                if op.step != name:
                    op.progress.pop("step_retries", None)
                op.step = name
                op.deadline_at = timezone.now() + _wait_deadline(kind)
                op.lease_expires_at = timezone.now() + _lease()
                save_fields(op, "step", "deadline_at", "lease_expires_at", "progress")
            # (Resuming the step it stopped at: the claim has just renewed the lease.)
            step_reached.send(sender=Operation, operation=op, step=name)
            outcome = steps[index].function(op, client)
            if isinstance(outcome, Wait):
                return _reschedule_wait(op, outcome)
            index += 1
    except ClaimLost:
        raise
    except LookAgain as again:
        return _reschedule_wait(op, Wait(again.seconds))
    except StepFailed as exc:
        finish(op, Operation.State.FAILED, exc.message, **exc.params)
        return "failed"
    except errors.OpenStackError as exc:
        step_retries = int(op.progress.get("step_retries", 0))
        if isinstance(exc, errors.Unavailable) and step_retries < _max_retries():
            op.progress["step_retries"] = step_retries + 1
            op.retries += 1
            record_request_id(op, exc.request_id)
            op.error_detail = clean_cloud_text(f"{type(exc).__name__}: {exc}", limit=2000)
            save_fields(op, "retries", "request_ids", "error_detail", "progress")
            enqueue(op, delay=retry_delay(step_retries + 1))
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
    op.progress.pop("step_retries", None)
    finish(op, Operation.State.SUCCEEDED, kind.success)
    return "succeeded"


def _reschedule_wait(op: Operation, wait: Wait) -> str:
    if op.deadline_at is not None and timezone.now() >= op.deadline_at:
        minutes = max(1, round(_wait_deadline(registry.kind_of(op.kind)).total_seconds() / 60))
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
        kind = registry.find(op.kind)
        if op.kind in SYNCHRONOUS_KINDS or kind is None:
            raise OperationRefused(
                gettext_noop("A %(kind)s is not retried by the portal; do it again instead."),
                kind=op.get_kind_display(),
            )
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
        op.claim = ""
        op.progress.pop("step_retries", None)
        if kind.retry_from is not None:
            op.step = kind.retry_from
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
    running: bool = False,
) -> Operation:
    """Insert an operation; the partial unique index refuses a second active one per key.

    ``running`` records it as started here (a synchronous call, which no worker claims).
    """
    started = {"state": Operation.State.RUNNING, "attempts": 1, "started_at": timezone.now()}
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
                **(started if running else {}),
            )
    except IntegrityError as exc:
        raise OperationRefused(
            gettext_noop(
                "Another operation on the same target is in progress; try again when it finishes."
            )
        ) from exc
