"""Every console action over HTTP against the cloud: what it starts, and what it refuses.

One row starts one operation and comes back to the page; several rows share a batch and land on
the batch page. Destructive actions show what they will delete, release and keep first.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from portal import services
from portal.models import (
    Batch,
    Drift,
    FloatingIP,
    Operation,
    ProjectNetwork,
    Soldier,
    VmTemplate,
    seoul_today,
)
from portal.openstack import OpenStackClient, ServerStatus
from tests.console.support import act, confirm, messages_of, onboarded, running_vm
from tests.integration.conftest import Cast, PortalCloud, make_soldier

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.cloud,
    pytest.mark.needs("identity", "compute", "network", "image"),
]


def batch_page(batch: Batch) -> str:
    return reverse("admin:portal_batch_change", args=[batch.pk])


def test_onboarding_several_soldiers_runs_one_batch_and_lands_on_its_page(
    operator: Client, cast: Cast, tasks: Any
) -> None:
    soldiers = [make_soldier(), make_soldier()]
    response = act(operator, "soldier", "onboard", [s.pk for s in soldiers])
    batch = Batch.objects.get()
    assert response.status_code == 302
    assert response["Location"] == batch_page(batch)
    assert (batch.kind, batch.total) == (Operation.Kind.ONBOARD, 2)
    tasks()
    batch.refresh_from_db()
    assert (batch.succeeded, batch.failed) == (2, 0)
    assert batch.finished_at is not None
    for soldier in soldiers:
        soldier.refresh_from_db()
        assert soldier.state == Soldier.State.ACTIVE
    assert "2 operations started in batch" in operator.get(batch_page(batch)).content.decode()
    assert "2 operations started" not in operator.get(batch_page(batch)).content.decode()


def test_power_actions_on_one_vm_run_one_operation_each_without_a_batch(
    operator: Client, cast: Cast, tasks: Any
) -> None:
    vm = running_vm(cast.soldier, cast.template, tasks)
    for action, status in (
        ("stop_vm", "SHUTOFF"),
        ("start_vm", "ACTIVE"),
        ("reboot_soft", "ACTIVE"),
        ("reboot_hard", "ACTIVE"),
    ):
        response = confirm(operator, "instance", action, [vm.pk])
        assert response.status_code == 302
        assert response["Location"] == reverse("admin:portal_instance_changelist")
        tasks()
        vm.refresh_from_db()
        assert vm.status == status, (action, vm.last_error)
    power = Operation.objects.filter(kind=Operation.Kind.POWER, instance=vm)
    assert [op.state for op in power] == [Operation.State.SUCCEEDED] * 4
    assert not Batch.objects.exists()


def test_an_action_from_the_detail_page_comes_back_to_it(
    operator: Client, cast: Cast, tasks: Any
) -> None:
    vm = running_vm(cast.soldier, cast.template, tasks)
    url = reverse("admin:portal_instance_change", args=[vm.pk])
    response = operator.post(
        url,
        {"CHANGE_FORM-action": "stop_vm", "_selected_action": [str(vm.pk)], "post": "yes"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == url
    assert any("Started" in m for m in messages_of(response))
    tasks()
    page = operator.get(url).content.decode()
    vm.refresh_from_db()
    assert vm.status == "SHUTOFF"
    assert "The power action finished." in page  # the operation, newest first, on the page


def test_a_power_action_the_state_forbids_is_refused_with_a_reason_and_no_operation(
    operator: Client, cast: Cast, tasks: Any
) -> None:
    vm = running_vm(cast.soldier, cast.template, tasks)
    before = Operation.objects.count()
    response = confirm(operator, "instance", "start_vm", [vm.pk], follow=True)
    assert any("not possible while the VM is ACTIVE" in m for m in messages_of(response))
    assert Operation.objects.count() == before


def test_several_vms_share_a_batch_and_a_refused_row_is_said_and_skipped(
    operator: Client, cast: Cast, tasks: Any
) -> None:
    first = running_vm(cast.soldier, cast.template, tasks)
    second = running_vm(make_soldier(), cast.template, tasks)
    confirm(operator, "instance", "stop_vm", [second.pk])
    tasks()
    response = confirm(operator, "instance", "stop_vm", [first.pk, second.pk], follow=True)
    batch = Batch.objects.get()
    assert batch.total == 1
    assert any("not possible while the VM is SHUTOFF" in m for m in messages_of(response))
    assert any("1 row was refused" in m for m in messages_of(response))
    tasks()
    first.refresh_from_db()
    assert first.status == "SHUTOFF"


def test_the_delete_page_lists_servers_released_and_kept_floating_ips_before_acting(
    operator: Client, cast: Cast, tasks: Any, admin: OpenStackClient
) -> None:
    vm = running_vm(cast.soldier, cast.template, tasks)
    owned = FloatingIP.objects.get(instance=vm, created_by_portal=True)
    kept = FloatingIP.objects.create(
        neutron_id="attached-by-hand", address="198.51.100.7", instance=vm, created_by_portal=False
    )
    page = act(operator, "instance", "delete_vm", [vm.pk])
    html = page.content.decode()
    assert page.status_code == 200
    assert not Operation.objects.filter(kind=Operation.Kind.DELETE).exists()
    released_part, kept_part = html.split("will be released")[1].split("will be kept")
    assert vm.name in html
    assert str(vm.server_id) in html
    assert owned.address in released_part
    assert kept.address in kept_part
    assert owned.address not in kept_part
    assert 'name="post" value="yes"' in html

    response = confirm(operator, "instance", "delete_vm", [vm.pk])
    assert response.status_code == 302
    tasks()
    vm.refresh_from_db()
    assert vm.status == "DELETED"
    assert not admin.list_floating_ips(floating_ip_address=owned.address)
    kept.refresh_from_db()
    assert kept.released_at is None  # the portal never releases what it did not create


def test_disabling_a_soldier_deletes_their_vms_locks_the_account_and_keeps_the_network(
    operator: Client, cast: Cast, tasks: Any, admin: OpenStackClient
) -> None:
    vm = running_vm(cast.soldier, cast.template, tasks)
    soldier = Soldier.objects.get(pk=cast.soldier.pk)
    page = act(operator, "soldier", "disable_soldier", [soldier.pk]).content.decode()
    assert vm.name in page
    assert vm.floating_ip in page.split("will be released")[1]
    assert Operation.objects.filter(kind=Operation.Kind.DISABLE).count() == 0

    confirm(operator, "soldier", "disable_soldier", [soldier.pk])
    tasks()
    soldier.refresh_from_db()
    vm.refresh_from_db()
    assert soldier.state == Soldier.State.DISABLED
    assert vm.status == "DELETED"
    assert not admin.get_user(soldier.keystone_user_id).enabled
    network = ProjectNetwork.objects.get(project__soldier=soldier)
    assert network.removed_at is None
    assert admin.get_network(network.network_id).id == network.network_id

    again = act(operator, "soldier", "disable_soldier", [soldier.pk])
    confirmed = confirm(operator, "soldier", "disable_soldier", [soldier.pk], follow=True)
    assert again.status_code == 200
    assert any("already disabled" in m for m in messages_of(confirmed))


def numbered_steps(page: str) -> list[str]:
    """The steps of a confirmation page's ordered list, as text, in their order."""
    listing = re.search(r'<ol class="cs-steps">(.*?)</ol>', page, re.S)
    assert listing is not None, "no numbered steps on the page"
    return [
        re.sub(r"<[^>]+>|\s+", " ", s).strip()
        for s in re.findall(r"<li>(.*?)</li>", listing[1], re.S)
    ]


