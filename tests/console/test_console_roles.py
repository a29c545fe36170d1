"""Who may act: operators run actions, viewers only look, soldiers never reach the console,
and nobody edits the engine's rows or fields by hand."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from portal.models import Batch, Drift, FloatingIP, Instance, Operation, Project, Soldier
from tests.console.support import act, changelist, confirm, form_fields
from tests.integration.conftest import make_soldier, unique

pytestmark = pytest.mark.django_db


def a_vm(**fields: Any) -> Instance:
    soldier = make_soldier()
    project = Project.objects.create(soldier=soldier, name=f"cs-{soldier.keystone_user_name}")
    return Instance.objects.create(
        project=project,
        owner=soldier,
        name=unique("vm"),
        server_id=unique("srv"),
        status="ACTIVE",
        power_state=1,
        **fields,
    )


def test_the_migration_gives_operators_every_action_and_viewers_none() -> None:
    def codenames(group: str) -> set[str]:
        permissions = Group.objects.get(name=group).permissions
        return set(permissions.values_list("codename", flat=True))

    operators, viewers = codenames("operators"), codenames("viewers")
    assert "operate_cloud" in operators
    assert "operate_cloud" not in viewers
    assert {"view_instance", "view_operation", "view_drift", "view_batch"} <= viewers
    assert not {p for p in viewers if not p.startswith("view_")}
    # Nobody may add or change mirror rows, not even operators.
    assert not {"add_instance", "change_instance", "change_operation", "change_drift"} & operators


@pytest.mark.parametrize(
    ("model", "action"),
    [
        ("instance", "start_vm"),
        ("instance", "delete_vm"),
        ("soldier", "onboard"),
        ("soldier", "reset_password"),
        ("soldier", "discharge_now"),
        ("drift", "ignore_drift"),
        ("batch", "cancel_not_started"),
    ],
)
def test_a_viewer_posting_an_action_gets_403_and_no_operation(
    viewer: Client, model: str, action: str
) -> None:
    vm = a_vm()
    target = {
        "instance": vm.pk,
        "soldier": vm.owner.pk,
        "drift": Drift.objects.create(kind=Drift.Kind.UNOWNED_SERVER, resource_id="x").pk,
        "batch": Batch.objects.create(kind="start").pk,
    }[model]
    assert act(viewer, model, action, [target]).status_code == 403
    assert confirm(viewer, model, action, [target]).status_code == 403
    assert not Operation.objects.exists()
    assert Drift.objects.filter(ignored_at__isnull=False).count() == 0


def test_a_viewer_posting_a_detail_page_action_gets_403(viewer: Client) -> None:
    vm = a_vm()
    url = reverse("admin:portal_instance_change", args=[vm.pk])
    response = viewer.post(url, {"CHANGE_FORM-action": "stop_vm", "_selected_action": [str(vm.pk)]})
    assert response.status_code == 403
    assert not Operation.objects.exists()


def test_viewers_see_no_actions_and_operators_see_them(viewer: Client, operator: Client) -> None:
    vm = a_vm()
    for url in (changelist("instance"), reverse("admin:portal_instance_change", args=[vm.pk])):
        assert 'name="action"' not in viewer.get(url).content.decode()
        assert "CHANGE_FORM-action" not in viewer.get(url).content.decode()
    listing = operator.get(changelist("instance")).content.decode()
    assert 'value="start_vm"' in listing
    assert 'value="delete_vm"' in listing
    detail = operator.get(reverse("admin:portal_instance_change", args=[vm.pk])).content.decode()
    assert 'name="CHANGE_FORM-action"' in detail
    assert 'value="reboot_hard"' in detail


def test_custom_pages_refuse_a_viewers_post(viewer: Client) -> None:
    batch = Batch.objects.create(kind="start")
    drift = Drift.objects.create(kind=Drift.Kind.DELETED_OUTSIDE, resource_id="gone")
    for url in (
        reverse("admin:portal_batch_retry", args=[batch.pk]),
        reverse("admin:portal_batch_cancel", args=[batch.pk]),
        reverse("admin:portal_drift_fix", args=[drift.pk, "mark_terminated"]),
        reverse("admin:portal_drift_fix", args=[drift.pk, "ignore"]),
        reverse("admin:portal_capacity"),
    ):
        assert viewer.post(url).status_code == 403, url
    drift.refresh_from_db()
    assert drift.ignored_at is None
    assert not Operation.objects.exists()


def test_soldiers_never_reach_the_console(client: Client) -> None:
    soldier = make_soldier()
    client.force_login(soldier.user)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]
    assert client.get(changelist("instance")).status_code == 302


@pytest.mark.parametrize(
    "model", ["instance", "floatingip", "operation", "batch", "drift", "project"]
)
def test_mirror_rows_cannot_be_added_or_edited_by_hand(operator: Client, model: str) -> None:
    vm = a_vm()
    row = {
        "instance": vm,
        "floatingip": FloatingIP.objects.create(neutron_id="f", address="1.2.3.4", instance=vm),
        "operation": Operation.objects.create(kind=Operation.Kind.SYNC, instance=vm),
        "batch": Batch.objects.create(kind="sync"),
        "drift": Drift.objects.create(kind=Drift.Kind.UNOWNED_SERVER, resource_id="s"),
        "project": vm.project,
    }[model]
    assert operator.get(reverse(f"admin:portal_{model}_add")).status_code == 403
    change = reverse(f"admin:portal_{model}_change", args=[row.pk])
    if model != "batch":  # the batch page is its change view
        page = operator.get(change).content.decode()
        assert 'name="_save"' not in page
    assert operator.post(change, {"server_id": "another-server", "_save": "1"}).status_code == 403


def test_an_edited_server_id_never_reaches_the_database(operator: Client) -> None:
    vm = a_vm()
    page = operator.get(reverse("admin:portal_instance_change", args=[vm.pk])).content.decode()
    assert 'name="server_id"' not in page  # shown as text only
    operator.post(
        reverse("admin:portal_instance_change", args=[vm.pk]),
        {"server_id": "someone-elses-server", "created_by_portal": "on", "_save": "1"},
    )
    vm.refresh_from_db()
    assert vm.server_id != "someone-elses-server"


def test_engine_fields_of_a_soldier_are_read_only_but_their_name_can_be_fixed(
    operator: Client,
) -> None:
    soldier = make_soldier(keystone_user_id="kid-1", state=Soldier.State.ACTIVE)
    url = reverse("admin:portal_soldier_change", args=[soldier.pk])
    page = operator.get(url).content.decode()
    for field in ("keystone_user_id", "state", "keystone_user_name", "discharge_postponed_until"):
        assert f'name="{field}"' not in page, field
    response = operator.post(
        url,
        {
            **form_fields(page),
            "service_number": soldier.service_number,
            "name": "새 이름",
            "unit": "7사단",
            "keystone_user_id": "someone-else",
            "state": "disabled",
            "_save": "1",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    soldier.refresh_from_db()
    assert (soldier.name, soldier.unit) == ("새 이름", "7사단")
    assert (soldier.keystone_user_id, soldier.state) == ("kid-1", Soldier.State.ACTIVE)


def test_an_operator_adds_a_soldier_with_a_login_of_the_cloud_name(operator: Client) -> None:
    name = unique("newbie")
    response = operator.post(
        reverse("admin:portal_soldier_add"),
        {
            "service_number": f"SN-{name}",
            "name": "신병",
            "unit": "1사단",
            "keystone_user_name": name,
            "_save": "1",
        },
    )
    assert response.status_code == 302
    soldier = Soldier.objects.get(keystone_user_name=name)
    assert soldier.user.username == name
    assert not soldier.user.has_usable_password()
    assert soldier.state == Soldier.State.PENDING
    again = operator.post(
        reverse("admin:portal_soldier_add"),
        {"service_number": "SN-other", "name": "x", "keystone_user_name": name, "_save": "1"},
    )
    assert again.status_code == 200  # the form says the name is taken
    assert Soldier.objects.filter(keystone_user_name=name).count() == 1


def test_viewers_cannot_add_soldiers_or_templates(viewer: Client) -> None:
    assert viewer.get(reverse("admin:portal_soldier_add")).status_code == 403
    assert viewer.get(reverse("admin:portal_vmtemplate_add")).status_code == 403
