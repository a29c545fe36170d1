"""Delete a VM: delete the server, release its floating IPs, wait until it is gone."""

from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from portal.models import Operation
from portal.operations.registry import OperationKind, Step
from portal.services import instances

KIND = OperationKind(
    kind=Operation.Kind.DELETE,
    steps=(
        # The server first: a refused delete must leave the VM reachable at its address. Each
        # step is safe to run again, so a retry resumes where the delete stopped.
        Step("delete_server", instances.step_delete_server, label=_("deleting the VM")),
        Step(
            "release_floating_ips",
            instances.step_release_floating_ips,
            label=_("releasing the public address"),
        ),
        Step(
            "wait_gone",
            instances.step_wait_gone,
            label=_("waiting for the cloud to remove the VM"),
        ),
        Step("terminated", instances.step_mark_terminated, label=_("recording the deletion")),
    ),
    success=gettext_noop("The VM and its floating IP were deleted."),
    timeout_setting="OPERATION_DELETE_TIMEOUT_SECONDS",
)
