"""The operation engine's database side: leases, resuming, retries, batch counters.

No cloud is reached here: the operations used either never get past their claim or have no
step that needs the cloud (a discharge of a soldier who never had a cloud account).
"""

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from portal import cloud, services
from portal.models import Batch, Operation, Soldier
from portal.operations import engine

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def offline_cloud(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[None]:
    """A configured but unreachable cloud: building the client makes no call."""
    for key, value in {
        "OS_AUTH_URL": "http://192.0.2.1:5000/v3",
        "OS_USERNAME": "portal",
        "OS_PASSWORD": "unused",
        "OS_PROJECT_NAME": "admin",
        "OS_USER_DOMAIN_NAME": "Default",
        "OS_PROJECT_DOMAIN_NAME": "Default",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("OS_CLOUD", raising=False)
    settings.OPENSTACK_CLOUD = ""
    cloud.reset_client()
    yield
    cloud.reset_client()


def soldier(name: str = "lee") -> Soldier:
    user = get_user_model().objects.create_user(username=name)
    return services.soldier_create(user=user, service_number=name, name=name)


def queued_tasks_for(op: Operation) -> int:
    return sum(
        1
        for row in DBTaskResult.objects.filter(status="READY").values_list("args_kwargs", flat=True)
        if row["args"] == [op.pk]
    )


def test_an_operation_leased_by_a_live_worker_is_not_run_twice() -> None:
    op = Operation.objects.create(
        kind=Operation.Kind.RECONCILE,
        state=Operation.State.RUNNING,
        lease_expires_at=timezone.now() + timedelta(minutes=5),
    )
    assert engine.operation_run(operation_id=op.pk) == "skipped"
    op.refresh_from_db()
    assert op.attempts == 0


def test_finished_and_not_yet_due_operations_are_skipped() -> None:
    done = Operation.objects.create(kind=Operation.Kind.RECONCILE, state=Operation.State.FAILED)
    later = Operation.objects.create(
        kind=Operation.Kind.RECONCILE, run_after=timezone.now() + timedelta(minutes=1)
    )
    assert engine.operation_run(operation_id=done.pk) == "skipped"
    assert engine.operation_run(operation_id=later.pk) == "skipped"


def test_a_discharge_without_cloud_resources_runs_every_step_and_counts_in_its_batch(
    offline_cloud: None,
) -> None:
    batch = Batch.objects.create(kind="discharge", total=1)
    target = soldier()
    op = Operation.objects.create(kind=Operation.Kind.DISCHARGE, soldier=target, batch=batch)

    assert engine.operation_run(operation_id=op.pk) == "succeeded"

    op.refresh_from_db()
    target.refresh_from_db()
    batch.refresh_from_db()
    assert op.state == Operation.State.SUCCEEDED
    assert op.step == ""
    assert op.attempts == 1
    assert op.lease_expires_at is None
    assert target.state == Soldier.State.DISABLED
    assert (batch.succeeded, batch.failed) == (1, 0)
    assert batch.finished_at is not None


def test_an_expired_lease_is_resumed_by_the_scheduler_once() -> None:
    stale = Operation.objects.create(
        kind=Operation.Kind.RECONCILE,
        state=Operation.State.RUNNING,
        step="reconcile",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    live = Operation.objects.create(
        kind=Operation.Kind.ONBOARD,
        state=Operation.State.RUNNING,
        lease_expires_at=timezone.now() + timedelta(minutes=5),
    )

    assert services.operations_resume_stale() == 1
    assert queued_tasks_for(stale) == 1
    assert queued_tasks_for(live) == 0
    # The task it queued now stands for the operation: a second scan adds nothing.
    assert services.operations_resume_stale() == 0


def test_a_queued_operation_whose_task_was_lost_is_queued_again_after_a_grace_period(
    settings: Any,
) -> None:
    settings.OPERATION_STALE_GRACE_SECONDS = 60
    op = Operation.objects.create(kind=Operation.Kind.RECONCILE)
    assert services.operations_resume_stale() == 0  # young: its task may still be on the way
    later = timezone.now() + timedelta(seconds=120)
    assert services.operations_resume_stale(now=later) == 1
    assert queued_tasks_for(op) == 1


def test_retry_delays_grow_and_are_capped(settings: Any) -> None:
    settings.OPERATION_RETRY_BASE_SECONDS = 2
    settings.OPERATION_RETRY_MAX_SECONDS = 10
    assert [engine.retry_delay(n) for n in range(1, 6)] == [2, 4, 8, 10, 10]


def test_only_failed_operations_can_be_retried() -> None:
    op = Operation.objects.create(kind=Operation.Kind.RECONCILE, state=Operation.State.SUCCEEDED)
    with pytest.raises(services.OperationRefused):
        services.operation_retry(operation=op)


def test_retrying_a_failed_batch_operation_takes_it_out_of_the_failed_count() -> None:
    batch = Batch.objects.create(kind="onboard", total=1, failed=1)
    op = Operation.objects.create(
        kind=Operation.Kind.ONBOARD,
        soldier=soldier(),
        batch=batch,
        state=Operation.State.FAILED,
        step="project",
        retries=3,
        message="The cloud call failed (%(detail)s; request %(request_id)s).",
    )
    services.operation_retry(operation=op)
    op.refresh_from_db()
    batch.refresh_from_db()
    assert op.state == Operation.State.QUEUED
    assert op.step == "project"  # it resumes where it stopped
    assert (op.retries, op.message) == (0, "")
    assert batch.failed == 0
    assert queued_tasks_for(op) == 1


def test_an_operation_that_already_ended_is_not_ended_or_counted_again(
    offline_cloud: None,
) -> None:
    batch = Batch.objects.create(kind="discharge", total=1)
    op = Operation.objects.create(kind=Operation.Kind.DISCHARGE, soldier=soldier(), batch=batch)
    stale = Operation.objects.get(pk=op.pk)  # what a worker whose lease lapsed still holds
    assert engine.operation_run(operation_id=op.pk) == "succeeded"

    engine.finish(stale, Operation.State.FAILED, "late news")

    op.refresh_from_db()
    batch.refresh_from_db()
    assert op.state == Operation.State.SUCCEEDED
    assert op.message != "late news"
    assert (batch.succeeded, batch.failed) == (1, 0)
