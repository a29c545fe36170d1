"""A create whose answer was lost never creates a second one (issue 9, point 2).

devcloud carries the request out a moment after it cut the connection (``defer``), as a
service that records a create late: the portal keeps looking for what it asked for, longer
than a request may take, before it tries again; and it never counts that as a retry.
"""

from typing import Any

import pytest

from portal import cloud, services
from portal.models import FloatingIP, Instance, Operation, Soldier
from portal.openstack import OpenStackClient
from tests.integration.conftest import (
    ONE_VM,
    Cast,
    PortalCloud,
    finished,
    inventory,
    requests_matching,
)

# Faults are devcloud's: devcloud-only.
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.cloud,
    pytest.mark.usefixtures("devcloud"),
]

# Every create a launch makes (its onboarding included); the connection is cut, or held past
# the client's timeout.
CREATES = [
    ("POST", r"/compute/v2\.1/servers$", "drop"),
    ("POST", r"/compute/v2\.1/servers$", "timeout"),
    ("POST", r"/v2\.0/floatingips$", "drop"),
    ("POST", r"/v2\.0/networks$", "drop"),
    ("POST", r"/v2\.0/subnets$", "drop"),
    ("POST", r"/v2\.0/routers$", "timeout"),
    ("PUT", r"/add_router_interface$", "drop"),
    ("POST", r"/v3/users$", "timeout"),
    ("POST", r"/v3/projects$", "drop"),
]


@pytest.fixture
def short_timeouts(settings: Any) -> None:
    # The portal looks for a lost create for max(this, 2 x the request timeout) seconds.
    settings.OPENSTACK_TIMEOUT = 1.0
    settings.OPERATION_UNKNOWN_OUTCOME_SECONDS = 2.5
    cloud.reset_client()


@pytest.mark.parametrize(("method", "path", "lost"), CREATES)
def test_a_create_recorded_after_its_answer_was_lost_is_found_not_made_again(
    cast: Cast,
    admin: OpenStackClient,
    tasks: Any,
    portal_cloud: PortalCloud,
    short_timeouts: None,
    method: str,
    path: str,
    lost: str,
) -> None:
    # The connection is cut (or held past the client's timeout), and the service records
    # the create 1.5 s later: a plain retry would find nothing yet and create a second one.
    portal_cloud.faults.add(
        method=method, path=path, action=lost, status=None, after=True, defer=1.5, count=1
    )
    instance = services.instance_launch(soldier=cast.soldier, template=cast.template)
    op = instance.operations.get()
    tasks(timeout=120)

    op = finished(op)
    assert op.state == Operation.State.SUCCEEDED, op.message_text
    assert inventory(admin, Soldier.objects.get(pk=cast.soldier.pk)) == ONE_VM
    # Exactly one create went out; the wait for the lost one is not a retry.
    assert len(requests_matching(portal_cloud, method, path.replace("/compute", ""))) == 1
    assert op.retries == 0
    onboarding = Operation.objects.get(soldier=cast.soldier, kind=Operation.Kind.ONBOARD)
    assert onboarding.retries == 0
    assert FloatingIP.objects.get(instance=instance).created_by_portal
    assert not any(key.startswith("unknown:") for key in op.progress)


def test_a_lost_create_that_never_happened_is_made_after_the_lookup_window(
    cast: Cast, admin: OpenStackClient, tasks: Any, portal_cloud: PortalCloud, short_timeouts: None
) -> None:
    # Dropped before the service saw it: nothing to find, so after the window it is created.
    portal_cloud.faults.add(
        method="POST", path=r"/compute/v2\.1/servers$", action="drop", status=None, count=1
    )
    instance = services.instance_launch(soldier=cast.soldier, template=cast.template)
    tasks(timeout=120)

    op = finished(instance.operations.get())
    assert op.state == Operation.State.SUCCEEDED, op.message_text
    assert len(requests_matching(portal_cloud, "POST", r"/v2\.1/servers$")) == 2
    assert inventory(admin, cast.soldier) == ONE_VM
    assert Instance.objects.get(pk=instance.pk).server_id
