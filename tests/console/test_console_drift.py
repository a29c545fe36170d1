"""The drift page: each kind the reconciler records, each fix as an operation, and "ignore"."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from portal import services
from portal.models import Drift, FloatingIP, Instance, Operation
from portal.openstack import NotFound, OpenStackClient, ServerStatus
from portal.services.onboarding import external_network_id
from tests.console.support import changelist, messages_of, onboarded, running_vm
from tests.integration.conftest import Cast, make_soldier, unique

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.cloud,
    pytest.mark.needs("identity", "compute", "network", "image"),
]


def reconcile() -> None:
    op = services.cloud_reconcile(run_now=True)
    assert op.state == Operation.State.SUCCEEDED, op.message_text


def fix_url(drift: Drift, fix: str) -> str:
    return reverse("admin:portal_drift_fix", args=[drift.pk, fix])


def drift_page(client: Client, query: str = "") -> str:
    return client.get(changelist("drift") + query).content.decode()


def unowned_server(admin: OpenStackClient, cast: Cast) -> str:
    """A server in the admin project: no soldier's, so reconcile reports it."""
    private = admin.list_networks(name="private")[0]
    server_id = admin.create_server(
        name=unique("stray"),
        image_id=cast.template.image_id,
        flavor_id=cast.template.flavor_id,
        network_ids=[private.id],
    )
    admin.wait_for_server(server_id, status=ServerStatus.ACTIVE, timeout=30, interval=0.1)
    return server_id


def test_a_portal_floating_ip_without_a_server_is_released_with_one_click(
    operator: Client, cast: Cast, tasks: Any, admin: OpenStackClient
) -> None:
    fip = admin.create_floating_ip(floating_network_id=external_network_id(admin))
    FloatingIP.objects.create(
        neutron_id=fip.id, address=fip.floating_ip_address, created_by_portal=True
    )
    reconcile()
    drift = Drift.objects.get(kind=Drift.Kind.ORPHAN_FLOATING_IP, resource_id=fip.id)
    assert f'formaction="{fix_url(drift, "release_ip")}"' in drift_page(operator, f"?q={fip.id}")

    operator.post(fix_url(drift, "release_ip"))
    tasks()
    drift.refresh_from_db()
    assert drift.resolved_at is not None
    assert not admin.list_floating_ips(floating_ip_address=fip.floating_ip_address)
    assert FloatingIP.objects.get(neutron_id=fip.id).released_at is not None


def test_a_floating_ip_the_portal_did_not_create_is_never_released_whatever_its_description(
    operator: Client, cast: Cast, tasks: Any, admin: OpenStackClient
) -> None:
    fip = admin.create_floating_ip(
        floating_network_id=external_network_id(admin), description="codesquare:looks-like-ours"
    )
    FloatingIP.objects.create(
        neutron_id=fip.id, address=fip.floating_ip_address, created_by_portal=False
    )
    drift = Drift.objects.create(kind=Drift.Kind.ORPHAN_FLOATING_IP, resource_id=fip.id)
    page = drift_page(operator)
    assert "not created by the portal" in page
    assert fix_url(drift, "release_ip") not in page
    response = operator.post(fix_url(drift, "release_ip"), follow=True)
    assert any("did not create this floating IP" in m for m in messages_of(response))
    tasks()
    assert not Operation.objects.filter(kind=Operation.Kind.DRIFT_RELEASE_IP).exists()
    assert admin.get_floating_ip(fip.id).id == fip.id
    admin.delete_floating_ip(fip.id)


def test_an_unknown_server_is_adopted_for_a_chosen_soldier(
    operator: Client, cast: Cast, tasks: Any, admin: OpenStackClient
) -> None:
    server_id = unowned_server(admin, cast)
    reconcile()
    drift = Drift.objects.get(kind=Drift.Kind.UNOWNED_SERVER, resource_id=server_id)
    choice = operator.get(fix_url(drift, "adopt")).content.decode()
    assert 'name="soldier"' in choice
    assert "did not create this server" in choice

    refused = operator.post(fix_url(drift, "adopt"), {"soldier": ""})
    assert refused.status_code == 200  # the form asks again; nothing starts
    assert not Operation.objects.filter(kind=Operation.Kind.DRIFT_ADOPT).exists()

    operator.post(fix_url(drift, "adopt"), {"soldier": cast.soldier.pk})
    tasks()
    instance = Instance.objects.get(server_id=server_id)
    assert instance.owner == cast.soldier
    assert instance.status == "ACTIVE"
    drift.refresh_from_db()
    assert drift.resolved_at is not None
    reconcile()
    assert not Drift.objects.filter(resource_id=server_id, resolved_at__isnull=True).exists()
    admin.delete_server(server_id)


def test_a_server_made_in_a_soldiers_project_is_drift_with_its_fixes_not_a_silent_vm(
    operator: Client, cast: Cast, tasks: Any, admin: OpenStackClient
) -> None:
    # Issue 18 point 6: the soldier's own CLI made it; the portal must not call it his VM.
    soldier = onboarded(tasks)
    project = soldier.project
    server_id = admin.for_project(project.keystone_id).create_server(
        name="my-second-vm",
        image_id=cast.template.image_id,
        flavor_id=cast.template.flavor_id,
        network_ids=[project.network_id],
    )
    admin.wait_for_server(server_id, status=ServerStatus.ACTIVE, timeout=30, interval=0.1)
    reconcile()
    assert not Instance.objects.filter(server_id=server_id).exists()
    drift = Drift.objects.get(kind=Drift.Kind.FOREIGN_SERVER, resource_id=server_id)
    page = drift_page(operator, f"?q={server_id}")
    assert "Server in a soldier project, not made by the portal" in page
    assert f"{fix_url(drift, 'adopt')}?soldier={soldier.pk}" in page  # his, proposed
    assert f'href="{fix_url(drift, "delete_server")}"' in page

    operator.post(fix_url(drift, "adopt"), {"soldier": soldier.pk})
    tasks()
    assert Instance.objects.get(server_id=server_id).owner == soldier
    drift.refresh_from_db()
    assert drift.resolved_at is not None
    admin.delete_server(server_id)


