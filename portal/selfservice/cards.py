"""What a soldier's VM card shows, read from the mirror only (never the cloud).

A card costs the same few queries whatever else the database holds: the VM with its pending
operation (one join) and its last operation.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from portal.models import Instance, Operation, Soldier
from portal.openstack.types import ServerStatus
from portal.operations import registry
from portal.services.selfservice import soldier_delete_allowed
from portal.status import (
    Audience,
    MergedStatus,
    StatusKey,
    build_slow_after,
    merged_status,
    uptime,
)


@dataclass(frozen=True)
class Action:
    """One thing the soldier can do to a VM: the URL slug, the button, the confirmation."""

    slug: str
    verb: Instance.Action
    label: Any
    question: Any
    consequence: Any
    danger: bool = False


ACTIONS: dict[str, Action] = {
    a.slug: a
    for a in (
        Action(
            "start",
            Instance.Action.START,
            _("Start"),
            _("Start this VM?"),
            _("The VM boots; it is reachable again in a minute or two."),
        ),
        Action(
            "stop",
            Instance.Action.STOP,
            _("Stop"),
            _("Stop this VM?"),
            _(
                "The VM shuts down. Whatever is not saved inside it is lost; files on its disk "
                "are kept."
            ),
        ),
        Action(
            "reboot",
            Instance.Action.REBOOT_SOFT,
            _("Restart"),
            _("Restart this VM?"),
            _("The operating system restarts normally; connections drop for a minute."),
        ),
        Action(
            "hard-reboot",
            Instance.Action.REBOOT_HARD,
            _("Hard restart"),
            _("Hard-restart this VM?"),
            _(
                "Like pulling the plug and switching it on again: for a VM that crashed or does "
                "not answer. Unsaved work inside it is lost."
            ),
            danger=True,
        ),
        Action(
            "delete",
            Instance.Action.DELETE,
            _("Delete"),
            _("Delete this VM for good?"),
            _(
                "The VM, its disk and its public address are deleted. This cannot be undone; "
                "you can request a new VM afterwards."
            ),
            danger=True,
        ),
    )
}

# The last action on a card, named as a deed rather than as a state ("Stop", not "Stopping").
_ACTION_NAMES: dict[str, Any] = {
    Instance.Action.LAUNCH: _("Create the VM"),
    **{str(a.verb): a.label for a in ACTIONS.values()},
}

# By merged status: what the soldier is offered (the services refuse anything else anyway).
_OFFERED = {
    StatusKey.RUNNING: ["stop", "reboot"],
    StatusKey.GUEST_OFF: ["start"],  # a hard reboot underneath (see services.soldier_vm_power)
    StatusKey.CRASHED: ["hard-reboot"],
    StatusKey.STOPPED: ["start"],
}
_DELETABLE = {
    StatusKey.RUNNING,
    StatusKey.GUEST_OFF,
    StatusKey.CRASHED,
    StatusKey.STOPPED,
    StatusKey.PAUSED,
    StatusKey.SUSPENDED,
    StatusKey.ERROR,
    StatusKey.FAILED,
    StatusKey.UNKNOWN,
}
# No SSH command while the VM is going or gone.
_NO_SSH = {StatusKey.DELETED, StatusKey.GONE, StatusKey.DELETING}

# Login names of the usual cloud images, by what their image name starts with.
_IMAGE_USERS = (
    ("ubuntu", "ubuntu"),
    ("debian", "debian"),
    ("cirros", "cirros"),
    ("centos", "centos"),
    ("rocky", "rocky"),
    ("alma", "almalinux"),
    ("fedora", "fedora"),
    ("opensuse", "opensuse"),
    ("alpine", "alpine"),
)


def ssh_user(image_name: str) -> str:
    name = image_name.lower()
    for prefix, user in _IMAGE_USERS:
        if name.startswith(prefix):
            return user
    return str(settings.SELFSERVICE_SSH_USER)


@dataclass
class Card:
    instance: Instance
    status: MergedStatus
    last_operation: Operation | None
    actions: list[Action] = field(default_factory=list)

    @property
    def dom_id(self) -> str:
        return f"vm-{self.instance.pk}"

    @property
    def poll(self) -> bool:
        """Whether the card asks for news often: while something is under way."""
        return self.status.transitional

    @property
    def watch(self) -> bool:
        """Whether the card asks for news at all: every VM that still exists may change by
        someone else's hand (staff, a schedule, the cloud), and an open page should show it."""
        return self.status.key != StatusKey.DELETED

    @property
    def poll_seconds(self) -> int:
        """How often the card asks: every 2 s while under way, else CARD_IDLE_POLL_SECONDS
        (an idle card's "nothing new" costs about a bare request: portal/selfservice/poll.py)."""
        return 2 if self.poll else int(settings.CARD_IDLE_POLL_SECONDS)

    # What the templates ask of the status, so they compare no status key themselves.
    @property
    def running(self) -> bool:
        return self.status.key == StatusKey.RUNNING

    @property
    def not_started_yet(self) -> bool:
        return self.status.key in (StatusKey.BUILDING, StatusKey.QUEUED)

    @property
    def guest_off(self) -> bool:
        """The guest shut itself down while Nova still counts the VM as on."""
        return self.status.key == StatusKey.GUEST_OFF

    @property
    def ssh_command(self) -> str:
        address = self.instance.floating_ip
        if not address or self.status.key in _NO_SSH:
            return ""
        return f"ssh {ssh_user(self.instance.image_name)}@{address}"

    @functools.cached_property
    def progress(self) -> tuple[int, int] | None:
        """(steps done, steps) of the operation under way, for ``<progress>``."""
        op = self.instance.pending_operation if self.instance.pending_action else None
        kind = registry.find(op.kind) if op is not None else None
        if op is None or kind is None:
            return None
        steps = kind.step_names
        done = steps.index(op.step) if op.step in steps else 0
        return done, len(steps)

    @property
    def flavor_size(self) -> list[str]:
        """``["2 vCPUs", "4 GiB RAM", "20 GiB disk"]``, from what the server reported."""
        i = self.instance
        parts: list[str] = []
        if i.flavor_vcpus is not None:
            parts.append(
                ngettext("%(n)d vCPU", "%(n)d vCPUs", i.flavor_vcpus) % {"n": i.flavor_vcpus}
            )
        if i.flavor_ram_mib is not None:
            if i.flavor_ram_mib % 1024 == 0:
                parts.append(gettext("%(n)d GiB RAM") % {"n": i.flavor_ram_mib // 1024})
            else:
                parts.append(gettext("%(n)d MiB RAM") % {"n": i.flavor_ram_mib})
        if i.flavor_disk_gib is not None:
            parts.append(gettext("%(n)d GiB disk") % {"n": i.flavor_disk_gib})
        return parts

    @property
    def last_operation_text(self) -> str:
        """The last operation's message, with Nova's own fault text (the cloud's English, for
        staff) replaced by the portal's words in the soldier's language."""
        op = self.last_operation
        if op is None:
            return ""
        params = op.message_params if isinstance(op.message_params, dict) else {}
        if "fault" not in params:
            return op.message_text
        try:
            return gettext(op.message) % {
                **params,
                "fault": gettext("staff can see the reason the cloud gave"),
            }
        except (KeyError, ValueError, TypeError):
            return gettext("The portal could not finish your last request.")

    @property
    def last_action_label(self) -> str:
        op = self.last_operation
        if op is None:
            return ""
        action = op.params.get("action") if isinstance(op.params, dict) else None
        # get_kind_display only when needed: it hashes every choice's lazy label (a poll's cost).
        name = _ACTION_NAMES.get(str(action))
        return str(name if name is not None else op.get_kind_display())

    @property
    def last_operation_state(self) -> str:
        """The last operation's state in words (the enum's label: cheaper than the display)."""
        op = self.last_operation
        if op is None:
            return ""
        try:
            return str(Operation.State(op.state).label)
        except ValueError:
            return str(op.state)

    def words_change_at(self, now: datetime) -> datetime | None:
        """When the card's words change with the clock alone (None: not before something is
        written): a build turns "slower than usual", an uptime ticks to its next minute."""
        instance = self.instance
        times: list[datetime] = []
        if self.status.key == StatusKey.BUILDING:
            # As portal.status._building_text decides it.
            op = instance.pending_operation if instance.pending_action else None
            started = getattr(op, "started_at", None) or instance.created_at
            if started is not None and now - started <= build_slow_after():
                times.append(started + build_slow_after())
        up = uptime(instance, now=now) if self.running and instance.running_since else None
        if up is not None:
            times.append(now + timedelta(seconds=60 - up.total_seconds() % 60))
        return min(times, default=None)


def _actions(status: MergedStatus) -> list[Action]:
    slugs = list(_OFFERED.get(status.key, []))
    if soldier_delete_allowed() and status.key in _DELETABLE:
        slugs.append("delete")
    return [ACTIONS[s] for s in slugs]


_LOOK_IT_UP: Any = object()


def card_for(instance: Instance, last_operation: Operation | None = _LOOK_IT_UP) -> Card:
    """One VM's card (``instance`` comes with ``select_related("pending_operation")``)."""
    if last_operation is _LOOK_IT_UP:
        last_operation = (
            instance.pending_operation
            if instance.pending_action and instance.pending_operation is not None
            else instance.operations.order_by("-created_at", "-pk").first()
        )
    status = merged_status(instance, audience=Audience.SOLDIER)
    return Card(
        instance=instance, status=status, last_operation=last_operation, actions=_actions(status)
    )


def shown_instances(soldier: Soldier) -> QuerySet[Instance]:
    """The VMs on the soldier's page: all but the deleted ones, oldest first."""
    return (
        soldier.instances.exclude(status=ServerStatus.DELETED)
        .select_related("pending_operation")
        .order_by("created_at", "pk")
    )


def cards_for(soldier: Soldier) -> list[Card]:
    """Every card of the page in two queries, however many VMs the soldier has."""
    last = Operation.objects.filter(instance=OuterRef("pk")).order_by("-created_at", "-pk")
    instances = list(
        shown_instances(soldier).annotate(last_operation_id=Subquery(last.values("pk")[:1]))
    )
    ids = [i.last_operation_id for i in instances if i.last_operation_id]
    operations = Operation.objects.in_bulk(ids) if ids else {}
    return [card_for(i, operations.get(i.last_operation_id)) for i in instances]
