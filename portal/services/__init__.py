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
from portal.services.keys import soldier_ssh_key_set
from portal.services.onboarding import (
    cloud_is_configured,
    soldier_create,
    soldier_onboard,
    vm_template_from_cloud,
)
from portal.services.passwords import (
    PasswordReset,
    soldier_password_change,
    soldier_password_reset,
)
from portal.services.reconcile import cloud_reconcile
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
    "CloudLoginUnavailable",
    "LoginRefused",
    "OperationRefused",
    "PasswordReset",
    "TickReport",
    "Wait",
    "batch_instances",
    "batch_launch",
    "batch_retry_failed",
    "cloud_is_configured",
    "cloud_reconcile",
    "instance_delete",
    "instance_launch",
    "instance_power",
    "live_instances",
    "operation_retry",
    "operation_run",
    "operations_resume_stale",
    "scheduler_tick",
    "soldier_authenticate",
    "soldier_create",
    "soldier_discharge",
    "soldier_discharge_postpone",
    "soldier_onboard",
    "soldier_password_change",
    "soldier_password_reset",
    "soldier_ssh_key_set",
    "soldier_vm_delete",
    "soldier_vm_power",
    "soldier_vm_request",
    "soldiers_discharge_due",
    "step_reached",
    "vm_template_from_cloud",
]
