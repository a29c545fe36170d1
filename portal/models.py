"""The portal's database: people, intent and history, plus mirrors of what the cloud holds.

The cloud is the truth about resources; these rows are refreshed by every operation and by the
reconciler. Times are stored aware in UTC; templates show them in Asia/Seoul.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from portal import pollcache

# PowerState is re-exported: models, services and tests share the client's one enum.
from portal.openstack.types import PowerState as PowerState
from portal.openstack.types import ServerStatus
from portal.validation import (
    dates_problem,
    validate_person_name,
    validate_service_number,
    validate_template_name,
    validate_username,
    validate_zone,
)

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


def seoul_today() -> date:
    """Today's date where the soldiers are: discharge dates are Korean calendar dates."""
    return timezone.localdate(timezone=timezone.get_default_timezone())


class _PollVersionedQuerySet(models.QuerySet[Any]):
    """Bulk writes that bypass the model signals still tell the pollers (``portal.pollcache``).

    ``update`` reads the ids it is about to touch first (one extra query): a conditional update
    matches rows a caller cannot name beforehand, and a missed one would keep a card "unchanged".
    """

    # Which column names the VM (Instance: its pk) or the user (Soldier: user_id) a row is about.
    _poll_field = "pk"

    def _poll_changed(self, ids: list[Any]) -> None:
        raise NotImplementedError

    def _poll_ids(self) -> list[Any]:
        rows = self._chain()  # type: ignore[attr-defined]
        rows.query.select_for_update = False
        return list(rows.order_by().values_list(self._poll_field, flat=True))

    def update(self, **kwargs: Any) -> int:
        ids = self._poll_ids()
        count = super().update(**kwargs)
        if count:
            moved = kwargs.get(self._poll_field) or kwargs.get(f"{self._poll_field}_id")
            self._poll_changed([*ids, getattr(moved, "pk", moved)])
        return count

    def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> int:
        objs = list(objs)
        count = super().bulk_update(objs, fields, batch_size=batch_size)
        self._poll_changed([_attr(o, self._poll_field) for o in objs])
        return count

    def bulk_create(self, objs: Any, *args: Any, **kwargs: Any) -> list[Any]:
        made = super().bulk_create(objs, *args, **kwargs)
        self._poll_changed([_attr(o, self._poll_field) for o in made])
        return made


def _attr(obj: Any, field: str) -> Any:
    return obj.pk if field == "pk" else getattr(obj, f"{field}_id", None)


class InstanceQuerySet(_PollVersionedQuerySet):
    def _poll_changed(self, ids: list[Any]) -> None:
        pollcache.vms_changed(ids)


class OperationVersionedQuerySet(_PollVersionedQuerySet):
    _poll_field = "instance"

    def _poll_changed(self, ids: list[Any]) -> None:
        pollcache.vms_changed(ids)


class SoldierVersionedQuerySet(_PollVersionedQuerySet):
    _poll_field = "user"

    def _poll_changed(self, ids: list[Any]) -> None:
        pollcache.users_changed(ids)


class SoldierQuerySet(SoldierVersionedQuerySet):
    def discharge_warning(self, *, today: date | None = None) -> SoldierQuerySet:
        """Soldiers in their last DISCHARGE_WARNING_DAYS days of cloud access (for staff lists)."""
        return self.discharge_within(days=settings.DISCHARGE_WARNING_DAYS, today=today)

    def discharge_within(self, *, days: int, today: date | None = None) -> SoldierQuerySet:
        """Soldiers whose cloud access (postponement included) ends within ``days`` days."""
        today = today or seoul_today()
        last = today + timedelta(days=days)
        postponed = Q(discharge_postponed_until__isnull=False) & Q(
            discharge_postponed_until__gt=F("discharge_on")
        )
        return self.exclude(state=Soldier.State.DISABLED).filter(
            (postponed & Q(discharge_postponed_until__range=(today, last)))
            | (~postponed & Q(discharge_on__range=(today, last)))
        )


