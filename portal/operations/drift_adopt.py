"""Drift fix: adopt a server the portal did not create as a VM of a soldier."""

from django.utils.translation import gettext_noop

from portal.models import Operation
from portal.operations.registry import OperationKind, Step
from portal.services import drift

KIND = OperationKind(
    kind=Operation.Kind.DRIFT_ADOPT,
    steps=(Step("drift_adopt", drift.step_adopt),),
    success=gettext_noop("The server is now a VM of the soldier."),
)