@pytest.mark.parametrize("action", ["disable_soldier", "discharge_now"])
def test_the_teardown_page_says_what_happens_in_which_order(
    operator: Client, cast: Cast, tasks: Any, action: str
) -> None:
    soldier = onboarded(tasks)
    page = act(operator, "soldier", action, [soldier.pk]).content.decode()
    steps = numbered_steps(page)
    assert steps[0].startswith("Their cloud account is disabled and their portal sessions end")
    assert steps[1].startswith("Every VM below is deleted")
    assert steps[-1].startswith("The soldier is recorded as disabled")
    if action == "discharge_now":
        assert len(steps) == 4
        assert steps[2].startswith("The network the portal made for their project is removed")
    else:
        assert len(steps) == 3
        assert "project and network stay" in steps[-1]
    assert "If a VM cannot be deleted" in page
    assert "the account stays disabled" in page


def test_discharge_now_lists_the_network_it_removes_and_removes_it(
    operator: Client, cast: Cast, tasks: Any, admin: OpenStackClient
) -> None:
    soldier = onboarded(tasks)
    network = ProjectNetwork.objects.get(project__soldier=soldier)
    page = act(operator, "soldier", "discharge_now", [soldier.pk]).content.decode()
    assert network.network_id in page
    assert network.router_id in page
    confirm(operator, "soldier", "discharge_now", [soldier.pk])
    tasks()
    soldier.refresh_from_db()
    network.refresh_from_db()
    assert soldier.state == Soldier.State.DISABLED
    assert network.removed_at is not None
    assert not admin.list_networks(name=f"{soldier.project.name}-net")


