"""Launch a VM: onboard if needed, create the server, wait for it, give it a floating IP."""

from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from portal.models import Operation
from portal.operations.registry import OperationKind, Step
from portal.services import instances

KIND = OperationKind(
    kind=Operation.Kind.LAUNCH,
    steps=(
        Step("onboard", instances.step_onboard, label=_("preparing the cloud account")),
        Step("resolve", instances.step_resolve, label=_("choosing the network")),
        Step("server", instances.step_server, label=_("asking the cloud for the VM")),
        Step("wait_active", instances.step_wait_active, label=_("the cloud is building the VM")),
        Step("port", instances.step_port, label=_("finding the VM's network port")),
        Step("floating_ip", instances.step_floating_ip, label=_("attaching a public address")),
        Step("sync", instances.step_sync, label=_("reading the final state")),
    ),
    success=gettext_noop("The VM is running and reachable at its floating IP."),
    timeout_setting="OPERATION_LAUNCH_TIMEOUT_SECONDS",
)
