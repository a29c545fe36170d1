"""One answer to "what state is this VM in?", shared by the staff console and the soldier pages.

Nova reports four fields that disagree in time (``status``, ``vm_state``, ``task_state``,
``power_state``, the last refreshed by a periodic sync up to ten minutes late) and the portal adds
its own pending action and last error. ``merged_status`` turns all of it into one label, a tone,
an explanation and a next step. It is pure: it reads attributes of an ``Instance`` (and of its
``pending_operation``, which callers should ``select_related``) and makes no query of its own.

Time helpers live here too: every time is shown in Asia/Seoul with Nova's original string and
the UTC time in a tooltip.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext, ngettext, pgettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from portal.openstack.types import PowerState, ServerStatus

SEOUL = ZoneInfo("Asia/Seoul")

POWER_STATE_LABELS = {
    PowerState.NOSTATE: pgettext_lazy("power state", "No state"),
    PowerState.RUNNING: pgettext_lazy("power state", "Running"),
    PowerState.PAUSED: pgettext_lazy("power state", "Paused"),
    PowerState.SHUTDOWN: pgettext_lazy("power state", "Shutdown"),
    PowerState.CRASHED: pgettext_lazy("power state", "Crashed"),
    PowerState.SUSPENDED: pgettext_lazy("power state", "Suspended"),
}
# The model field's choices: Nova's numbers with their names; other numbers still display.
POWER_STATE_CHOICES = [(state.value, label) for state, label in POWER_STATE_LABELS.items()]


def power_state_label(value: int | None) -> str:
    """Nova's power state number as words; an unexpected number is shown, never dropped."""
    if value is None:
        return gettext("Unknown")
    try:
        return str(POWER_STATE_LABELS[PowerState(value)])
    except (ValueError, KeyError):
        return gettext("Unknown (%(code)s)") % {"code": value}


class Tone(enum.StrEnum):
    """The colour family of a status; the label text always carries the meaning too."""

    BLUE = "blue"  # something is happening
    GREEN = "green"  # running
    AMBER = "amber"  # needs a look, not broken
    RED = "red"  # broken or failed
    GREY = "grey"  # off, gone or unknown


class Audience(enum.StrEnum):
    STAFF = "staff"
    SOLDIER = "soldier"


@dataclass(frozen=True)
class MergedStatus:
    """What people read about one VM."""

    key: str  # stable identifier: "running", "building", ... (filters, tests, CSS)
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


# Keys, in the order of the first-match rules below (also the filter options of the console).
STATUS_KEYS: list[tuple[str, Any]] = [
    ("queued", pgettext_lazy("vm status", "Queued")),
    ("building", pgettext_lazy("vm status", "Building")),
    ("restarting", pgettext_lazy("vm status", "Restarting")),
    ("starting", pgettext_lazy("vm status", "Starting")),
    ("stopping", pgettext_lazy("vm status", "Stopping")),
    ("deleting", pgettext_lazy("vm status", "Deleting")),
    ("running", pgettext_lazy("vm status", "Running")),
    ("guest_off", pgettext_lazy("vm status", "Off (guest shut down)")),
    ("crashed", pgettext_lazy("vm status", "Crashed")),
    ("stopped", pgettext_lazy("vm status", "Stopped")),
    ("paused", pgettext_lazy("vm status", "Paused")),
    ("suspended", pgettext_lazy("vm status", "Suspended")),
    ("error", pgettext_lazy("vm status", "Error")),
    ("failed", pgettext_lazy("vm status", "Action failed")),
    ("gone", pgettext_lazy("vm status", "Gone")),
    ("deleted", pgettext_lazy("vm status", "Deleted")),
    ("unknown", pgettext_lazy("vm status", "Unknown")),
]
_LABELS = dict(STATUS_KEYS)

