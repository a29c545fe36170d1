"""Reconcile never declares a live server deleted (issue 9, point 1).

Only mirrors that had their server before the listing began are judged; a server is declared
gone only after the cloud answers 404 for it; a mirror marked gone comes back with its server;
and a listing that breaks off, or a compute microversion that hides down cells, judges nothing.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.utils import timezone

from portal import cloud, services
from portal.models import Drift, FloatingIP, Instance, Operation, ServerStatus
from portal.openstack import OpenStackClient
from portal.openstack.transport import Exchange, observe_exchanges
from portal.services.instances import remember_floating_ip
from tests.integration.conftest import Cast, PortalCloud, active_vm, unique

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.cloud,
    pytest.mark.needs("identity", "compute", "network", "image"),
]


def reconcile() -> Operation:
    op = services.cloud_reconcile(run_now=True)
    assert op.state == Operation.State.SUCCEEDED, op.message_text
    return op


def test_a_launch_that_records_its_server_during_the_listing_is_not_declared_deleted(
    cast: Cast, tasks: Any, admin: OpenStackClient
) -> None:
    first = active_vm(cast, tasks)  # the soldier is onboarded; its project has a network
    project = first.project
    other = cloud.build_client()  # a second process's client: the "launch" that finishes
    made: dict[str, Instance] = {}

    def launch_finishes_meanwhile(exchange: Exchange) -> None:
        # Right after the pass's listing came back, before it reads the mirrors: a launch
        # creates its server and records it (its pending action already cleared).
        if made or exchange.method != "GET" or not exchange.path.endswith("/servers/detail"):
            return
        made["started"] = first
        server_id = other.for_project(project.keystone_id).create_server(
            name=unique("late"),
            image_id=first.image_id,
            flavor_id=first.flavor_id,
            network_ids=[project.network_id],
        )
        made["late"] = Instance.objects.create(
            project=project,
            owner=first.owner,
            name="late",
            server_id=server_id,
            status=ServerStatus.BUILD,
        )

    with observe_exchanges(launch_finishes_meanwhile):
        reconcile()

    assert "late" in made, "the listing was never observed"
    late = Instance.objects.get(pk=made["late"].pk)
    assert late.status != ServerStatus.DELETED
    assert not late.deleted_outside_portal
    assert not Drift.objects.filter(kind=Drift.Kind.DELETED_OUTSIDE).exists()
    # The next pass sees it in its listing and mirrors it (whatever its build came to).
    reconcile()
    late.refresh_from_db()
    assert late.status not in ("", ServerStatus.DELETED)
    assert late.last_synced_at is not None
    admin.delete_server(late.server_id or "")


def test_a_mirror_marked_gone_comes_back_when_its_server_reappears(cast: Cast, tasks: Any) -> None:
    instance = active_vm(cast, tasks)
    # As an earlier, mistaken pass left it (the bug this guards against).
    Instance.objects.filter(pk=instance.pk).update(
        status=ServerStatus.DELETED, deleted_outside_portal=True, power_state=None
    )
    Drift.objects.create(
        kind=Drift.Kind.DELETED_OUTSIDE, resource_id=instance.server_id or "", detail="x"
    )

    op = reconcile()

    instance.refresh_from_db()
    assert instance.status == ServerStatus.ACTIVE
    assert not instance.deleted_outside_portal
    assert op.progress["stats"]["revived"] == 1
    assert Drift.objects.get(resource_id=instance.server_id).resolved_at is not None
    # ... and the portal can delete it again, leaving nothing behind.
    delete = services.instance_delete(instance=instance)
    tasks()
    delete.refresh_from_db()
    assert delete.state == Operation.State.SUCCEEDED, delete.message_text


@pytest.fixture
def capped_microversion(
    portal_cloud: PortalCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The portal's client limited to compute 2.60, below the 2.69 that shows down cells."""
    config = yaml.safe_load(portal_cloud.clouds_yaml.read_text())
    config["clouds"][portal_cloud.cloud_name]["compute_api_version"] = "2.60"
    capped = tmp_path / "clouds.yaml"
    capped.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(capped))
    cloud.reset_client()
    yield
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(portal_cloud.clouds_yaml))
    cloud.reset_client()


