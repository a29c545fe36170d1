"""The batch page: live progress that stops polling when the batch ends, retry, cancel."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from portal import services
from portal.models import Batch, Instance, Operation
from portal.operations import engine
from tests.console.support import act
from tests.integration.conftest import Cast, PortalCloud, make_soldier, recorded_calls

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.cloud,
    pytest.mark.needs("identity", "compute", "network", "image"),
]

HTMX = {"HX-Request": "true"}


def launch_batch(cast: Cast, n: int) -> Batch:
    soldiers = [make_soldier() for _ in range(n)]
    result = services.batch_launch_many(soldiers=soldiers, template=cast.template)
    assert result.batch is not None
    return result.batch


def page_of(batch: Batch) -> str:
    return reverse("admin:portal_batch_change", args=[batch.pk])


def test_a_running_batch_polls_every_2s_and_works_without_javascript(
    operator: Client, cast: Cast, tasks: Any
) -> None:
    batch = launch_batch(cast, 2)
    page = operator.get(page_of(batch))
    html = page.content.decode()
    assert page.status_code == 200
    assert 'hx-trigger="every 2s"' in html
    assert 'hx-swap="innerHTML"' in html
    assert '<progress id="cs-progress-bar" max="2" value="0">' in html
    assert 'role="status"' in html
    assert f'href="{page_of(batch)}">Refresh</a>' in html  # the no-JavaScript way
    assert f"Batch #{batch.pk}: 0 of 2 done." in html

    poll = operator.get(page_of(batch), {"seen": "q0"}, headers=HTMX)
    assert poll.status_code == 200
    partial = poll.content.decode()
    assert "<html" not in partial
    assert "hx-trigger" not in partial  # the poller stays in place; only its inside is swapped
    assert "hx-swap-oob" not in partial  # nothing new to announce


def test_polling_stops_with_286_and_announces_the_end_once(
    operator: Client, cast: Cast, tasks: Any
) -> None:
    batch = launch_batch(cast, 2)
    tasks()
    with recorded_calls() as calls:
        poll = operator.get(page_of(batch), {"seen": "q0"}, headers=HTMX)
    assert not calls.exchanges
    assert poll.status_code == 286
    partial = poll.content.decode()
    assert 'hx-swap-oob="innerHTML:#cs-announce"' in partial
    assert "finished: 2 succeeded, 0 failed, 0 cancelled" in partial
    assert 'value="2"' in partial

    again = operator.get(page_of(batch), {"seen": "done"}, headers=HTMX)
    assert again.status_code == 286
    assert "hx-swap-oob" not in again.content.decode()  # announced once, not at every poll
    full = operator.get(page_of(batch)).content.decode()
    assert "hx-trigger" not in full  # a finished batch's page never polls
    assert ">Refresh</a>" not in full


def test_cancel_withdraws_the_rows_not_started_and_the_engine_never_runs_them(
    operator: Client, cast: Cast, tasks: Any
) -> None:
    batch = launch_batch(cast, 3)
    response = operator.post(reverse("admin:portal_batch_cancel", args=[batch.pk]), follow=True)
    assert response.redirect_chain[-1][0] == page_of(batch)
    assert "3 rows that had not started were cancelled" in response.content.decode()
    batch.refresh_from_db()
    assert (batch.cancelled, batch.done, batch.total) == (3, 3, 3)
    assert batch.finished_at is not None
    with recorded_calls() as calls:
        tasks()
    assert not calls.matching("POST", r"/servers$")
    assert set(batch.operations.values_list("state", flat=True)) == {Operation.State.CANCELLED}
    for instance in Instance.objects.filter(operations__batch=batch):
        assert instance.server_id is None
        assert instance.status == "DELETED"
        assert instance.pending_action == ""
    assert operator.get(page_of(batch), headers=HTMX).status_code == 286


def test_cancel_leaves_rows_already_running_and_the_batch_finishes_with_them(
    operator: Client, cast: Cast, tasks: Any
) -> None:
    batch = launch_batch(cast, 2)
    first, second = batch.operations.order_by("pk")
    # A worker takes the first row (it waits for the soldier's onboarding); the second waits.
    assert engine.operation_run(operation_id=first.pk) == "waiting"
    operator.post(reverse("admin:portal_batch_cancel", args=[batch.pk]))
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.state == Operation.State.RUNNING
    assert second.state == Operation.State.CANCELLED
    batch.refresh_from_db()
    assert batch.finished_at is None

    tasks()
    batch.refresh_from_db()
    assert (batch.succeeded, batch.cancelled, batch.done) == (1, 1, 2)
    assert batch.finished_at is not None  # the cancelled row counts as done


def test_retry_failed_rows_restarts_them_from_the_batch_page(
    devcloud: Any, operator: Client, cast: Cast, tasks: Any, portal_cloud: PortalCloud
) -> None:
    fault = portal_cloud.faults.add(method="POST", path="/compute/v2.1/servers$", status=503)
    batch = launch_batch(cast, 2)
    tasks()
    batch.refresh_from_db()
    assert batch.failed == 2
    assert "Retry failed rows" in operator.get(page_of(batch)).content.decode()
    portal_cloud.faults.remove(fault)
    response = operator.post(reverse("admin:portal_batch_retry", args=[batch.pk]), follow=True)
    assert "2 failed rows restarted" in response.content.decode()
    tasks()
    batch.refresh_from_db()
    assert (batch.succeeded, batch.failed) == (2, 0)
    assert batch.finished_at is not None


def test_the_batch_actions_are_posts_only(operator: Client, cast: Cast) -> None:
    batch = launch_batch(cast, 2)
    assert operator.get(reverse("admin:portal_batch_cancel", args=[batch.pk])).status_code == 405
    assert operator.get(reverse("admin:portal_batch_retry", args=[batch.pk])).status_code == 405
    assert batch.operations.filter(state=Operation.State.QUEUED).count() == 2


def test_the_list_action_cancels_several_batches(operator: Client, cast: Cast) -> None:
    batches = [launch_batch(cast, 2), launch_batch(cast, 2)]
    act(operator, "batch", "cancel_not_started", [b.pk for b in batches])
    for batch in batches:
        batch.refresh_from_db()
        assert batch.cancelled == 2


def test_the_batch_page_offers_only_the_buttons_that_have_something_to_do(
    operator: Client, cast: Cast, tasks: Any
) -> None:
    batch = launch_batch(cast, 2)
    queued = operator.get(page_of(batch)).content.decode()
    assert "Cancel rows not started" in queued
    assert "Retry failed rows" not in queued
    tasks()
    done = operator.get(page_of(batch)).content.decode()
    assert "Cancel rows not started" not in done
    assert "Retry failed rows" not in done
