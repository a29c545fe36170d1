"""Cloud failures end as failed operations with the service's words and request id.

5xx and dropped connections are retried a bounded number of times with backoff; quota and
policy refusals are not retried at all.
"""

from typing import Any

import pytest
from django.utils import translation

from portal import services
from portal.models import Instance, Operation
from portal.openstack import OpenStackClient
from tests.integration.conftest import ONE_VM, Cast, finished, inventory, requests_matching

# Every test here injects faults, which only devcloud can: devcloud-only.
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.cloud,
    pytest.mark.usefixtures("devcloud"),
]


def launch(cast: Cast) -> tuple[Instance, Operation]:
    instance = services.instance_launch(soldier=cast.soldier, template=cast.template)
    return instance, instance.operations.get()


def test_a_few_server_errors_are_retried_and_the_launch_succeeds_once(
    cast: Cast, admin: OpenStackClient, tasks: Any, portal_cloud: Any
) -> None:
    portal_cloud.faults.add(method="POST", path="/servers$", status=500, count=2)
    _, op = launch(cast)
    tasks()

    op = finished(op)
    assert op.state == Operation.State.SUCCEEDED, op.message_text
    assert op.retries == 2
    assert len(requests_matching(portal_cloud, "POST", "/servers$")) == 3
    assert inventory(admin, cast.soldier) == ONE_VM
    # The failed attempts' request ids are kept for the cloud's operators.
    assert len(op.request_ids) == 2


def test_a_cloud_that_keeps_failing_is_retried_a_bounded_number_of_times(
    cast: Cast, tasks: Any, portal_cloud: Any, settings: Any
) -> None:
    settings.OPERATION_MAX_RETRIES = 3
    portal_cloud.faults.add(method="POST", path="/servers$", status=503)
    instance, op = launch(cast)
    tasks()

    op = finished(op)
    assert op.state == Operation.State.FAILED
    assert len(requests_matching(portal_cloud, "POST", "/servers$")) == 4
    assert op.request_ids[-1] in op.message_text
    assert "did not answer after 4 tries" in op.message_text
    instance.refresh_from_db()
    assert instance.pending_action == ""
    assert instance.last_error == op.message_text


def test_dropped_connections_while_waiting_are_retried(
    cast: Cast, tasks: Any, portal_cloud: Any
) -> None:
    portal_cloud.faults.add(method="GET", path="/servers/[0-9a-f-]+$", action="drop", count=4)
    _, op = launch(cast)
    tasks()
    op = finished(op)
    assert op.state == Operation.State.SUCCEEDED, op.message_text


def test_quota_exceeded_is_not_retried_and_says_so_in_plain_words(
    cast: Cast, tasks: Any, portal_cloud: Any
) -> None:
    portal_cloud.faults.add(
        method="POST",
        path="/servers$",
        status=403,
        count=1,
        message="Quota exceeded for instances: Requested 1, but already used 10 of 10 instances",
    )
    _, op = launch(cast)
    tasks()

    op = finished(op)
    assert op.state == Operation.State.FAILED
    assert len(requests_matching(portal_cloud, "POST", "/servers$")) == 1
    assert op.retries == 0
    assert "quota is used up" in op.message_text
    assert "not retried" in op.message_text
    assert "Quota exceeded for instances" in op.message_text
    assert op.request_ids
    assert op.request_ids[0] in op.message_text
    with translation.override("ko"):
        korean = op.message_text
    assert "할당량" in korean
    assert "Quota exceeded for instances" in korean


def test_a_policy_refusal_is_not_retried(cast: Cast, tasks: Any, portal_cloud: Any) -> None:
    portal_cloud.faults.add(
        method="POST", path="/v2.0/floatingips$", status=403, count=1, message="Policy forbids"
    )
    _, op = launch(cast)
    tasks()

    op = finished(op)
    assert op.state == Operation.State.FAILED
    assert op.step == "floating_ip"
    assert "policy does not allow" in op.message_text
    assert len(requests_matching(portal_cloud, "POST", "/v2.0/floatingips$")) == 1


def test_a_failed_launch_can_be_retried_from_where_it_stopped(
    cast: Cast, admin: OpenStackClient, tasks: Any, portal_cloud: Any
) -> None:
    portal_cloud.faults.add(method="POST", path="/v2.0/floatingips$", status=409, count=1)
    _, op = launch(cast)
    tasks()
    assert finished(op).state == Operation.State.FAILED
    creates_before = len(requests_matching(portal_cloud, "POST", "/servers$"))

    services.operation_retry(operation=op)
    tasks()

    assert finished(op).state == Operation.State.SUCCEEDED
    assert len(requests_matching(portal_cloud, "POST", "/servers$")) == creates_before
    assert inventory(admin, cast.soldier) == ONE_VM


def test_tokens_revoked_mid_launch_are_replaced_and_the_launch_goes_on(
    cast: Cast, admin: OpenStackClient, tasks: Any, portal_cloud: Any, interrupt_before: Any
) -> None:
    interrupt_before("floating_ip")
    _, op = launch(cast)
    tasks()
    portal_cloud.faults.revoke_tokens()  # as if every token had expired at once
    portal_cloud.faults.clear_requests()

    services.operation_retry(operation=op)
    tasks()

    assert finished(op).state == Operation.State.SUCCEEDED, op.message_text
    assert any(e["status"] == 401 for e in portal_cloud.faults.requests())
    assert requests_matching(portal_cloud, "POST", "/v3/auth/tokens$")
    assert inventory(admin, cast.soldier) == ONE_VM


def test_an_exhausted_floating_ip_pool_says_whom_to_ask(
    cast: Cast, tasks: Any, portal_cloud: Any, admin: OpenStackClient
) -> None:
    public = admin.list_networks(name="public")[0]
    free = admin.get_network_ip_availability(public.id).free_ips
    # The onboarding's router gateway takes one address; everything else is taken by others.
    services.soldier_onboard(soldier=cast.soldier, run_now=True)
    admin_project = admin.list_projects(name="admin")[0].id
    admin.transport.request(
        "network", "PUT", f"/quotas/{admin_project}", json={"quota": {"floatingip": -1}}
    )
    taken = [
        admin.create_floating_ip(floating_network_id=public.id)
        for _ in range(admin.get_network_ip_availability(public.id).free_ips)
    ]
    try:
        assert free > len(taken)
        _, op = launch(cast)
        tasks()
        op = finished(op)
        assert op.state == Operation.State.FAILED
        assert op.step == "floating_ip"
        assert "no free address" in op.message_text
        assert "cloud administrator" in op.message_text
        assert op.request_ids[-1] in op.message_text
    finally:
        for fip in taken:
            admin.delete_floating_ip(fip.id)


def test_a_busy_server_refusing_its_delete_says_to_retry_later(
    cast: Cast, tasks: Any, portal_cloud: Any
) -> None:
    instance, _ = launch(cast)
    tasks()
    instance.refresh_from_db()
    portal_cloud.faults.add(
        method="DELETE",
        path=r"/servers/[^/]+$",
        status=409,
        count=1,
        message="Cannot 'delete' instance while it is in task_state powering-off",
    )
    op = services.instance_delete(instance=instance)
    tasks()
    op = finished(op)
    assert op.state == Operation.State.FAILED
    assert "powering-off" in op.message_text
    assert "Retry when it has finished its current task" in op.message_text
    assert op.request_ids[-1] in op.message_text
    with translation.override("ko"):
        assert "다시 시도" in op.message_text
