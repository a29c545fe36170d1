"""Discharge a soldier: disable their user, delete their VMs, tear down their network."""

from django.utils.translation import gettext_noop

from portal.models import Operation
from portal.operations.registry import OperationKind, Step
from portal.services import teardown

KIND = OperationKind(
    kind=Operation.Kind.DISCHARGE,
    steps=(
        # The account first: a VM that cannot be deleted must not keep it open.
        Step("disable_user", teardown.step_disable_user),
        Step("delete_vms", teardown.step_discharge_delete_vms),
        Step("wait_vms", teardown.step_discharge_wait_vms),
        # Neutron refuses any other order: interfaces, router, subnet, network.
        Step("remove_router_interface", teardown.step_remove_router_interface),
        Step("delete_router", teardown.step_delete_router),
        Step("delete_subnet", teardown.step_delete_subnet),
        Step("delete_network", teardown.step_delete_network),
        Step("disabled", teardown.step_mark_disabled),
    ),
    success=gettext_noop("The soldier's VMs were deleted and their account disabled."),
    timeout_setting="OPERATION_DISCHARGE_TIMEOUT_SECONDS",
    # From the top: disabling the user again costs one call (skipping it could leave the account
    # open when that is the step that failed), and the failed VM delete is started afresh.
    retry_from="disable_user",
)
