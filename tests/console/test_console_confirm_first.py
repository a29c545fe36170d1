"""Mass actions confirm first (issue 18 point 11): start, stop and reboot, and the password
reset, show what will happen to which VMs or soldiers and act only on ``post=yes``; a soldier
mistyping his current password is no failed operation for staff and is never retried."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from portal import services
from portal.models import Batch, Operation
from tests.console.support import act, changelist, confirm, messages_of, onboarded, running_vm
from tests.integration.conftest import Cast, make_soldier

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.cloud,
    pytest.mark.needs("identity", "compute", "network", "image"),
]


@pytest.mark.parametrize(
    ("action", "says", "button"),
    [
        ("stop_vm", "whatever is unsaved in them is lost", "Yes, stop them"),
        ("reboot_soft", "connections drop until they are back", "Yes, reboot them"),
        ("reboot_hard", "reset like a power cut", "Yes, hard reboot them"),
    ],
)
def test_a_power_action_on_many_vms_shows_what_happens_to_which_and_waits_for_a_yes(
    operator: Client, cast: Cast, tasks: Any, action: str, says: str, button: str
) -> None:
    first = running_vm(cast.soldier, cast.template, tasks)
    other = make_soldier()
    second = running_vm(other, cast.template, tasks)

    page = act(operator, "instance", action, [first.pk, second.pk])

    html = page.content.decode()
    assert page.status_code == 200
    assert says in html
    assert button in html
    for vm, owner in ((first, cast.soldier), (second, other)):
        assert vm.name in html
        assert str(owner) in html
    assert 'name="post" value="yes"' in html
    assert not Operation.objects.filter(kind=Operation.Kind.POWER).exists()

    confirm(operator, "instance", action, [first.pk, second.pk])
    assert Batch.objects.get().total == 2


def test_start_confirms_too_and_the_detail_pages_confirmation_comes_back_to_it(
    operator: Client, cast: Cast, tasks: Any
) -> None:
    vm = running_vm(cast.soldier, cast.template, tasks)
    url = reverse("admin:portal_instance_change", args=[vm.pk])
    page = operator.post(url, {"CHANGE_FORM-action": "stop_vm", "_selected_action": [vm.pk]})
    html = page.content.decode()
    assert "Yes, stop them" in html
    assert f'action="{url}"' in html  # posts back to the VM's page
    assert 'name="CHANGE_FORM-action" value="stop_vm"' in html
    assert not Operation.objects.filter(kind=Operation.Kind.POWER).exists()
    done = operator.post(
        url,
        {"CHANGE_FORM-action": "stop_vm", "_selected_action": [vm.pk], "post": "yes"},
        follow=True,
    )
    assert done.redirect_chain[-1][0] == url
    tasks()
    vm.refresh_from_db()
    assert vm.status == "SHUTOFF"

    page = act(operator, "instance", "start_vm", [vm.pk])
    assert "Yes, start them" in page.content.decode()
    assert Operation.objects.filter(kind=Operation.Kind.POWER).count() == 1


def test_the_password_reset_says_what_happens_to_which_soldiers_before_any_reset(
    operator: Client, cast: Cast, tasks: Any
) -> None:
    soldier, pending = onboarded(tasks), make_soldier()

    page = act(operator, "soldier", "reset_password", [soldier.pk, pending.pk])

    html = page.content.decode()
    assert page.status_code == 200
    assert "Their current password stops working at once" in html
    assert "Yes, reset their passwords" in html
    assert soldier.keystone_user_name in html
    assert "no cloud account yet" in html
    assert "cs-secret" not in html
    assert not Operation.objects.filter(kind=Operation.Kind.PASSWORD_RESET).exists()
    shown = confirm(operator, "soldier", "reset_password", [soldier.pk]).content.decode()
    assert "cs-secret" in shown


def test_a_soldiers_wrong_current_password_is_no_failed_operation_and_no_retry(
    operator: Client, cast: Cast, tasks: Any
) -> None:
    soldier = onboarded(tasks)
    services.soldier_password_reset(soldier=soldier, new_password="first-Pass-123-ok")
    typo = services.soldier_password_change(
        soldier=soldier, original_password="wrong-one", new_password="new-Pass-789-ok"
    )
    assert typo.message_text == "The current password is not correct."

    dashboard = operator.get(reverse("admin:index")).content.decode()
    assert services.console_dashboard().failed_operations_24h == 0
    assert '<p class="cs-number">0</p>' in dashboard.split("Failed operations, last 24 h")[1]
    failed = operator.get(changelist("operation") + "?state__exact=failed").content.decode()
    assert f"/operation/{typo.pk}/change/" not in failed
    retried = act(operator, "operation", "retry_failed", [typo.pk], follow=True)
    assert any("0 failed operations restarted" in m for m in messages_of(retried))
    typo.refresh_from_db()
    assert typo.state == Operation.State.REFUSED
