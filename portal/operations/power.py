"""A power action on a VM (start, stop, reboot): send it, then wait for the new state."""

from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from portal.models import Operation
from portal.operations.registry import OperationKind, Step
from portal.services import instances

KIND = OperationKind(
    kind=Operation.Kind.POWER,
    steps=(
        Step(
            "power_action", instances.step_power_action, label=_("sending the request to the cloud")
        ),
        Step("power_wait", instances.step_power_wait, label=_("waiting for the cloud")),
    ),
    success=gettext_noop("The power action finished."),
)
