"""Drift fix: delete a server the portal did not create."""

from django.utils.translation import gettext_noop

from portal.models import Operation
from portal.operations.registry import OperationKind, Step
from portal.services import drift

KIND = OperationKind(
    kind=Operation.Kind.DRIFT_DELETE_SERVER,
    steps=(
        Step("drift_delete_server", drift.step_delete_unowned),
        Step("drift_wait_gone", drift.step_wait_unowned_gone),
    ),
    success=gettext_noop("The server was deleted."),
)
