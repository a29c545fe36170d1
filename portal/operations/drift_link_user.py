"""Drift fix: link a Keystone user to a soldier as their cloud account."""

from django.utils.translation import gettext_noop

from portal.models import Operation
from portal.operations.registry import OperationKind, Step
from portal.services import drift

KIND = OperationKind(
    kind=Operation.Kind.DRIFT_LINK_USER,
    steps=(Step("drift_link_user", drift.step_link_user),),
    success=gettext_noop("The Keystone user is now the soldier's cloud account."),
)
