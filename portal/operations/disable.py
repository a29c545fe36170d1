"""Disable a soldier: the discharge's own steps, without the network teardown."""

from django.utils.translation import gettext_noop

from portal.models import Operation
from portal.operations.registry import OperationKind, Step
from portal.services import teardown

KIND = OperationKind(
    kind=Operation.Kind.DISABLE,
    steps=(
        # The discharge's own steps, without the network teardown.
        Step("delete_vms", teardown.step_discharge_delete_vms),
        Step("disable_wait_vms", teardown.step_disable_wait_vms),
        Step("disable_user", teardown.step_disable_user),
        Step("disabled", teardown.step_mark_disabled),
    ),
    success=gettext_noop("The soldier's VMs were deleted and their cloud account disabled."),
)
