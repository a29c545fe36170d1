"""Sync the portal's mirror with the cloud and record the drift it finds."""

from django.utils.translation import gettext_noop

from portal.models import Operation
from portal.operations.registry import OperationKind, Step
from portal.services import reconcile

KIND = OperationKind(
    kind=Operation.Kind.RECONCILE,
    steps=(Step("reconcile", reconcile.step_reconcile),),
    success=gettext_noop("The portal is in sync with the cloud."),
)
