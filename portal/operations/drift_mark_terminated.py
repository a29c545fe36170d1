"""Drift fix: record as deleted a VM whose server is gone."""

from django.utils.translation import gettext_noop

from portal.models import Operation
from portal.operations.registry import OperationKind, Step
from portal.services import drift

KIND = OperationKind(
    kind=Operation.Kind.DRIFT_MARK_TERMINATED,
    steps=(Step("drift_mark_terminated", drift.step_mark_terminated),),
    success=gettext_noop("The VM is recorded as deleted."),
)