def test_postponing_the_discharge_asks_for_a_date_and_refuses_a_past_one(
    operator: Client, db: Any
) -> None:
    soldier = make_soldier(discharge_on=seoul_today() + timedelta(days=3))
    form = act(operator, "soldier", "postpone_discharge", [soldier.pk]).content.decode()
    assert 'type="date"' in form
    assert (seoul_today() + timedelta(days=33)).isoformat() in form  # 30 days after it ends

    past = (seoul_today() - timedelta(days=1)).isoformat()
    refused = confirm(operator, "soldier", "postpone_discharge", [soldier.pk], until=past)
    assert refused.status_code == 200
    assert "must not be in the past" in refused.content.decode()
    soldier.refresh_from_db()
    assert soldier.discharge_postponed_until is None

    until = seoul_today() + timedelta(days=60)
    done = confirm(
        operator,
        "soldier",
        "postpone_discharge",
        [soldier.pk],
        until=until.isoformat(),
        follow=True,
    )
    soldier.refresh_from_db()
    assert soldier.discharge_postponed_until == until
    assert any("kept until" in m for m in messages_of(done))


def test_sync_now_reads_a_change_made_outside_the_portal(
    operator: Client, cast: Cast, tasks: Any, admin: OpenStackClient
) -> None:
    vm = running_vm(cast.soldier, cast.template, tasks)
    admin.stop_server(vm.server_id or "")
    admin.wait_for_server(vm.server_id or "", status=ServerStatus.SHUTOFF, timeout=30, interval=0.1)
    act(operator, "instance", "sync_vm", [vm.pk])
    tasks()
    vm.refresh_from_db()
    assert vm.status == "SHUTOFF"
    assert Operation.objects.get(kind=Operation.Kind.SYNC).state == Operation.State.SUCCEEDED


def test_sync_now_of_a_server_deleted_outside_records_it_gone_and_as_drift(
    operator: Client, cast: Cast, tasks: Any, admin: OpenStackClient
) -> None:
    vm = running_vm(cast.soldier, cast.template, tasks)
    admin.delete_server(vm.server_id or "")
    admin.wait_for_server(vm.server_id or "", gone=True, timeout=30, interval=0.1)
    act(operator, "soldier", "sync_now", [cast.soldier.pk])
    tasks()
    vm.refresh_from_db()
    assert vm.status == "DELETED"
    assert vm.deleted_outside_portal
    assert Drift.objects.filter(kind=Drift.Kind.DELETED_OUTSIDE, resource_id=vm.server_id).exists()
    refused = act(operator, "instance", "sync_vm", [vm.pk], follow=True)
    assert any("nothing to sync" in m for m in messages_of(refused))