class Soldier(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", _("Pending onboarding")
        ACTIVE = "active", _("Active")
        DISABLED = "disabled", _("Disabled")

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="soldier"
    )
    service_number = models.CharField(
        _("service number"), max_length=32, unique=True, validators=[validate_service_number]
    )
    name = models.CharField(_("name"), max_length=100, validators=[validate_person_name])
    unit = models.CharField(_("unit"), max_length=100, blank=True)
    enlisted_on = models.DateField(_("enlistment date"), null=True, blank=True)
    discharge_on = models.DateField(_("discharge date"), null=True, blank=True)
    # Staff may keep a soldier's cloud access past the discharge date (e.g. to hand over work).
    discharge_postponed_until = models.DateField(
        _("cloud access kept until"), null=True, blank=True
    )
    keystone_user_id = models.CharField(_("Keystone user id"), max_length=64, blank=True)
    keystone_user_name = models.CharField(
        _("Keystone user name"), max_length=255, unique=True, validators=[validate_username]
    )
    state = models.CharField(
        _("state"), max_length=16, choices=State.choices, default=State.PENDING
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = SoldierQuerySet.as_manager()

    class Meta:
        verbose_name = _("soldier")
        verbose_name_plural = _("soldiers")
        ordering = ["service_number"]
        constraints = [
            # Keystone (on MySQL) treats "Kim" and "kim" as one name: so does the portal.
            models.UniqueConstraint(
                Lower("keystone_user_name"), name="one_soldier_per_keystone_name_in_any_case"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.service_number})"

    def clean(self) -> None:
        problem = dates_problem(self.enlisted_on, self.discharge_on)
        if problem is not None:
            raise ValidationError({"discharge_on": str(problem)})

    @property
    def effective_discharge_on(self) -> date | None:
        """The day cloud access ends: the discharge date, or the later date staff postponed to."""
        if self.discharge_postponed_until and (
            self.discharge_on is None or self.discharge_postponed_until > self.discharge_on
        ):
            return self.discharge_postponed_until
        return self.discharge_on

    @property
    def days_until_discharge(self) -> int | None:
        end = self.effective_discharge_on
        return None if end is None else (end - seoul_today()).days

    @property
    def discharge_warning(self) -> bool:
        """True in the last DISCHARGE_WARNING_DAYS days before access ends (pages show it)."""
        days = self.days_until_discharge
        return (
            self.state != self.State.DISABLED
            and days is not None
            and 0 <= days <= settings.DISCHARGE_WARNING_DAYS
        )

    @property
    def discharge_due(self) -> bool:
        """Access ends at the start of the day after the effective discharge date."""
        days = self.days_until_discharge
        return self.state != self.State.DISABLED and days is not None and days < 0


class Project(models.Model):
    """A soldier's Keystone project; every VM of the soldier lives in it."""

    soldier = models.OneToOneField(Soldier, on_delete=models.PROTECT, related_name="project")
    keystone_id = models.CharField(_("Keystone project id"), max_length=64, blank=True)
    # Keystone refuses project names over 64 characters.
    name = models.CharField(_("Keystone project name"), max_length=64, unique=True)
    # The network this project's VMs are attached to (shared, or the portal-owned one below).
    network_id = models.CharField(_("network id"), max_length=64, blank=True)
    roles_granted = models.BooleanField(_("roles granted"), default=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("project")
        verbose_name_plural = _("projects")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ProjectNetwork(models.Model):
    """Network, subnet, router and router interface the portal created for one project.

    Only what is recorded here is ever torn down; an empty id means "not created by the portal".
    """

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="own_network")
    network_id = models.CharField(_("network id"), max_length=64, blank=True)
    subnet_id = models.CharField(_("subnet id"), max_length=64, blank=True)
    router_id = models.CharField(_("router id"), max_length=64, blank=True)
    interface_attached = models.BooleanField(_("router interface attached"), default=False)
    removed_at = models.DateTimeField(_("removed"), null=True, blank=True)

    class Meta:
        verbose_name = _("portal-owned project network")
        verbose_name_plural = _("portal-owned project networks")

    def __str__(self) -> str:
        return f"{self.project.name} network"


class VmTemplate(models.Model):
    """What a soldier may ask for. The security group is a name resolved to an id per project."""

    name = models.CharField(
        _("name"), max_length=100, unique=True, validators=[validate_template_name]
    )
    description = models.TextField(_("description"), blank=True)
    image_id = models.CharField(_("image id"), max_length=64)
    image_name = models.CharField(_("image name"), max_length=255, blank=True)
    flavor_id = models.CharField(_("flavor id"), max_length=64)
    flavor_name = models.CharField(_("flavor name"), max_length=255, blank=True)
    # Empty: the soldier project's network (shared or portal-owned).
    network_id = models.CharField(_("network id"), max_length=64, blank=True)
    security_group = models.CharField(_("security group name"), max_length=255, default="default")
    availability_zone = models.CharField(
        _("availability zone"), max_length=255, blank=True, validators=[validate_zone]
    )
    is_active = models.BooleanField(_("offered to soldiers"), default=True)

    class Meta:
        verbose_name = _("VM template")
        verbose_name_plural = _("VM templates")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


# One enum per concept: the client's typed statuses, with the labels people read.
SERVER_STATUS_CHOICES = [(s.value, s.value) for s in ServerStatus]


class Instance(models.Model):
    """A soldier VM: the portal's intent plus a mirror of the Nova server."""

    class Action(models.TextChoices):
        LAUNCH = "launch", _("Launching")
        DELETE = "delete", _("Deleting")
        START = "start", _("Starting")
        STOP = "stop", _("Stopping")
        REBOOT_SOFT = "reboot_soft", _("Rebooting")
        REBOOT_HARD = "reboot_hard", _("Hard rebooting")

    # Stamped into the server's metadata so a retried create finds its server.
    request_tag = models.UUIDField(_("request tag"), default=uuid.uuid4, unique=True)
    server_id = models.CharField(_("server id"), max_length=64, null=True, blank=True, unique=True)
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="instances")
    owner = models.ForeignKey(Soldier, on_delete=models.PROTECT, related_name="instances")
    name = models.CharField(_("name"), max_length=255)
    template = models.ForeignKey(
        VmTemplate, on_delete=models.SET_NULL, null=True, blank=True, related_name="instances"
    )
    image_id = models.CharField(_("image id"), max_length=64, blank=True)
    image_name = models.CharField(_("image"), max_length=255, blank=True)
    flavor_id = models.CharField(_("flavor id"), max_length=64, blank=True)
    flavor_name = models.CharField(_("flavor"), max_length=255, blank=True)
    # The flavor's size as the server reports it (compute 2.47 embeds it), for the soldier's card.
    flavor_vcpus = models.PositiveIntegerField(_("vCPUs"), null=True, blank=True)
    flavor_ram_mib = models.PositiveIntegerField(_("RAM (MiB)"), null=True, blank=True)
    flavor_disk_gib = models.PositiveIntegerField(_("disk (GiB)"), null=True, blank=True)
    # The Nova key pair the server is created with: the portal user's copy of the soldier's key
    # (Nova looks key_name up among the key pairs of the user who creates the server).
    key_name = models.CharField(_("key pair"), max_length=255, blank=True)
    network_id = models.CharField(_("network id"), max_length=64, blank=True)
    network_name = models.CharField(_("network"), max_length=255, blank=True)
    security_group_id = models.CharField(_("security group id"), max_length=64, blank=True)
    port_id = models.CharField(_("port id"), max_length=64, blank=True)
    status = models.CharField(_("status"), max_length=32, choices=SERVER_STATUS_CHOICES, blank=True)
    vm_state = models.CharField(_("VM state"), max_length=32, blank=True)
    task_state = models.CharField(_("task state"), max_length=64, blank=True)
    power_state = models.IntegerField(
        _("power state"), choices=POWER_STATE_CHOICES, null=True, blank=True
    )
    launched_at = models.DateTimeField(_("launched"), null=True, blank=True)
    terminated_at = models.DateTimeField(_("terminated"), null=True, blank=True)
    # Nova's strings as sent (``launched_at`` has no offset), shown beside the KST time.
    launched_at_raw = models.CharField(_("launched (as sent)"), max_length=40, blank=True)
    terminated_at_raw = models.CharField(_("terminated (as sent)"), max_length=40, blank=True)
    # Uptime: when the portal first saw power RUNNING after a launch, start or reboot.
    # (``launched_at`` is when Nova spawned the guest, not when it was last switched on.)
    running_since = models.DateTimeField(_("running since"), null=True, blank=True)
    fault = models.TextField(_("cloud fault"), blank=True)
    addresses = models.JSONField(_("addresses"), default=list, blank=True)
    fixed_ip = models.CharField(_("fixed IP"), max_length=64, blank=True)
    floating_ip = models.CharField(_("floating IP"), max_length=64, blank=True)
    # Saved before a floating IP is created and written into its description: the proof that an
    # unrecorded floating IP on this VM's port is the portal's (a description alone is not).
    floating_ip_token = models.CharField(_("floating IP request"), max_length=32, blank=True)
    host = models.CharField(_("host"), max_length=255, blank=True)
    requested_host = models.CharField(_("requested host"), max_length=255, blank=True)
    availability_zone = models.CharField(_("availability zone"), max_length=255, blank=True)
    pending_action = models.CharField(
        _("pending action"), max_length=16, choices=Action.choices, blank=True
    )
    pending_operation = models.ForeignKey(
        "Operation", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    last_error = models.TextField(_("last error"), blank=True)
    deleted_outside_portal = models.BooleanField(_("deleted outside the portal"), default=False)
    # Staff ticked "second VM" when launching it: exempt from one live VM per soldier and template.
    second_vm = models.BooleanField(_("asked as a second VM"), default=False)
    last_synced_at = models.DateTimeField(_("last synced"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = InstanceQuerySet.as_manager()

    class Meta:
        verbose_name = _("instance")
        verbose_name_plural = _("instances")
        ordering = ["-created_at"]
        constraints = [
            # The promise "one VM per soldier": a double submit or two operators at once make
            # one live VM per soldier and template; only an explicit "second VM" escapes it.
            models.UniqueConstraint(
                fields=["owner", "template"],
                condition=Q(second_vm=False, deleted_outside_portal=False) & ~Q(status="DELETED"),
                name="one_live_vm_per_soldier_and_template",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def get_power_state_display(self) -> str:  # type: ignore[no-redef]
        # Nova may report codes this portal does not know (older releases named 2, 5, 8, 9).
        return power_state_label(self.power_state)

    @property
    def is_terminated(self) -> bool:
        return self.status == ServerStatus.DELETED


class FloatingIP(models.Model):
    """A Neutron floating IP seen by the portal; only those it created are ever released."""

    neutron_id = models.CharField(_("floating IP id"), max_length=64, unique=True)
    address = models.CharField(_("address"), max_length=64)
    port_id = models.CharField(_("port id"), max_length=64, blank=True)
    fixed_ip = models.CharField(_("fixed IP"), max_length=64, blank=True)
    project_keystone_id = models.CharField(_("project id"), max_length=64, blank=True)
    instance = models.ForeignKey(
        Instance, on_delete=models.SET_NULL, null=True, blank=True, related_name="floating_ips"
    )
    created_by_portal = models.BooleanField(_("created by the portal"), default=False)
    status = models.CharField(_("status"), max_length=32, blank=True)
    released_at = models.DateTimeField(_("released"), null=True, blank=True)
    last_synced_at = models.DateTimeField(_("last synced"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("floating IP")
        verbose_name_plural = _("floating IPs")
        ordering = ["address"]

    def __str__(self) -> str:
        return self.address


class SshKey(models.Model):
    """A soldier's SSH public key, imported into Nova twice.

    Once owned by the soldier's Keystone user (their own tools list it), once owned by the
    portal's user, because Nova resolves a new server's ``key_name`` among the key pairs of the
    user whose token creates it, and the portal creates the servers. Public keys only: a private
    key is refused before anything is stored.
    """

    soldier = models.OneToOneField(Soldier, on_delete=models.CASCADE, related_name="ssh_key")
    key_type = models.CharField(_("key type"), max_length=64)
    bits = models.PositiveIntegerField(_("bits"))
    fingerprint = models.CharField(_("fingerprint"), max_length=128)
    comment = models.CharField(_("comment"), max_length=255, blank=True)
    public_key = models.TextField(_("public key"))
    soldier_key_name = models.CharField(_("key pair of the soldier"), max_length=255)
    launch_key_name = models.CharField(_("key pair used at launch"), max_length=255)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("SSH key")
        verbose_name_plural = _("SSH keys")

    def __str__(self) -> str:
        return f"{self.key_type} {self.fingerprint}"


class Batch(models.Model):
    """One bulk action over many targets; its operations count themselves in as they finish."""

    kind = models.CharField(_("kind"), max_length=32)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    total = models.PositiveIntegerField(_("total"), default=0)
    succeeded = models.PositiveIntegerField(_("succeeded"), default=0)
    failed = models.PositiveIntegerField(_("failed"), default=0)
    # Rows staff withdrew before they started; they count as done.
    cancelled = models.PositiveIntegerField(_("cancelled"), default=0)
    # The launch form's idempotency key (made when its preflight page was shown): a second
    # submit of the same form finds this batch instead of launching again.
    launch_key = models.CharField(
        _("launch form key"), max_length=64, null=True, blank=True, unique=True
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        verbose_name = _("batch")
        verbose_name_plural = _("batches")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk}"

    @property
    def done(self) -> int:
        return self.succeeded + self.failed + self.cancelled

    @property
    def percent(self) -> int:
        return 100 if not self.total else int(100 * self.done / self.total)


class OperationQuerySet(OperationVersionedQuerySet):
    def active(self) -> OperationQuerySet:
        return self.filter(state__in=Operation.ACTIVE_STATES)


class Operation(models.Model):
    """Every action on the cloud, as a resumable state machine (see portal.services)."""

    class Kind(models.TextChoices):
        ONBOARD = "onboard", _("Onboard soldier")
        LAUNCH = "launch", _("Launch VM")
        DELETE = "delete", _("Delete VM")
        POWER = "power", _("Power action")
        PASSWORD_CHANGE = "password_change", _("Password change")
        PASSWORD_RESET = "password_reset", _("Password reset")
        RECONCILE = "reconcile", _("Sync with the cloud")
        DISCHARGE = "discharge", _("Discharge")
        SSH_KEY = "ssh_key", _("SSH key import")
        # Staff console (portal.services.instances, .teardown, .drift).
        SYNC = "sync", _("Sync VM with the cloud")
        DISABLE = "disable", _("Disable soldier")
        DRIFT_ADOPT = "drift_adopt", _("Adopt a server")
        DRIFT_DELETE_SERVER = "drift_delete_server", _("Delete a server the portal did not create")
        DRIFT_RELEASE_IP = "drift_release_ip", _("Release a portal floating IP")
        DRIFT_MARK_TERMINATED = "drift_mark_terminated", _("Record a VM deleted outside")
        DRIFT_LINK_USER = "drift_link_user", _("Link a Keystone user to a soldier")
        DRIFT_DISABLE_USER = "drift_disable_user", _("Disable a Keystone user")

    class State(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        # Staff withdrew it before it started (a batch's "cancel rows not started").
        CANCELLED = "cancelled", _("Cancelled")
        # The cloud answered and turned down what a soldier typed (a wrong current password):
        # nothing went wrong for staff to look at, and nothing to retry.
        REFUSED = "refused", _("Refused (input)")

    ACTIVE_STATES = (State.QUEUED, State.RUNNING)
    END_STATES = (State.SUCCEEDED, State.FAILED, State.CANCELLED, State.REFUSED)

    kind = models.CharField(_("kind"), max_length=32, choices=Kind.choices)
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.QUEUED)
    soldier = models.ForeignKey(
        Soldier, on_delete=models.SET_NULL, null=True, blank=True, related_name="operations"
    )
    instance = models.ForeignKey(
        Instance, on_delete=models.SET_NULL, null=True, blank=True, related_name="operations"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    batch = models.ForeignKey(
        Batch, on_delete=models.SET_NULL, null=True, blank=True, related_name="operations"
    )
    # One active operation per key ("instance:7", "soldier:3", "reconcile"): enforced below by a
    # partial unique index, which serializes conflicting requests on SQLite and PostgreSQL alike.
    lock_key = models.CharField(_("lock key"), max_length=64, blank=True)
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    step = models.CharField(_("next step"), max_length=48, blank=True)
    progress = models.JSONField(_("progress"), default=dict, blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    retries = models.PositiveIntegerField(_("retries after cloud errors"), default=0)
    # An English gettext msgid plus its parameters, translated when shown (Korean by default).
    message = models.TextField(_("message"), blank=True)
    message_params = models.JSONField(_("message parameters"), default=dict, blank=True)
    error_detail = models.TextField(_("technical detail"), blank=True)
    request_ids = models.JSONField(_("OpenStack request ids"), default=list, blank=True)
    lease_expires_at = models.DateTimeField(_("worker lease expires"), null=True, blank=True)
    # The fencing token of the worker that holds the lease: every write of a running operation
    # is conditional on it, so a worker whose lease lapsed cannot overwrite its successor.
    claim = models.CharField(_("worker claim"), max_length=32, blank=True)
    run_after = models.DateTimeField(_("next run"), null=True, blank=True)
    deadline_at = models.DateTimeField(_("wait deadline"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = OperationQuerySet.as_manager()

    class Meta:
        verbose_name = _("operation")
        verbose_name_plural = _("operations")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["lock_key"],
                condition=Q(state__in=["queued", "running"]) & ~Q(lock_key=""),
                name="one_active_operation_per_lock_key",
            )
        ]
        indexes = [models.Index(fields=["state", "kind"])]
        # Held by the "operators" group (migration 0003); "viewers" only look.
        permissions = [("operate_cloud", _("Can run console actions on the cloud"))]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.get_state_display()})"

    @property
    def is_finished(self) -> bool:
        return self.state in self.END_STATES

    @property
    def message_text(self) -> str:
        """The message for people, in the active language."""
        if not self.message:
            return ""
        text = gettext(self.message)
        try:
            return text % self.message_params if self.message_params else text
        except (KeyError, ValueError, TypeError):
            # A translation with broken placeholders must not hide the message entirely.
            return self.message


class Drift(models.Model):
    """Something in the cloud that does not match the portal's records, found by reconcile."""

    class Kind(models.TextChoices):
        UNOWNED_SERVER = "unowned_server", _("Server outside every soldier project")
        # Made in a soldier's project by someone else than the portal (his own CLI, say).
        FOREIGN_SERVER = "foreign_server", _("Server in a soldier project, not made by the portal")
        ORPHAN_FLOATING_IP = "orphan_floating_ip", _("Portal floating IP without a server")
        DELETED_OUTSIDE = "deleted_outside", _("Server deleted outside the portal")
        USER_WITHOUT_SOLDIER = "user_without_soldier", _("Keystone user without a soldier")

    kind = models.CharField(_("kind"), max_length=32, choices=Kind.choices)
    resource_id = models.CharField(_("resource id"), max_length=64)
    project_keystone_id = models.CharField(_("project id"), max_length=64, blank=True)
    detail = models.CharField(_("detail"), max_length=255, blank=True)
    first_seen_at = models.DateTimeField(_("first seen"), default=timezone.now)
    last_seen_at = models.DateTimeField(_("last seen"), default=timezone.now)
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True)
    # Staff looked at it and decided to leave it; reconcile keeps the row but lists it apart.
    ignored_at = models.DateTimeField(_("ignored"), null=True, blank=True)

    class Meta:
        verbose_name = _("drift")
        verbose_name_plural = _("drift")
        ordering = ["-last_seen_at"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "resource_id"], name="one_drift_per_resource")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.resource_id}"


class RosterUpload(models.Model):
    """A roster file kept between its preview and its confirmation.

    The confirmation re-reads these bytes (never a file the browser sends again) and re-checks
    them against the database, so what is imported is what was previewed, or nothing.
    """

    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    filename = models.CharField(_("file name"), max_length=255)
    data = models.BinaryField(_("file contents"))
    sha256 = models.CharField(_("SHA-256"), max_length=64)
    size = models.PositiveIntegerField(_("size in bytes"))
    created_at = models.DateTimeField(_("uploaded"), auto_now_add=True)
    confirmed_at = models.DateTimeField(_("imported"), null=True, blank=True)
    batch = models.ForeignKey(
        Batch, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("roster upload")
        verbose_name_plural = _("roster uploads")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.filename