_ACTION_KEYS = {
    "launch": "building",
    "delete": "deleting",
    "start": "starting",
    "stop": "stopping",
    "reboot_soft": "restarting",
    "reboot_hard": "restarting",
}
_TONE = {
    "queued": Tone.BLUE,
    "building": Tone.BLUE,
    "restarting": Tone.BLUE,
    "starting": Tone.BLUE,
    "stopping": Tone.BLUE,
    "deleting": Tone.BLUE,
    "running": Tone.GREEN,
    "guest_off": Tone.AMBER,
    "crashed": Tone.RED,
    "stopped": Tone.GREY,
    "paused": Tone.AMBER,
    "suspended": Tone.AMBER,
    "error": Tone.RED,
    "failed": Tone.RED,
    "gone": Tone.GREY,
    "deleted": Tone.GREY,
    "unknown": Tone.GREY,
}
# The keys of a VM between states: pages showing one keep polling.
TRANSITIONAL_KEYS = frozenset(
    {"queued", "building", "restarting", "starting", "stopping", "deleting"}
)
_STEP_WORDS = {
    "onboard": _("preparing the cloud account"),
    "resolve": _("choosing the network"),
    "server": _("asking the cloud for the VM"),
    "wait_active": _("the cloud is building the VM"),
    "port": _("finding the VM's network port"),
    "floating_ip": _("attaching a public address"),
    "sync": _("reading the final state"),
    "release_floating_ips": _("releasing the public address"),
    "delete_server": _("deleting the VM"),
    "wait_gone": _("waiting for the cloud to remove the VM"),
    "terminated": _("recording the deletion"),
    "power_action": _("sending the request to the cloud"),
    "power_wait": _("waiting for the cloud"),
}


def build_slow_after() -> timedelta:
    """How long a build may take before people are told it is slower than usual."""
    return timedelta(seconds=float(getattr(settings, "STATUS_BUILD_SLOW_SECONDS", 300)))


def _pending(instance: Any) -> tuple[str, Any]:
    """The pending action and its operation (None when not loaded or not set)."""
    action = str(getattr(instance, "pending_action", "") or "")
    operation = getattr(instance, "pending_operation", None) if action else None
    return action, operation


def _status_key(instance: Any) -> str:
    status = str(instance.status or "")
    task = str(instance.task_state or "")
    power = instance.power_state
    action, operation = _pending(instance)
    if action and operation is not None and operation.state == "queued":
        return "queued"
    if action == "delete" or task == "deleting":
        return "deleting"
    if instance.deleted_outside_portal:
        return "gone"
    if status == ServerStatus.DELETED:
        return "deleted"
    if status == ServerStatus.BUILD or (action == "launch" and not status):
        return "building"
    if status in (ServerStatus.REBOOT, ServerStatus.HARD_REBOOT) or task.startswith("reboot"):
        return "restarting"
    if task == "powering-on":
        return "starting"
    if task == "powering-off":
        return "stopping"
    if action in _ACTION_KEYS:
        return _ACTION_KEYS[action]
    if status == ServerStatus.ERROR:
        return "error"
    if status == ServerStatus.ACTIVE:
        if power == PowerState.RUNNING:
            return "running"
        if power in (PowerState.SHUTDOWN, PowerState.NOSTATE):
            return "guest_off"
        if power == PowerState.CRASHED:
            return "crashed"
        if power == PowerState.PAUSED:
            return "paused"
        if power == PowerState.SUSPENDED:
            return "suspended"
        return "unknown"
    if status == ServerStatus.SHUTOFF:
        return "stopped"
    if status == ServerStatus.PAUSED:
        return "paused"
    if status == ServerStatus.SUSPENDED:
        return "suspended"
    if not status and instance.last_error:
        return "failed"
    return "unknown"


def _raw_values(instance: Any) -> str:
    return gettext("status %(status)s, VM state %(vm_state)s, task %(task)s, power %(power)s") % {
        "status": instance.status or "-",
        "vm_state": instance.vm_state or "-",
        "task": instance.task_state or "-",
        "power": "-" if instance.power_state is None else instance.power_state,
    }


