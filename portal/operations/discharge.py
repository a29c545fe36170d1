"""Discharge a soldier: delete their VMs, disable their user, tear down their network."""

from django.utils.translation import gettext_noop

from portal.models import Operation
from portal.operations.registry import OperationKind, Step
from portal.services import teardown

KIND = OperationKind(
    kind=Operation.Kind.DISCHARGE,
    steps=(
        Step("delete_vms", teardown.step_discharge_delete_vms),
        Step("wait_vms", teardown.step_discharge_wait_vms),
        Step("disable_user", teardown.step_disable_user),
        # Neutron refuses any other order: interfaces, router, subnet, network.
        Step("remove_router_interface", teardown.step_remove_router_interface),
        Step("delete_router", teardown.step_delete_router),
        Step("delete_subnet", teardown.step_delete_subnet),
        Step("delete_network", teardown.step_delete_network),
        Step("disabled", teardown.step_mark_disabled),
    ),
    success=gettext_noop("The soldier's VMs were deleted and their account disabled."),
    timeout_setting="OPERATION_DISCHARGE_TIMEOUT_SECONDS",
    retry_from="delete_vms",
)
