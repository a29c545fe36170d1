"""Onboarding: user, project, roles and a routed network, exactly once (any cloud target)."""

from typing import Any

import pytest
from django.db import transaction

from portal import services
from portal.models import Operation, ProjectNetwork, Soldier
from portal.openstack import OpenStackClient
from portal.operations import registry
from tests.integration.conftest import (
    ONBOARDED,
    Cast,
    PortalCloud,
    finished,
    inventory,
    make_soldier,
    recorded_calls,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.cloud,
    pytest.mark.needs("identity", "network"),
]

ONBOARD_STEPS = registry.kind_of(Operation.Kind.ONBOARD).step_names


def test_onboard_creates_the_user_project_roles_and_a_routed_network(
    cast: Cast, admin: OpenStackClient, tasks: Any
) -> None:
    op = services.soldier_onboard(soldier=cast.soldier, requested_by=cast.staff)
    assert op.state == Operation.State.QUEUED
    tasks()

    op = finished(op)
    assert op.state == Operation.State.SUCCEEDED, op.message_text
    soldier = Soldier.objects.get(pk=cast.soldier.pk)
    assert soldier.state == Soldier.State.ACTIVE
    assert inventory(admin, soldier) == ONBOARDED
    project = soldier.project
    assigned = admin.list_role_assignments(project_id=project.keystone_id)
    member = admin.find_role("member").id
    assert any(a.user_id == soldier.keystone_user_id and a.role_id == member for a in assigned)
    assert any(a.user_id == admin.token().user_id for a in assigned)
    own = project.own_network
    router = admin.get_router(own.router_id)
    assert router.external_network_id == admin.list_networks(name="public")[0].id
    assert project.network_id == own.network_id
    assert op.requested_by == cast.staff
    assert op.finished_at is not None
    assert op.finished_at.tzinfo is not None


@pytest.mark.parametrize("stop_before", ONBOARD_STEPS[1:])
def test_onboard_interrupted_before_each_step_resumes_to_exactly_one_of_everything(
    cast: Cast, admin: OpenStackClient, tasks: Any, interrupt_before: Any, stop_before: str
) -> None:
    interrupt_before(stop_before)
    op = services.soldier_onboard(soldier=cast.soldier)
    tasks()
    op = finished(op)
    assert op.state == Operation.State.FAILED
    assert op.step == stop_before

    services.operation_retry(operation=op, requested_by=cast.staff)
    tasks()

    op = finished(op)
    assert op.state == Operation.State.SUCCEEDED, op.message_text
    assert inventory(admin, cast.soldier) == ONBOARDED


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v3/users$"),
        ("POST", "/v3/projects$"),
        ("POST", "/v2.0/networks$"),
        ("POST", "/v2.0/subnets$"),
        ("POST", "/v2.0/routers$"),
    ],
)
def test_onboard_whose_create_answer_was_lost_finds_what_it_made(
    devcloud: Any,
    cast: Cast,
    admin: OpenStackClient,
    tasks: Any,
    portal_cloud: PortalCloud,
    method: str,
    path: str,
) -> None:
    # The cloud does the work, then the answer is lost: the client cannot know it succeeded.
    portal_cloud.faults.add(method=method, path=path, status=503, count=1, after=True)
    op = services.soldier_onboard(soldier=cast.soldier)
    tasks()

    op = finished(op)
    assert op.state == Operation.State.SUCCEEDED, op.message_text
    assert op.retries == 1
    assert inventory(admin, cast.soldier) == ONBOARDED


def test_onboard_in_shared_mode_uses_the_shared_network_and_creates_none(
    cast: Cast, admin: OpenStackClient, tasks: Any, settings: Any
) -> None:
    settings.OPENSTACK_NETWORK_MODE = "shared"
    shared = next(n for n in admin.list_networks(shared=True) if not n.external)
    settings.OPENSTACK_SHARED_NETWORK = shared.name
    with recorded_calls() as calls:
        op = services.soldier_onboard(soldier=cast.soldier)
        tasks()

    assert finished(op).state == Operation.State.SUCCEEDED
    project = Soldier.objects.get(pk=cast.soldier.pk).project
    assert project.network_id == shared.id
    assert not calls.matching("POST", "/v2.0/")
    assert not ProjectNetwork.objects.filter(project=project).exclude(network_id="").exists()


def test_a_second_onboard_while_one_is_queued_is_refused(cast: Cast) -> None:
    services.soldier_onboard(soldier=cast.soldier)
    with pytest.raises(services.OperationRefused, match="in progress"):
        services.soldier_onboard(soldier=cast.soldier)
    assert Operation.objects.filter(soldier=cast.soldier).count() == 1


def test_onboarding_again_after_success_changes_nothing_in_the_cloud(
    cast: Cast, admin: OpenStackClient, tasks: Any
) -> None:
    services.soldier_onboard(soldier=cast.soldier)
    tasks()
    with recorded_calls() as calls:
        op = services.soldier_onboard(soldier=cast.soldier)
        tasks()
    assert finished(op).state == Operation.State.SUCCEEDED
    assert not calls.mutations()
    assert inventory(admin, cast.soldier) == ONBOARDED


def test_a_disabled_soldier_cannot_be_onboarded() -> None:
    with transaction.atomic():
        soldier = make_soldier(state=Soldier.State.DISABLED)
    with pytest.raises(services.OperationRefused):
        services.soldier_onboard(soldier=soldier)
