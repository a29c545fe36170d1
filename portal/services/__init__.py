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
from portal.services.passwords import (
    PasswordReset,
    soldier_password_change,
    soldier_password_reset,
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
    CloudLoginUnavailable,
    LoginRefused,
    live_instances,
    soldier_authenticate,
    soldier_vm_delete,
    soldier_vm_power,
    soldier_vm_request,
)

__all__ = [
    "FIP_DESCRIPTION_PREFIX",
    "REQUEST_TAG_KEY",
    "STEPS",
    "SYNCHRONOUS_KINDS",
    "CloudLoginUnavailable",
    "LoginRefused",
    "OperationRefused",
    "PasswordReset",
    "RosterImport",
    "RosterRefused",
    "RosterStale",
    "TickReport",
    "Wait",
    "batch_instances",
    "batch_launch",
    "batch_retry_failed",
    "clean_cloud_text",
    "cloud_is_configured",
    "cloud_reconcile",
    "discharge_started",
    "instance_delete",
    "instance_launch",
    "instance_power",
    "instances_export",
    "live_instances",
    "onboarding_complete",
    "operation_retry",
    "operation_run",
    "operations_resume_stale",
    "roster_import",
    "roster_preview",
    "roster_upload_store",
    "scheduler_tick",
    "soldier_authenticate",
    "soldier_create",
    "soldier_discharge",
    "soldier_discharge_postpone",
    "soldier_onboard",
    "soldier_password_change",
    "soldier_password_reset",
    "soldier_problem",
    "soldier_ssh_key_set",
    "soldier_vm_delete",
    "soldier_vm_power",
    "soldier_vm_request",
    "soldiers_discharge_due",
    "soldiers_export",
    "step_reached",
    "vm_template_from_cloud",
]
