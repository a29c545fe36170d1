"""Use-cases of the portal: the only code that calls the cloud or enqueues tasks.

Interfaces (views, admin actions, management commands, tasks) call these keyword-only functions,
named ``<entity>_<verb>``. Every multi-step cloud action is a durable ``Operation`` run by
``engine`` as a sequence of idempotent steps: each step looks for what it is about to create
before creating it (the user and project by name, the server by the request tag in its metadata,
the floating IP by port), and the operation's progress is saved before each step, so a crash, a
timeout or a retry resumes instead of duplicating.
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
    OperationRefused,
    Wait,
    operation_retry,
    operation_run,
    step_reached,
)
from portal.services.instances import (
    FIP_DESCRIPTION_PREFIX,
    REQUEST_TAG_KEY,
    instance_delete,
    instance_launch,
    instance_power,
)
from portal.services.onboarding import (
    cloud_is_configured,
    soldier_create,
    soldier_onboard,
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
from portal.services.scheduler import TickReport, operations_resume_stale, scheduler_tick
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
    "BulkResult",
    "CapacitySnapshot",
    "Dashboard",
    "OperationRefused",
    "PasswordReset",
    "Preflight",
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
    "cloud_boot_choices",
    "cloud_capacity_last",
    "cloud_capacity_measure",
    "cloud_is_configured",
    "cloud_reconcile",
    "compute_hosts",
    "console_dashboard",
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
    "launch_preflight",
    "live_instances",
    "operation_retry",
    "operation_run",
    "operations_resume_stale",
    "operations_retry",
    "record_user_drift",
    "scheduler_tick",
    "soldier_create",
    "soldier_disable",
    "soldier_discharge",
    "soldier_discharge_postpone",
    "soldier_onboard",
    "soldier_password_change",
    "soldier_password_reset",
    "soldier_register",
    "soldiers_discharge_due",
    "soldiers_discharge_now",
    "status_counts",
    "step_reached",
    "teardown_preview",
    "vm_template_from_cloud",
]
