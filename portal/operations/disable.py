"""Disable a soldier: shut the account first, then delete the VMs (the network stays)."""

from django.utils.translation import gettext_noop

from portal.models import Operation
from portal.operations.registry import OperationKind, Step
from portal.services import teardown

KIND = OperationKind(
    kind=Operation.Kind.DISABLE,
    steps=(
        # The account first: a VM that cannot be deleted must not keep it open.
        Step("disable_user", teardown.step_disable_user),
        Step("delete_vms", teardown.step_discharge_delete_vms),
        Step("disable_wait_vms", teardown.step_disable_wait_vms),
        Step("disabled", teardown.step_mark_disabled),
    ),
    success=gettext_noop("The soldier's VMs were deleted and their cloud account disabled."),
    # From the top: disabling the user again costs one call, and skipping it could leave the
    # account open when that is the step that failed.
    retry_from="disable_user",
)
