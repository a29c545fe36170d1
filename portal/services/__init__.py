"""Use-cases of the portal: the only code that calls the cloud or enqueues tasks.

One module per workflow; interfaces (views, admin actions, management commands) call their
keyword-only ``<entity>_<verb>`` functions through this package, which re-exports each module's
use-cases below (one line per workflow). A multi-step cloud action is a durable ``Operation``:
the click half (validate, record the row, queue it) lives here, and its steps are declared as a
kind in ``portal.operations`` and run by its engine (each step idempotent and fenced by the
worker's claim, so a crash, a timeout or a retry resumes instead of duplicating).
"""

# ruff: noqa: F401 (this module is the re-export of the workflows' use-cases)

from portal.operations.engine import operation_retry
from portal.operations.errors import OperationRefused
from portal.services.batches import (
    BulkResult,
    batch_apply,
    batch_cancel_pending,
    batch_instances,
    batch_launch,
    batch_launch_many,
    batch_retry_failed,
    operations_retry,
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
)
from portal.services.exports import instances_export, soldiers_export
from portal.services.instances import (
    FIP_DESCRIPTION_PREFIX,
    REQUEST_TAG_KEY,
    instance_delete,
    instance_launch,
    instance_power,
    instance_sync,
)
from portal.services.keys import soldier_ssh_key_set
from portal.services.onboarding import (
    cloud_boot_choices,
    cloud_is_configured,
    soldier_create,
    soldier_onboard,
    soldier_register,
    vm_template_from_cloud,
)
from portal.services.overview import (
    console_dashboard,
    instances_with_status,
    live_instances,
    status_counts,
)
from portal.services.passwords import soldier_password_change, soldier_password_reset
from portal.services.preflight import (
    cloud_capacity_measure,
    compute_hosts,
    launch_preflight,
)
from portal.services.reconcile import cloud_reconcile
from portal.services.roster_imports import (
    RosterImport,
    RosterRefused,
    RosterStale,
    roster_import,
    roster_preview,
    roster_upload_store,
)
from portal.services.scheduler import operations_resume_stale, scheduler_tick
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
from portal.services.teardown import (
    TeardownPreview,
    soldier_disable,
    soldier_discharge,
    soldier_discharge_postpone,
    soldiers_discharge_due,
    soldiers_discharge_now,
    teardown_preview,
)
