"""Drift fix: disable a Keystone user no soldier owns."""

from django.utils.translation import gettext_noop

from portal.models import Operation
from portal.operations.registry import OperationKind, Step
from portal.services import drift

KIND = OperationKind(
    kind=Operation.Kind.DRIFT_DISABLE_USER,
    steps=(Step("drift_disable_user", drift.step_disable_keystone_user),),
    success=gettext_noop("The Keystone user was disabled."),
)