def test_below_compute_2_69_a_missing_server_is_not_judged(
    cast: Cast, tasks: Any, admin: OpenStackClient, capped_microversion: None
) -> None:
    instance = active_vm(cast, tasks)
    admin.delete_server(instance.server_id or "")
    admin.wait_for_server(instance.server_id or "", gone=True, timeout=30, interval=0.1)

    op = reconcile()

    # Servers of an unreachable cell are left out of such a listing: absence proves nothing.
    instance.refresh_from_db()
    assert instance.status == ServerStatus.ACTIVE
    assert not instance.deleted_outside_portal
    assert "hides down cells" in op.progress["stats"]["absence_not_judged"]


@pytest.fixture(scope="module")
def paged_devcloud(tmp_path_factory: pytest.TempPathFactory, devcloud: Any) -> Iterator[Any]:
    """A devcloud whose Nova pages servers two at a time, so a listing has several pages.

    (It takes the session's ``devcloud`` too, which marks these tests devcloud-only.)
    """
    from devcloud.testing import start_devcloud

    running = start_devcloud(
        tmp_path_factory.mktemp("devcloud-paged"), extra_args=["--max-limit", "2"]
    )
    try:
        yield running
    finally:
        running.stop()


class TestBrokenListings:
    """A listing that breaks off part-way (devcloud's fault injection) judges nothing."""

    @pytest.fixture
    def target_cloud(self, paged_devcloud: Any) -> PortalCloud:
        return PortalCloud("devcloud", paged_devcloud.clouds_yaml, "devcloud", paged_devcloud)

    @pytest.mark.parametrize("failure", ["503", "timeout"])
    def test_a_listing_that_fails_on_a_later_page_judges_nothing(
        self,
        portal_cloud: PortalCloud,
        cast: Cast,
        tasks: Any,
        admin: OpenStackClient,
        settings: Any,
        failure: str,
    ) -> None:
        instance = active_vm(cast, tasks)
        portal_cloud.faults.bulk_servers(project_id=instance.project.keystone_id, count=5)
        admin.delete_server(instance.server_id or "")
        admin.wait_for_server(instance.server_id or "", gone=True, timeout=30, interval=0.1)
        settings.OPENSTACK_TIMEOUT = 1.0
        cloud.reset_client()
        # The first page answers; every later one fails past the client's own retries.
        portal_cloud.faults.add(
            method="GET",
            path=r"/compute/v2\.1/servers/detail$",
            skip=1,
            **({"status": 503} if failure == "503" else {"action": "timeout", "status": None}),
        )

        op = services.cloud_reconcile(run_now=True)

        assert op.state != Operation.State.SUCCEEDED
        instance.refresh_from_db()
        assert instance.status == ServerStatus.ACTIVE
        assert not instance.deleted_outside_portal
        assert Instance.objects.filter(status=ServerStatus.DELETED).count() == 0
        portal_cloud.faults.reset()


def test_a_floating_ip_recorded_during_the_listing_is_not_taken_for_released(
    cast: Cast, tasks: Any, admin: OpenStackClient
) -> None:
    """Found by the fault matrix: the VM's delete then left the address in the cloud."""
    instance = active_vm(cast, tasks)
    project_id = instance.project.keystone_id
    # As before its launch's floating-IP step: a port, no floating IP yet.
    record = FloatingIP.objects.get(instance=instance)
    admin.delete_floating_ip(record.neutron_id)
    FloatingIP.objects.filter(pk=record.pk).update(released_at=timezone.now())
    public = admin.list_networks(name="public")[0]
    made: dict[str, FloatingIP] = {}

    def launch_records_its_floating_ip_meanwhile(exchange: Exchange) -> None:
        if made or exchange.method != "GET" or not exchange.path.endswith("/v2.0/floatingips"):
            return
        made["late"] = FloatingIP()  # (the create below is observed too)
        fip = admin.for_project(project_id).create_floating_ip(
            floating_network_id=public.id,
            port_id=instance.port_id,
            description=f"{services.FIP_DESCRIPTION_PREFIX}{unique('tok')}",
        )
        made["late"] = remember_floating_ip(fip, instance=instance, created_by_portal=True)

    with observe_exchanges(launch_records_its_floating_ip_meanwhile):
        reconcile()

    late = FloatingIP.objects.get(pk=made["late"].pk)
    assert late.released_at is None
    op = services.instance_delete(instance=instance)
    tasks()
    op.refresh_from_db()
    assert op.state == Operation.State.SUCCEEDED, op.message_text
    assert admin.list_floating_ips(project_id=project_id) == []
