"""Drift fix: release a portal floating IP that has no server."""

from django.utils.translation import gettext_noop

from portal.models import Operation
from portal.operations.registry import OperationKind, Step
from portal.services import drift

KIND = OperationKind(
    kind=Operation.Kind.DRIFT_RELEASE_IP,
    steps=(Step("drift_release_ip", drift.step_release_ip),),
    success=gettext_noop("The floating IP was released."),
)