def _building_text(instance: Any, now: datetime) -> tuple[str, str]:
    _action, operation = _pending(instance)
    step = str(getattr(operation, "step", "") or "") if operation is not None else ""
    words = _STEP_WORDS.get(step)
    explanation = (
        gettext("The VM is being created: %(step)s.") % {"step": words}
        if words
        else gettext("The VM is being created.")
    )
    started = getattr(operation, "started_at", None) or instance.created_at
    if started is not None and now - started > build_slow_after():
        return explanation, gettext(
            "This is taking longer than usual. If it does not finish soon, staff can look at it."
        )
    return explanation, gettext("Nothing to do: this page updates by itself.")


def merged_status(
    instance: Any, *, audience: Audience = Audience.STAFF, now: datetime | None = None
) -> MergedStatus:
    """The one status of a VM mirror (an ``Instance``), for staff or for its soldier."""
    now = now or timezone.now()
    key = _status_key(instance)
    staff = audience is Audience.STAFF
    explanation = ""
    next_step = ""
    label = str(_LABELS[key])
    if key == "queued":
        explanation = gettext("Your request is queued and will reach the cloud shortly.")
        next_step = gettext("Nothing to do: this page updates by itself.")
    elif key == "building":
        explanation, next_step = _building_text(instance, now)
    elif key == "restarting":
        explanation = gettext("The VM is restarting.")
    elif key == "starting":
        explanation = gettext("The VM is starting.")
    elif key == "stopping":
        explanation = gettext("The VM is shutting down.")
    elif key == "deleting":
        explanation = gettext("The VM is being deleted; its public address is released first.")
    elif key == "running":
        explanation = gettext("The VM is running.")
        next_step = (
            gettext("Connect with the SSH command below.")
            if not staff
            else gettext("Nothing to do.")
        )
    elif key == "guest_off":
        explanation = gettext(
            "The operating system inside the VM shut itself down; the cloud has not noticed yet."
        )
        next_step = gettext("Start it.")
    elif key == "crashed":
        explanation = gettext("The VM's operating system crashed.")
        next_step = gettext("Restart it with a hard reboot.")
    elif key == "stopped":
        explanation = gettext("The VM is switched off.")
        next_step = gettext("Start it.")
    elif key in ("paused", "suspended"):
        explanation = gettext("The VM was paused or suspended in the cloud.")
        next_step = (
            gettext("Resume it in the cloud, then sync.")
            if staff
            else gettext("Only staff can resume it; ask them.")
        )
    elif key == "error":
        fault = str(getattr(instance, "fault", "") or "")
        parts = [gettext("The cloud reports an error for this VM.")]
        if staff:
            if fault:
                parts.append(gettext("Cloud fault: %(fault)s") % {"fault": fault})
            if instance.last_error:
                parts.append(instance.last_error)
            next_step = gettext("Retry the failed operation, or delete the VM.")
        else:
            next_step = gettext("Staff have been notified and will fix or replace it.")
        explanation = " ".join(parts)
    elif key == "failed":
        explanation = (
            instance.last_error
            if staff
            else gettext("The portal could not finish your last request.")
        )
        next_step = (
            gettext("Retry the operation from its detail page.")
            if staff
            else gettext("Try again later, or ask staff if it keeps failing.")
        )
    elif key == "gone":
        explanation = gettext("The VM was deleted outside the portal.")
        next_step = (
            gettext("See the drift page.")
            if staff
            else gettext("Request a new VM if you still need one.")
        )
    elif key == "deleted":
        explanation = gettext("The VM was deleted.")
    else:
        label = gettext("Unknown (%(raw)s)") % {"raw": instance.status or "-"}
        explanation = _raw_values(instance)
        next_step = (
            gettext("Sync it with the cloud and look at it there.")
            if staff
            else gettext("Ask staff to look at it.")
        )
    problem = ""
    if instance.last_error and key not in ("error", "failed", "queued"):
        problem = (
            gettext("The last action failed: %(error)s") % {"error": instance.last_error}
            if staff
            else gettext("Your last request could not be finished. You can try again.")
        )
    return MergedStatus(
        key=key,
        label=label,
        tone=_TONE[key],
        explanation=explanation,
        next_step=next_step,
        transitional=key in TRANSITIONAL_KEYS,
        problem=problem,
    )


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
    if hours and len(parts) < 2:
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
