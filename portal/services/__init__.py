"""Use-cases of the portal: the only code that calls the cloud or enqueues tasks.

Interfaces (views, admin actions, management commands, tasks) call these keyword-only functions,
named ``<entity>_<verb>``. Every multi-step cloud action is a durable ``Operation`` run by
``engine`` as a sequence of idempotent steps: each step looks for what it is about to create
before creating it (the user and project by name and the portal's marker, the server by the
request tag in its metadata, the floating IP by a token saved before its create), a create whose
answer was lost is looked for before it is tried again, and the operation's progress is saved
before each step, so a crash, a timeout or a retry resumes instead of duplicating. Every write a
running operation makes is fenced by its worker's claim, so two workers never run one step.
"""

from portal.services.batches import batch_instances, batch_launch, batch_retry_failed
from portal.services.discharge import (
    soldier_discharge,
    soldier_discharge_postpone,
    soldiers_discharge_due,
)
from portal.services.drift import (
    FIXES,
    drift_adopt_server,
    drift_delete_server,
    drift_disable_user,
    drift_ignore,
    drift_link_user,
    drift_mark_terminated,
    drift_release_floating_ip,
    record_user_drift,
)
from portal.services.engine import (
    STEPS,
    SYNCHRONOUS_KINDS,
    OperationRefused,
    Wait,
    clean_cloud_text,
    operation_retry,
    operation_run,
    step_reached,
)
from portal.services.instances import (
    FIP_DESCRIPTION_PREFIX,
    REQUEST_TAG_KEY,
    discharge_started,
    instance_delete,
    instance_launch,
    instance_power,
)
from portal.services.keys import soldier_ssh_key_set
from portal.services.onboarding import (
    cloud_is_configured,
    onboarding_complete,
    soldier_create,
    soldier_onboard,
    soldier_problem,
    vm_template_from_cloud,
)
from portal.services.overview import (
    Dashboard,
    StatusCount,
    console_dashboard,
    instance_ids_by_status,
    live_instances,
    status_counts,
)
from portal.services.passwords import (
    PasswordReset,
    soldier_password_change,
    soldier_password_reset,
)
from portal.services.preflight import (
    CapacitySnapshot,
    Preflight,
    cloud_capacity_last,
    cloud_capacity_measure,
    compute_hosts,
    launch_preflight,
)
from portal.services.reconcile import cloud_reconcile
from portal.services.roster import (
    RosterImport,
    RosterRefused,
    RosterStale,
    instances_export,
    roster_import,
    roster_preview,
    roster_upload_store,
    soldiers_export,
)
from portal.services.scheduler import TickReport, operations_resume_stale, scheduler_tick
from portal.services.selfservice import (
    CloudLoginBusy,
    CloudLoginUnavailable,
    LoginRefused,
    soldier_authenticate,
    soldier_live_instances,
    soldier_vm_delete,
    soldier_vm_power,
    soldier_vm_request,
)
from portal.services.staff import (
    BulkResult,
    TeardownPreview,
    batch_apply,
    batch_cancel_pending,
    batch_launch_many,
    cloud_boot_choices,
    instance_sync,
    operations_retry,
    soldier_disable,
    soldier_register,
    soldiers_discharge_now,
    teardown_preview,
)

__all__ = [
    "FIP_DESCRIPTION_PREFIX",
    "FIXES",
    "REQUEST_TAG_KEY",
    "STEPS",
    "SYNCHRONOUS_KINDS",
    "BulkResult",
    "CapacitySnapshot",
    "CloudLoginBusy",
    "CloudLoginUnavailable",
    "Dashboard",
    "LoginRefused",
    "OperationRefused",
    "PasswordReset",
    "Preflight",
    "RosterImport",
    "RosterRefused",
    "RosterStale",
    "StatusCount",
    "TeardownPreview",
    "TickReport",
    "Wait",
    "batch_apply",
    "batch_cancel_pending",
    "batch_instances",
    "batch_launch",
    "batch_launch_many",
    "batch_retry_failed",
    "clean_cloud_text",
    "cloud_boot_choices",
    "cloud_capacity_last",
    "cloud_capacity_measure",
    "cloud_is_configured",
    "cloud_reconcile",
    "compute_hosts",
    "console_dashboard",
    "discharge_started",
    "drift_adopt_server",
    "drift_delete_server",
    "drift_disable_user",
    "drift_ignore",
    "drift_link_user",
    "drift_mark_terminated",
    "drift_release_floating_ip",
    "instance_delete",
    "instance_ids_by_status",
    "instance_launch",
    "instance_power",
    "instance_sync",
    "instances_export",
    "launch_preflight",
    "live_instances",
    "onboarding_complete",
    "operation_retry",
    "operation_run",
    "operations_resume_stale",
    "operations_retry",
    "record_user_drift",
    "roster_import",
    "roster_preview",
    "roster_upload_store",
    "scheduler_tick",
    "soldier_authenticate",
    "soldier_create",
    "soldier_disable",
    "soldier_discharge",
    "soldier_discharge_postpone",
    "soldier_live_instances",
    "soldier_onboard",
    "soldier_password_change",
    "soldier_password_reset",
    "soldier_problem",
    "soldier_register",
    "soldier_ssh_key_set",
    "soldier_vm_delete",
    "soldier_vm_power",
    "soldier_vm_request",
    "soldiers_discharge_due",
    "soldiers_discharge_now",
    "soldiers_export",
    "status_counts",
    "step_reached",
    "teardown_preview",
    "vm_template_from_cloud",
]
