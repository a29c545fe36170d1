"""Refresh one VM's record from the cloud (a staff action)."""

from django.utils.translation import gettext_noop

from portal.models import Operation
from portal.operations.registry import OperationKind, Step
from portal.services import instances

KIND = OperationKind(
    kind=Operation.Kind.SYNC,
    steps=(Step("sync_instance", instances.step_sync_instance),),
    success=gettext_noop("The VM's record was refreshed from the cloud."),
)
