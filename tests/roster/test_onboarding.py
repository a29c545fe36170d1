"""A confirmed roster onboards its soldiers over the cloud (devcloud or the real target)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from portal import services
from portal.models import Batch, Instance, Operation, Soldier
from portal.openstack import OpenStackClient
from tests.integration.conftest import unique
from tests.roster.conftest import Importer, csv_file

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.cloud,
    pytest.mark.needs("identity", "compute", "network", "image"),
]

HEADERS = ["군번", "이름", "소속", "입대일", "전역일", "사용자명", "템플릿"]


def test_a_cohort_of_200_good_rows_and_5_bad_ones_onboards_the_200_and_reports_the_5(
    portal_cloud: Any, importer: Importer, tasks: Any, admin: OpenStackClient, settings: Any
) -> None:
    # The session's cloud is shared by every test: 200 project routers would take 200 addresses
    # of its external network. Shared mode onboards without them (project mode is covered by
    # tests/integration/test_operations_onboard.py).
    settings.OPENSTACK_NETWORK_MODE = "shared"
    shared = next(n for n in admin.list_networks(shared=True) if not n.external)
    settings.OPENSTACK_SHARED_NETWORK = shared.name
    template = services.vm_template_from_cloud(name=unique("tpl"))
    prefix = f"R{secrets.token_hex(3)}"
    good = [
        [f"{prefix}-{n:04d}", f"병사{n}", "제1대대", "2025.03.04", "20990903", "", ""]
        for n in range(200)
    ]
    for row in good[:2]:
        row[6] = template.name  # these two also get a VM
    bad = [
        [f"{prefix}-B1", "날짜", "", "2025-02-30", "", "", ""],
        [f"{prefix}-B2", "순서", "", "2025-03-04", "2024-03-04", "", ""],
        [f"{prefix}-B3", "예약", "", "", "", "nova", ""],
        [f"{prefix}-B4", "", "", "", "", "", ""],
        [f"{prefix}-B5", "템플릿", "", "", "", "", "no-such-template"],
    ]
    data = csv_file([HEADERS, *good[:100], *bad, *good[100:]], encoding="cp949")

    preview = importer.preview(data)
    assert preview.context["preview"].totals == {
        "create": 200, "update": 0, "unchanged": 0, "rejected": 5
    }  # fmt: skip
    rejected = [r for r in preview.context["preview"].rows if r.action == "rejected"]
    assert [r.row for r in rejected] == [102, 103, 104, 105, 106]
    assert [r.error_codes[0] for r in rejected] == [
        "invalid_date", "discharge_before_enlistment", "reserved", "required", "unknown_template"
    ]  # fmt: skip

    importer.confirm(preview)
    batch = Batch.objects.get()
    assert batch.total == 202
    tasks(timeout=600)

    batch.refresh_from_db()
    assert (batch.succeeded, batch.failed) == (202, 0)
    assert batch.finished_at is not None
    cohort = Soldier.objects.filter(service_number__startswith=f"{prefix}-")
    assert cohort.count() == 200
    assert set(cohort.values_list("state", flat=True)) == {Soldier.State.ACTIVE}
    in_cloud = {u.name for u in admin.list_users()}
    assert {s.keystone_user_name for s in cohort} <= in_cloud
    assert f"{prefix}-b1".lower() not in in_cloud
    vms = Instance.objects.filter(owner__in=cohort)
    assert sorted(vms.values_list("owner__service_number", "status")) == [
        (good[0][0], "ACTIVE"), (good[1][0], "ACTIVE")
    ]  # fmt: skip
    # Each VM's launch waited for its soldier's onboarding instead of starting another.
    assert Operation.objects.filter(kind="onboard", soldier__in=cohort).count() == 200

    # The same file again: nothing to do, nothing queued.
    again = importer.preview(data)
    assert again.context["preview"].totals["unchanged"] == 200
    assert Operation.objects.count() == 202
    for vm in vms:  # give the shared cloud its two floating IPs back
        services.instance_delete(instance=vm)
    tasks(timeout=120)