def test_deleting_a_server_the_portal_did_not_create_goes_through_a_page_that_says_so(
    operator: Client, cast: Cast, tasks: Any, admin: OpenStackClient
) -> None:
    server_id = unowned_server(admin, cast)
    reconcile()
    drift = Drift.objects.get(kind=Drift.Kind.UNOWNED_SERVER, resource_id=server_id)
    # (Searched: the session's shared cloud holds other tests' drift too, over a page of it.)
    page = drift_page(operator, f"?q={server_id}")
    assert f'href="{fix_url(drift, "delete_server")}"' in page  # a link to a page, no button
    assert f'formaction="{fix_url(drift, "delete_server")}"' not in page
    confirmation = operator.get(fix_url(drift, "delete_server")).content.decode()
    assert "The portal did not create this server." in confirmation
    assert "Yes, delete the server" in confirmation

    operator.post(fix_url(drift, "delete_server"))
    tasks()
    with pytest.raises(NotFound):
        admin.get_server(server_id)
    drift.refresh_from_db()
    assert drift.resolved_at is not None


def test_a_vm_deleted_outside_is_recorded_as_deleted_after_reconcile_released_its_ip(
    operator: Client, cast: Cast, tasks: Any, admin: OpenStackClient
) -> None:
    vm = running_vm(cast.soldier, cast.template, tasks)
    address = vm.floating_ip
    admin.delete_server(vm.server_id or "")
    admin.wait_for_server(vm.server_id or "", gone=True, timeout=30, interval=0.1)
    reconcile()
    drift = Drift.objects.get(kind=Drift.Kind.DELETED_OUTSIDE, resource_id=vm.server_id)
    # Reconcile released the portal's floating IP of the vanished server by itself.
    assert not admin.list_floating_ips(floating_ip_address=address)
    operator.post(fix_url(drift, "mark_terminated"))
    tasks()
    vm.refresh_from_db()
    drift.refresh_from_db()
    assert vm.status == "DELETED"
    assert not vm.deleted_outside_portal
    assert drift.resolved_at is not None
    assert not admin.list_floating_ips(floating_ip_address=address)


def test_a_keystone_user_without_a_soldier_is_found_and_linked_to_the_soldier_of_its_name(
    operator: Client, cast: Cast, tasks: Any, admin: OpenStackClient
) -> None:
    name = unique("lost")
    user = admin.create_user(name=name, domain_id="default", password=secrets.token_urlsafe(12))
    reconcile()
    drift = Drift.objects.get(kind=Drift.Kind.USER_WITHOUT_SOLDIER, resource_id=user.id)
    # The cloud's own users (the portal's, administrators', services') are not drift.
    own = {admin.token().user_id, *(u.id for u in admin.list_users(name="nova"))}
    assert not Drift.objects.filter(
        kind=Drift.Kind.USER_WITHOUT_SOLDIER, resource_id__in=own
    ).exists()

    soldier = make_soldier(name, keystone_user_name=name)
    url = f"{fix_url(drift, 'link_user')}?soldier={soldier.pk}"
    assert f'formaction="{url}"' in drift_page(operator, f"?q={user.id}")  # one click
    operator.post(url)
    tasks()
    soldier.refresh_from_db()
    drift.refresh_from_db()
    assert soldier.keystone_user_id == user.id
    assert drift.resolved_at is not None
    reconcile()
    assert not Drift.objects.filter(resource_id=user.id, resolved_at__isnull=True).exists()


def test_a_keystone_user_nobody_claims_can_be_disabled_after_a_page_that_says_so(
    operator: Client, cast: Cast, tasks: Any, admin: OpenStackClient
) -> None:
    user = admin.create_user(
        name=unique("stray"), domain_id="default", password=secrets.token_urlsafe(12)
    )
    reconcile()
    drift = Drift.objects.get(kind=Drift.Kind.USER_WITHOUT_SOLDIER, resource_id=user.id)
    page = operator.get(fix_url(drift, "disable_user")).content.decode()
    assert "did not create this user" in page
    operator.post(fix_url(drift, "disable_user"))
    tasks()
    assert not admin.get_user(user.id).enabled
    drift.refresh_from_db()
    assert drift.resolved_at is not None


def test_ignored_drift_leaves_the_open_list_and_shows_under_ignored(
    operator: Client, viewer: Client, db: Any
) -> None:
    drift = Drift.objects.create(kind=Drift.Kind.UNOWNED_SERVER, resource_id=unique("srv"))
    assert drift.resource_id in drift_page(operator)
    assert fix_url(drift, "ignore") not in drift_page(viewer)  # viewers get no buttons
    operator.post(fix_url(drift, "ignore"), follow=True)  # (its message names the row)
    drift.refresh_from_db()
    assert drift.ignored_at is not None
    assert drift.resource_id not in drift_page(operator)
    assert drift.resource_id in drift_page(operator, "?state=ignored")
    assert not Operation.objects.exists()


def test_a_fix_that_does_not_fit_the_kind_is_404(operator: Client, db: Any) -> None:
    drift = Drift.objects.create(kind=Drift.Kind.DELETED_OUTSIDE, resource_id=unique("srv"))
    assert operator.post(fix_url(drift, "delete_server")).status_code == 404
    assert operator.get(fix_url(drift, "adopt")).status_code == 404
    assert not Operation.objects.exists()
