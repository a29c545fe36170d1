"""One answer to "what state is this VM in?", shared by the staff console and the soldier pages.

Nova reports four fields that disagree in time (``status``, ``vm_state``, ``task_state``,
``power_state``, the last refreshed by a periodic sync up to ten minutes late) and the portal adds
its own pending action and last error. ``merged_status`` turns all of it into one
``StatusKey`` (``_status_key``, the decision) and then reads what people see from ``STATUSES``
(one row per key: label, tone, transitional, words for staff and for soldiers); the few keys
whose words depend on the VM itself (building, error, failed, unknown) pass through a small hook.
It is pure: it reads attributes of an ``Instance`` (and of its ``pending_operation``, which
callers should ``select_related``) and makes no query of its own.

Time helpers live here too: every time is shown in Asia/Seoul with Nova's original string and
the UTC time in a tooltip.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext, ngettext, pgettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from portal.models import Instance, Operation
from portal.openstack.types import PowerState, ServerStatus
from portal.operations.registry import step_label

SEOUL = ZoneInfo("Asia/Seoul")


class Tone(enum.StrEnum):
    """The colour family of a status; the label text always carries the meaning too."""

    BLUE = "blue"  # something is happening
    GREEN = "green"  # running
    AMBER = "amber"  # needs a look, not broken
    RED = "red"  # broken or failed
    GREY = "grey"  # off, deleted or unknown
    PURPLE = "purple"  # gone: deleted outside the portal, a case of its own for staff


class Audience(enum.StrEnum):
    STAFF = "staff"
    SOLDIER = "soldier"


class StatusKey(enum.StrEnum):
    """The portal's own status vocabulary: stable identifiers for filters, tests, CSS and cards.

    Declared in the order of the first-match rules of ``_status_key`` (also the order of the
    console's filter options and status counts).
    """

    QUEUED = "queued"
    BUILDING = "building"
    RESTARTING = "restarting"
    STARTING = "starting"
    STOPPING = "stopping"
    DELETING = "deleting"
    RUNNING = "running"
    GUEST_OFF = "guest_off"
    NOT_SEEN = "not_seen"
    CRASHED = "crashed"
    STOPPED = "stopped"
    PAUSED = "paused"
    SUSPENDED = "suspended"
    ERROR = "error"
    FAILED = "failed"
    GONE = "gone"
    DELETED = "deleted"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Words:
    """What one audience reads about a status: what is going on, and what to do about it."""

    explanation: str | Promise = ""
    next_step: str | Promise = ""


@dataclass(frozen=True)
class StatusSpec:
    """Everything shown for one status key, for both audiences."""

    label: str | Promise
    tone: Tone
    staff: Words
    soldier: Words | None = None  # None: the same words as for staff
    # True while the VM or the portal is between states: pages showing it keep polling.
    transitional: bool = False

    def words(self, audience: Audience) -> Words:
        if audience is Audience.SOLDIER and self.soldier is not None:
            return self.soldier
        return self.staff


@dataclass(frozen=True)
class MergedStatus:
    """What people read about one VM."""

    key: StatusKey
    label: str
    tone: Tone
    explanation: str
    next_step: str = ""
    # True while the VM or the portal is between states: pages showing it keep polling.
    transitional: bool = False
    # The portal's last failed action on this VM, when the VM itself is otherwise stable.
    problem: str = ""

    @property
    def css_class(self) -> str:
        return f"cs-badge cs-tone-{self.tone}"


_UPDATES_ITSELF = _("Nothing to do: this page updates by itself.")
_START_IT = _("Start it.")
# Paused and suspended read alike: the cloud holds the VM until someone resumes it.
_HELD_STAFF = Words(
    _("The VM was paused or suspended in the cloud."), _("Resume it in the cloud, then sync.")
)
_HELD_SOLDIER = Words(
    _("The VM was paused or suspended in the cloud."), _("Only staff can resume it; ask them.")
)
_SLOW_BUILD = _(
    "This is taking longer than usual. If it does not finish soon, staff can look at it."
)


# The one table of what people read, per key. The keys with a hook in ``_HOOKS`` start from
# these words and complete them from the VM (see the hooks below).
STATUSES: dict[StatusKey, StatusSpec] = {
    StatusKey.QUEUED: StatusSpec(
        pgettext_lazy("vm status", "Queued"),
        Tone.BLUE,
        Words(_("Your request is queued and will reach the cloud shortly."), _UPDATES_ITSELF),
        transitional=True,
    ),
    StatusKey.BUILDING: StatusSpec(
        pgettext_lazy("vm status", "Building"),
        Tone.BLUE,
        Words(_("The VM is being created."), _UPDATES_ITSELF),  # + step, slowness: _building_text
        transitional=True,
    ),
    StatusKey.RESTARTING: StatusSpec(
        pgettext_lazy("vm status", "Restarting"),
        Tone.BLUE,
        Words(_("The VM is restarting.")),
        transitional=True,
    ),
    StatusKey.STARTING: StatusSpec(
        pgettext_lazy("vm status", "Starting"),
        Tone.BLUE,
        Words(_("The VM is starting.")),
        transitional=True,
    ),
    StatusKey.STOPPING: StatusSpec(
        pgettext_lazy("vm status", "Stopping"),
        Tone.BLUE,
        Words(_("The VM is shutting down.")),
        transitional=True,
    ),
    StatusKey.DELETING: StatusSpec(
        pgettext_lazy("vm status", "Deleting"),
        Tone.BLUE,
        Words(_("The VM is being deleted, then its public address is released.")),
        transitional=True,
    ),
    StatusKey.RUNNING: StatusSpec(
        pgettext_lazy("vm status", "Running"),
        Tone.GREEN,
        staff=Words(_("The VM is running."), _("Nothing to do.")),
        soldier=Words(_("The VM is running."), _("Connect with the SSH command below.")),
    ),
    StatusKey.GUEST_OFF: StatusSpec(
        pgettext_lazy("vm status", "Off (guest shut down)"),
        Tone.AMBER,
        Words(
            _(
                "The operating system inside the VM shut itself down; the cloud has not noticed "
                "yet."
            ),
            _START_IT,
        ),
    ),
    StatusKey.NOT_SEEN: StatusSpec(
        pgettext_lazy("vm status", "Not seen by its host"),
        Tone.RED,
        staff=Words(
            _(
                "Nova says the VM is active, but its hypervisor does not report it (power state "
                "NOSTATE): the host may have lost the VM, or nova-compute on that host is down."
            ),
            _(
                "Check nova-compute on the VM's host, then sync; if the host is fine, a hard "
                "reboot brings the VM back."
            ),
        ),
        soldier=Words(
            _("The cloud cannot see your VM on its server right now."),
            _("Staff see this on their console; ask them if it lasts."),
        ),
    ),
    StatusKey.CRASHED: StatusSpec(
        pgettext_lazy("vm status", "Crashed"),
        Tone.RED,
        Words(_("The VM's operating system crashed."), _("Restart it with a hard reboot.")),
    ),
    StatusKey.STOPPED: StatusSpec(
        pgettext_lazy("vm status", "Stopped"),
        Tone.GREY,
        Words(_("The VM is switched off."), _START_IT),
    ),
    StatusKey.PAUSED: StatusSpec(
        pgettext_lazy("vm status", "Paused"),
        Tone.AMBER,
        staff=_HELD_STAFF,
        soldier=_HELD_SOLDIER,
    ),
    StatusKey.SUSPENDED: StatusSpec(
        pgettext_lazy("vm status", "Suspended"),
        Tone.AMBER,
        staff=_HELD_STAFF,
        soldier=_HELD_SOLDIER,
    ),
    StatusKey.ERROR: StatusSpec(
        pgettext_lazy("vm status", "Error"),
        Tone.RED,
        # Staff also read Nova's fault and the portal's error: _error.
        staff=Words(
            _("The cloud reports an error for this VM."),
            _("Retry the failed operation, or delete the VM."),
        ),
        soldier=Words(
            _("The cloud reports an error for this VM."),
            _("Staff have been notified and will fix or replace it."),
        ),
    ),
    StatusKey.FAILED: StatusSpec(
        pgettext_lazy("vm status", "Action failed"),
        Tone.RED,
        # Staff read the portal's error itself as the explanation: _failed.
        staff=Words("", _("Retry the operation from its detail page.")),
        soldier=Words(
            _("The portal could not finish your last request."),
            _("Try again later, or ask staff if it keeps failing."),
        ),
    ),
    StatusKey.GONE: StatusSpec(
        pgettext_lazy("vm status", "Gone"),
        Tone.PURPLE,
        staff=Words(_("The VM was deleted outside the portal."), _("See the drift page.")),
        soldier=Words(
            _("The VM was deleted outside the portal."),
            _("Request a new VM if you still need one."),
        ),
    ),
    StatusKey.DELETED: StatusSpec(
        pgettext_lazy("vm status", "Deleted"),
        Tone.GREY,
        Words(_("The VM was deleted.")),
    ),
    StatusKey.UNKNOWN: StatusSpec(
        pgettext_lazy("vm status", "Unknown"),
        Tone.GREY,
        # The label and explanation show Nova's raw values: _unknown.
        staff=Words("", _("Sync it with the cloud and look at it there.")),
        soldier=Words("", _("Ask staff to look at it.")),
    ),
}

# (key, label) in the order of the first-match rules: the filter options of the console.
STATUS_KEYS: list[tuple[StatusKey, str | Promise]] = [
    (key, spec.label) for key, spec in STATUSES.items()
]
# The keys of a VM between states: pages showing one keep polling.
TRANSITIONAL_KEYS = frozenset(key for key, spec in STATUSES.items() if spec.transitional)
# The keys of a VM that needs a person: the status page never calls a fleet with one "settled".
ATTENTION_KEYS = frozenset(
    {
        StatusKey.NOT_SEEN,
        StatusKey.CRASHED,
        StatusKey.PAUSED,
        StatusKey.SUSPENDED,
        StatusKey.ERROR,
        StatusKey.FAILED,
        StatusKey.GONE,
    }
)

# What a pending action shows once Nova's own states (checked first) say nothing more specific.
_ACTION_KEYS = {
    Instance.Action.LAUNCH: StatusKey.BUILDING,
    Instance.Action.DELETE: StatusKey.DELETING,
    Instance.Action.START: StatusKey.STARTING,
    Instance.Action.STOP: StatusKey.STOPPING,
    Instance.Action.REBOOT_SOFT: StatusKey.RESTARTING,
    Instance.Action.REBOOT_HARD: StatusKey.RESTARTING,
}
# Keys whose words already carry the portal's last error: no separate "problem" line.
_SHOWS_OWN_ERROR = frozenset({StatusKey.ERROR, StatusKey.FAILED, StatusKey.QUEUED})


# Every field of an ``Instance`` that ``merged_status`` reads, its wording included, for pages
# that load only the columns they show (``QuerySet.only``): a field missing here would cost
# those pages one query per row (tests/console/test_console_cost.py counts them).
MERGED_STATUS_FIELDS = (
    "status",
    "vm_state",
    "task_state",
    "power_state",
    "pending_action",
    "pending_operation__kind",
    "pending_operation__state",
    "pending_operation__step",
    "pending_operation__started_at",
    "deleted_outside_portal",
    "last_error",
    "fault",
    "created_at",
)


def build_slow_after() -> timedelta:
    """How long a build may take before people are told it is slower than usual."""
    return timedelta(seconds=float(settings.STATUS_BUILD_SLOW_SECONDS))


def _pending(instance: Any) -> tuple[str, Any]:
    """The pending action and its operation (None when not loaded or not set)."""
    action = str(getattr(instance, "pending_action", "") or "")
    operation = getattr(instance, "pending_operation", None) if action else None
    return action, operation


def _status_key(instance: Any) -> StatusKey:
    """The decision: the first rule that matches wins (the unit tests' TABLE pins each one)."""
    status = str(instance.status or "")
    task = str(instance.task_state or "")
    power = instance.power_state
    action, operation = _pending(instance)
    if action and operation is not None and operation.state == Operation.State.QUEUED:
        return StatusKey.QUEUED
    # A pending delete wins over everything Nova says below (even DELETED or BUILD): the
    # ``_ACTION_KEYS`` entry further down would come too late for those.
    if action == Instance.Action.DELETE or task == "deleting":
        return StatusKey.DELETING
    if instance.deleted_outside_portal:
        return StatusKey.GONE
    if status == ServerStatus.DELETED:
        return StatusKey.DELETED
    # A launch the cloud has not reported on yet is building, whatever task state is left over.
    if status == ServerStatus.BUILD or (action == Instance.Action.LAUNCH and not status):
        return StatusKey.BUILDING
    if status in (ServerStatus.REBOOT, ServerStatus.HARD_REBOOT) or task.startswith("reboot"):
        return StatusKey.RESTARTING
    if task == "powering-on":
        return StatusKey.STARTING
    if task == "powering-off":
        return StatusKey.STOPPING
    if action in _ACTION_KEYS:
        return _ACTION_KEYS[Instance.Action(action)]
    if status == ServerStatus.ERROR:
        return StatusKey.ERROR
    if status == ServerStatus.ACTIVE:
        if power == PowerState.RUNNING:
            return StatusKey.RUNNING
        if power == PowerState.SHUTDOWN:
            return StatusKey.GUEST_OFF
        if power == PowerState.NOSTATE:
            # Not a guest that shut down: the hypervisor has no such domain at all.
            return StatusKey.NOT_SEEN
        if power == PowerState.CRASHED:
            return StatusKey.CRASHED
        if power == PowerState.PAUSED:
            return StatusKey.PAUSED
        if power == PowerState.SUSPENDED:
            return StatusKey.SUSPENDED
        return StatusKey.UNKNOWN
    if status == ServerStatus.SHUTOFF:
        return StatusKey.STOPPED
    if status == ServerStatus.PAUSED:
        return StatusKey.PAUSED
    if status == ServerStatus.SUSPENDED:
        return StatusKey.SUSPENDED
    if not status and instance.last_error:
        return StatusKey.FAILED
    return StatusKey.UNKNOWN


def _raw_values(instance: Any) -> str:
    return gettext("status %(status)s, VM state %(vm_state)s, task %(task)s, power %(power)s") % {
        "status": instance.status or "-",
        "vm_state": instance.vm_state or "-",
        "task": instance.task_state or "-",
        "power": "-" if instance.power_state is None else instance.power_state,
    }


# --- hooks: the words that depend on the VM itself --------------------------------------------
# Each takes the status as the table words it and returns it completed; ``staff`` says who reads.
Hook = Callable[[MergedStatus, Any, bool, datetime], MergedStatus]


def _building_text(shown: MergedStatus, instance: Any, staff: bool, now: datetime) -> MergedStatus:
    """Which step the build is at, and whether it is taking longer than usual."""
    _action, operation = _pending(instance)
    # A building VM is a launch at one of its steps; the launch kind declares their words.
    kind = str(getattr(operation, "kind", "") or Operation.Kind.LAUNCH)
    words = step_label(kind, str(getattr(operation, "step", "") or ""))
    if words:
        shown = replace(
            shown, explanation=gettext("The VM is being created: %(step)s.") % {"step": words}
        )
    started = getattr(operation, "started_at", None) or instance.created_at
    if started is not None and now - started > build_slow_after():
        shown = replace(shown, next_step=str(_SLOW_BUILD))
    return shown


def _error(shown: MergedStatus, instance: Any, staff: bool, now: datetime) -> MergedStatus:
    """Staff also read Nova's fault and the portal's last error."""
    if not staff:
        return shown
    parts = [shown.explanation]
    fault = str(getattr(instance, "fault", "") or "")
    if fault:
        parts.append(gettext("Cloud fault: %(fault)s") % {"fault": fault})
    if instance.last_error:
        parts.append(instance.last_error)
    return replace(shown, explanation=" ".join(parts))


def _failed(shown: MergedStatus, instance: Any, staff: bool, now: datetime) -> MergedStatus:
    """Staff read the portal's error itself."""
    return replace(shown, explanation=instance.last_error) if staff else shown


def _unknown(shown: MergedStatus, instance: Any, staff: bool, now: datetime) -> MergedStatus:
    """A state the portal has no words for: Nova's raw values, never a guess."""
    return replace(
        shown,
        label=gettext("Unknown (%(raw)s)") % {"raw": instance.status or "-"},
        explanation=_raw_values(instance),
    )


_HOOKS: dict[StatusKey, Hook] = {
    StatusKey.BUILDING: _building_text,
    StatusKey.ERROR: _error,
    StatusKey.FAILED: _failed,
    StatusKey.UNKNOWN: _unknown,
}


def _problem(instance: Any, key: StatusKey, staff: bool) -> str:
    """The portal's last failed action, when the status itself does not already say it."""
    if not instance.last_error or key in _SHOWS_OWN_ERROR:
        return ""
    if staff:
        return gettext("The last action failed: %(error)s") % {"error": instance.last_error}
    return gettext("Your last request could not be finished. You can try again.")


def merged_status(
    instance: Any, *, audience: Audience = Audience.STAFF, now: datetime | None = None
) -> MergedStatus:
    """The one status of a VM mirror (an ``Instance``), for staff or for its soldier."""
    key = _status_key(instance)
    spec = STATUSES[key]
    words = spec.words(audience)
    staff = audience is Audience.STAFF
    shown = MergedStatus(
        key=key,
        label=str(spec.label),
        tone=spec.tone,
        explanation=str(words.explanation),
        next_step=str(words.next_step),
        transitional=spec.transitional,
        problem=_problem(instance, key, staff),
    )
    hook = _HOOKS.get(key)
    return hook(shown, instance, staff, now or timezone.now()) if hook else shown


# --- times ----------------------------------------------------------------------------------


def to_seoul(value: datetime) -> datetime:
    if timezone.is_naive(value):
        value = value.replace(tzinfo=UTC)
    return value.astimezone(SEOUL)


def format_kst(value: datetime | None, *, seconds: bool = False) -> str:
    """``2020-10-16 15:26 KST``; an empty string for no time."""
    if value is None:
        return ""
    return to_seoul(value).strftime("%Y-%m-%d %H:%M:%S KST" if seconds else "%Y-%m-%d %H:%M KST")


def format_utc(value: datetime) -> str:
    if timezone.is_naive(value):
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso_utc(value: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` (the ``datetime`` attribute of ``<time>``, exports)."""
    if timezone.is_naive(value):
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def time_tooltip(value: datetime, original: str = "") -> str:
    """What the tooltip of a shown time says: the cloud's own string, and UTC."""
    parts = []
    if original:
        parts.append(gettext("original: %(value)s") % {"value": original})
    parts.append(format_utc(value))
    return " · ".join(parts)


def format_duration(delta: timedelta) -> str:
    """``3 days 4 hours`` / ``2 hours 5 minutes`` / ``4 minutes``: two units at most."""
    total = max(0, int(delta.total_seconds()))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts: list[str] = []
    if days:
        parts.append(ngettext("%(n)d day", "%(n)d days", days) % {"n": days})
    if hours:
        parts.append(ngettext("%(n)d hour", "%(n)d hours", hours) % {"n": hours})
    if not days and (minutes or not parts):
        parts.append(ngettext("%(n)d minute", "%(n)d minutes", minutes) % {"n": minutes})
    return " ".join(parts)


def uptime(instance: Any, *, now: datetime | None = None) -> timedelta | None:
    """How long the VM has been running since it was last started (None when not running)."""
    since = getattr(instance, "running_since", None)
    if since is None or instance.power_state != PowerState.RUNNING:
        return None
    return (now or timezone.now()) - since


def d_day(days: int | None) -> str:
    """``D-3`` / ``D-day`` for a number of days left."""
    if days is None:
        return ""
    if days == 0:
        return pgettext("discharge countdown", "D-day")
    return f"D-{days}" if days > 0 else f"D+{-days}"
