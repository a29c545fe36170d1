"""Bulk actions: one batch, per-row results, progress counters and retry of the failures."""

from typing import Any

import pytest

from portal import services
from portal.models import Instance, Operation
from tests.integration.conftest import Cast, PortalCloud, make_soldier

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.cloud,
    pytest.mark.needs("identity", "compute", "network", "image"),
]


def test_a_batch_launch_counts_each_vm_and_a_failed_one_can_be_retried(
    devcloud: Any, cast: Cast, tasks: Any, portal_cloud: PortalCloud
) -> None:
    soldiers = [cast.soldier, make_soldier(), make_soldier()]
    portal_cloud.faults.fail_builds(1)
    batch, refusals = services.batch_launch(
        soldiers=soldiers, template=cast.template, requested_by=cast.staff
    )
    assert refusals == []
    assert batch.total == 3
    tasks()

    batch.refresh_from_db()
    assert (batch.succeeded, batch.failed, batch.percent) == (2, 1, 100)
    assert batch.finished_at is not None
    failed = batch.operations.get(state=Operation.State.FAILED)
    assert "could not build the VM" in failed.message_text

    # A failed build cannot be resumed in place: delete it, then launch that soldier again.
    broken = failed.instance
    assert broken is not None
    services.instance_delete(instance=broken)
    tasks()
    retry, _ = services.batch_launch(soldiers=[broken.owner], template=cast.template)
    tasks()
    retry.refresh_from_db()
    assert (retry.succeeded, retry.failed) == (1, 0)


def test_a_batch_power_action_refuses_rows_that_cannot_take_it_and_runs_the_rest(
    cast: Cast, tasks: Any
) -> None:
    soldiers = [cast.soldier, make_soldier()]
    services.batch_launch(soldiers=soldiers, template=cast.template)
    tasks()
    first, second = Instance.objects.order_by("pk")
    services.instance_power(instance=first, action=Instance.Action.STOP)
    tasks()

    batch, refusals = services.batch_instances(
        instances=Instance.objects.order_by("pk"), action="stop", requested_by=cast.staff
    )
    assert len(refusals) == 1
    assert first.name in refusals[0]
    assert batch.total == 1
    tasks()
    batch.refresh_from_db()
    assert (batch.succeeded, batch.failed) == (1, 0)
    second.refresh_from_db()
    assert second.status == "SHUTOFF"


def test_retrying_a_batch_restarts_only_its_failed_operations(
    devcloud: Any, cast: Cast, tasks: Any, portal_cloud: PortalCloud
) -> None:
    soldiers = [cast.soldier, make_soldier()]
    services.batch_launch(soldiers=soldiers, template=cast.template)
    tasks()
    portal_cloud.faults.add(method="DELETE", path="/floatingips/", status=403, count=1)
    batch, _ = services.batch_instances(instances=Instance.objects.all(), action="delete")
    tasks()
    batch.refresh_from_db()
    assert (batch.succeeded, batch.failed) == (1, 1)

    assert services.batch_retry_failed(batch=batch, requested_by=cast.staff) == 1
    tasks()
    batch.refresh_from_db()
    assert (batch.succeeded, batch.failed) == (2, 0)
    assert all(i.status == "DELETED" for i in Instance.objects.all())