def test_retry_restarts_a_failed_launch_from_its_step(
    devcloud: Any, operator: Client, cast: Cast, tasks: Any, portal_cloud: PortalCloud
) -> None:
    fault = portal_cloud.faults.add(method="POST", path="/compute/v2.1/servers$", status=503)
    instance = services.instance_launch(soldier=cast.soldier, template=cast.template)
    tasks()
    op = Operation.objects.get(kind=Operation.Kind.LAUNCH, instance=instance)
    assert op.state == Operation.State.FAILED
    assert "did not answer" in op.message_text
    portal_cloud.faults.remove(fault)

    act(operator, "instance", "retry_failed", [instance.pk])
    tasks()
    op.refresh_from_db()
    instance.refresh_from_db()
    assert op.state == Operation.State.SUCCEEDED
    assert instance.status == "ACTIVE"


def test_a_cloud_5xx_on_a_power_action_fails_it_with_the_clouds_words_on_the_batch_page(
    devcloud: Any, operator: Client, cast: Cast, tasks: Any, portal_cloud: PortalCloud
) -> None:
    first = running_vm(cast.soldier, cast.template, tasks)
    second = running_vm(make_soldier(), cast.template, tasks)
    portal_cloud.faults.add(method="POST", path="/action$", status=503)
    confirm(operator, "instance", "stop_vm", [first.pk, second.pk])
    tasks()
    batch = Batch.objects.get()
    assert (batch.failed, batch.succeeded) == (2, 0)
    page = operator.get(batch_page(batch)).content.decode()
    op = Operation.objects.filter(batch=batch).first()
    assert op is not None
    assert "did not answer after" in page
    assert op.request_ids[-1] in page


def test_a_409_task_state_conflict_fails_with_its_reason_and_request_id(
    devcloud: Any, operator: Client, cast: Cast, tasks: Any, portal_cloud: PortalCloud
) -> None:
    vm = running_vm(cast.soldier, cast.template, tasks)
    portal_cloud.faults.add(
        method="POST",
        path="/action$",
        status=409,
        count=1,
        message="Cannot 'stop' instance while it is in task_state powering-off",
    )
    confirm(operator, "instance", "stop_vm", [vm.pk])
    tasks()
    op = Operation.objects.get(kind=Operation.Kind.POWER, instance=vm)
    assert op.state == Operation.State.FAILED
    page = operator.get(reverse("admin:portal_instance_change", args=[vm.pk])).content.decode()
    assert "task_state powering-off" in page
    assert op.request_ids[0] in page
    assert "cs-tone-red" in page  # the merged status shows the failed action


def test_a_template_is_made_from_the_clouds_own_image_and_flavor_lists(
    operator: Client, cast: Cast, admin: OpenStackClient
) -> None:
    url = reverse("admin:portal_vmtemplate_from_cloud")
    assert url in operator.get(reverse("admin:portal_vmtemplate_changelist")).content.decode()
    image = admin.list_images()[0]
    flavor = max(admin.list_flavors()[:5], key=lambda f: f.disk_gib)
    form = operator.get(url).content.decode()
    assert f'<option value="{image.name}"' in form
    assert f'<option value="{flavor.name}"' in form
    response = operator.post(url, {"name": "large", "image": image.name, "flavor": flavor.name})
    template = VmTemplate.objects.get(name="large")
    assert response["Location"] == reverse("admin:portal_vmtemplate_change", args=[template.pk])
    assert (template.image_id, template.flavor_id) == (image.id, flavor.id)


def test_sync_everything_starts_one_reconcile_and_viewers_cannot(
    operator: Client, viewer: Client, cast: Cast, tasks: Any
) -> None:
    url = reverse("admin:portal_sync")
    assert viewer.post(url).status_code == 403
    assert url in operator.get(reverse("admin:portal_status")).content.decode()
    response = operator.post(url, {"next": reverse("admin:portal_drift_changelist")})
    assert response["Location"] == reverse("admin:portal_drift_changelist")
    again = operator.post(url, follow=True)
    assert any("in progress" in m for m in messages_of(again))
    tasks()
    (op,) = Operation.objects.filter(kind=Operation.Kind.RECONCILE)
    assert op.state == Operation.State.SUCCEEDED
    assert op.requested_by is not None
