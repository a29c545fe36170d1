"""Onboard a soldier: their Keystone user and project, roles, network, subnet and router."""

from django.utils.translation import gettext_noop

from portal.models import Operation
from portal.operations.registry import OperationKind, Step
from portal.services import onboarding

KIND = OperationKind(
    kind=Operation.Kind.ONBOARD,
    steps=(
        Step("user", onboarding.step_user),
        Step("project", onboarding.step_project),
        Step("roles", onboarding.step_roles),
        Step("network", onboarding.step_network),
        Step("subnet", onboarding.step_subnet),
        Step("router", onboarding.step_router),
        Step("router_interface", onboarding.step_router_interface),
        Step("activate", onboarding.step_activate),
    ),
    success=gettext_noop("The soldier's cloud account and project are ready."),
)
