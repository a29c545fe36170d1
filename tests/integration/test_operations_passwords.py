"""Passwords: synchronous, recorded as operations, never stored or queued."""

from typing import Any

import pytest
from django_tasks_db.models import DBTaskResult

from portal import services
from portal.models import Operation
from portal.openstack import OpenStackClient, Unauthorized
from tests.integration.conftest import Cast

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.cloud,
    pytest.mark.needs("identity", "network"),
]


@pytest.fixture
def onboarded(cast: Cast, tasks: Any) -> Cast:
    services.soldier_onboard(soldier=cast.soldier)
    tasks()
    cast.soldier.refresh_from_db()
    return cast


def stored_text() -> str:
    """Everything the portal kept about operations and tasks, as one string."""
    rows = list(Operation.objects.values()) + list(DBTaskResult.objects.values())
    return repr(rows)


def test_staff_reset_shows_a_new_password_once_and_it_logs_in(
    onboarded: Cast, admin: OpenStackClient
) -> None:
    soldier = onboarded.soldier
    reset = services.soldier_password_reset(soldier=soldier, requested_by=onboarded.staff)
    assert reset.operation.state == Operation.State.SUCCEEDED
    assert reset.password
    assert len(reset.password) >= 12
    assert reset.password not in repr(reset)
    assert reset.password not in stored_text()
    token = admin.authenticate(username=soldier.keystone_user_name, password=reset.password)
    assert token.user_id == soldier.keystone_user_id


def test_a_soldier_changes_their_own_password_with_the_original(
    onboarded: Cast, admin: OpenStackClient
) -> None:
    soldier = onboarded.soldier
    services.soldier_password_reset(soldier=soldier, new_password="first-Pass-123")
    op = services.soldier_password_change(
        soldier=soldier, original_password="first-Pass-123", new_password="second-Pass-456"
    )
    assert op.state == Operation.State.SUCCEEDED, op.message_text
    assert "Pass" not in stored_text()
    admin.authenticate(username=soldier.keystone_user_name, password="second-Pass-456")
    with pytest.raises(Unauthorized):
        admin.authenticate(username=soldier.keystone_user_name, password="first-Pass-123")


def test_a_wrong_original_password_fails_in_plain_words(onboarded: Cast) -> None:
    op = services.soldier_password_change(
        soldier=onboarded.soldier, original_password="wrong-one", new_password="new-Pass-789"
    )
    assert op.state == Operation.State.REFUSED  # the soldier mistyped: no failure (issue 18)
    assert op.message_text == "The current password is not correct."
    assert op.request_ids


def test_passwords_need_a_cloud_account(cast: Cast) -> None:
    with pytest.raises(services.OperationRefused):
        services.soldier_password_reset(soldier=cast.soldier)
