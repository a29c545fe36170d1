"""The portal never takes over an account or a floating IP it did not create (issue 9, point 4),
and refuses what the cloud would refuse before it calls the cloud (point 7)."""

from datetime import date
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from portal import services
from portal.models import FloatingIP, Operation, Soldier, VmTemplate
from portal.openstack import OpenStackClient
from portal.services.onboarding import account_marker
from tests.integration.conftest import Cast, finished, make_soldier, recorded_calls, unique

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.cloud,
    pytest.mark.needs("identity", "compute", "network", "image"),
]


def new_user(username: str) -> Any:
    return get_user_model().objects.create_user(username=username)


@pytest.mark.parametrize("name", ["placement", "nova", "admin", "Admin", "glance", "neutron"])
def test_a_soldier_named_like_a_cloud_account_is_refused_before_any_call(
    portal_cloud: Any, name: str
) -> None:
    with recorded_calls() as calls, pytest.raises(services.OperationRefused, match=f"(?i){name}"):
        services.soldier_create(
            user=new_user(unique("u")),
            service_number=unique("SN"),
            name="홍길동",
            keystone_user_name=name,
        )
    assert calls.exchanges == []
    assert not Soldier.objects.filter(keystone_user_name__iexact=name).exists()


def test_the_portals_own_cloud_user_is_reserved(portal_cloud: Any, admin: OpenStackClient) -> None:
    own = admin.config.username or ""
    assert own
    with pytest.raises(services.OperationRefused, match="belongs to the cloud itself"):
        services.soldier_create(
            user=new_user(unique("u")),
            service_number=unique("SN"),
            name="x",
            keystone_user_name=own,
        )


def test_a_soldier_recorded_before_the_rules_with_a_service_name_is_not_linked_to_it(
    cast: Cast, admin: OpenStackClient, tasks: Any
) -> None:
    # A row from before validation (or made in the shell): onboarding still refuses it.
    soldier = make_soldier()
    Soldier.objects.filter(pk=soldier.pk).update(keystone_user_name="placement")
    soldier.refresh_from_db()
    op = services.soldier_onboard(soldier=soldier)
    with recorded_calls() as calls:
        tasks()

    op = finished(op)
    assert op.state == Operation.State.FAILED
    assert "belongs to the cloud itself" in op.message_text
    assert calls.mutations() == []
    soldier.refresh_from_db()
    assert soldier.keystone_user_id == ""
    with pytest.raises(services.OperationRefused, match="no cloud account"):
        services.soldier_password_reset(soldier=soldier)


def test_an_existing_user_the_portal_did_not_create_is_refused_and_never_reset(
    cast: Cast, admin: OpenStackClient, tasks: Any
) -> None:
    name = unique("taken")
    theirs = admin.create_user(name=name, domain_id="default", password=unique("pw"))
    soldier = services.soldier_create(
        user=new_user(name), service_number=unique("SN"), name="김철수"
    )
    op = services.soldier_onboard(soldier=soldier)
    tasks()

    op = finished(op)
    assert op.state == Operation.State.FAILED
    assert "did not create for this soldier" in op.message_text
    assert name in op.message_text
    soldier.refresh_from_db()
    assert soldier.keystone_user_id == ""
    assert soldier.state == Soldier.State.PENDING
    assert admin.get_user(theirs.id).description in (None, "")
    with pytest.raises(services.OperationRefused):
        services.soldier_password_reset(soldier=soldier)
    admin.transport.request("identity", "DELETE", f"/users/{theirs.id}")


def test_an_existing_project_the_portal_did_not_create_is_refused(
    cast: Cast, admin: OpenStackClient, tasks: Any
) -> None:
    name = unique("proj")
    theirs = admin.create_project(name=f"cs-{name}", domain_id="default", description="ops")
    soldier = services.soldier_create(user=new_user(name), service_number=unique("SN"), name="x")
    op = services.soldier_onboard(soldier=soldier)
    tasks()

    op = finished(op)
    assert op.state == Operation.State.FAILED
    assert "project" in op.message_text
    soldier.refresh_from_db()
    assert soldier.project.keystone_id == ""
    admin.transport.request("identity", "DELETE", f"/projects/{theirs.id}")


def test_accounts_the_portal_creates_carry_its_marker_and_are_found_again(
    cast: Cast, admin: OpenStackClient, tasks: Any
) -> None:
    services.soldier_onboard(soldier=cast.soldier)
    tasks()
    soldier = Soldier.objects.get(pk=cast.soldier.pk)
    assert soldier.state == Soldier.State.ACTIVE
    user = admin.get_user(soldier.keystone_user_id)
    project = admin.get_project(soldier.project.keystone_id)
    assert user.description == project.description == account_marker(soldier)
    # Forgetting the ids (a lost database row) and onboarding again adopts the same ones.
    Soldier.objects.filter(pk=soldier.pk).update(keystone_user_id="", state="pending")
    soldier.project.__class__.objects.filter(pk=soldier.project.pk).update(keystone_id="")
    soldier.refresh_from_db()
    op = services.soldier_onboard(soldier=soldier)
    tasks()
    assert finished(op).state == Operation.State.SUCCEEDED
    soldier.refresh_from_db()
    assert soldier.keystone_user_id == user.id
    assert soldier.project.keystone_id == project.id


def test_usernames_differing_only_in_case_are_one_lowercase_name(portal_cloud: Any) -> None:
    services.soldier_create(
        user=new_user(unique("u")),
        service_number=unique("SN"),
        name="a",
        keystone_user_name="Case-Kim",
    )
    assert Soldier.objects.get().keystone_user_name == "case-kim"
    with pytest.raises(services.OperationRefused, match="already has the username"):
        services.soldier_create(
            user=new_user(unique("u")),
            service_number=unique("SN"),
            name="b",
            keystone_user_name="case-kim",
        )


def test_a_floating_ip_that_only_looks_like_the_portals_is_never_taken_as_its_own(
    cast: Cast, admin: OpenStackClient, tasks: Any
) -> None:
    instance = services.instance_launch(soldier=cast.soldier, template=cast.template)
    tasks()
    instance.refresh_from_db()
    project_id = instance.project.keystone_id
    public = admin.list_networks(name="public")[0].id
    # Soldiers can write any description on their own floating IPs, the portal's prefix too.
    lookalike = admin.for_project(project_id).create_floating_ip(
        floating_network_id=public, description=f"codesquare:{instance.request_tag}"
    )

    services.cloud_reconcile(run_now=True)
    delete = services.instance_delete(instance=instance)
    tasks()

    assert finished(delete).state == Operation.State.SUCCEEDED
    assert not FloatingIP.objects.filter(neutron_id=lookalike.id, created_by_portal=True).exists()
    remaining = admin.list_floating_ips(project_id=project_id)
    assert [f.id for f in remaining] == [lookalike.id]
    admin.delete_floating_ip(lookalike.id)


# --- point 7: validated at the service boundary ------------------------------------------------


def test_a_username_too_long_for_the_project_name_is_refused_before_any_call(
    portal_cloud: Any,
) -> None:
    name = "u" * 70  # cs- + 70 > Keystone's 64-character project names
    with (
        recorded_calls() as calls,
        pytest.raises(services.OperationRefused, match="longer than 61"),
    ):
        services.soldier_create(
            user=new_user(unique("u")),
            service_number=unique("SN"),
            name="x",
            keystone_user_name=name,
        )
    assert calls.exchanges == []


def test_a_legacy_soldier_with_a_name_too_long_fails_onboarding_before_any_change(
    cast: Cast, admin: OpenStackClient, tasks: Any
) -> None:
    soldier = make_soldier()
    Soldier.objects.filter(pk=soldier.pk).update(keystone_user_name="v" * 62)
    soldier.refresh_from_db()
    op = services.soldier_onboard(soldier=soldier)
    with recorded_calls() as calls:
        tasks()

    op = finished(op)
    assert op.state == Operation.State.FAILED
    assert "longer than 61" in op.message_text
    assert calls.mutations() == []
    assert admin.list_users(name="v" * 62) == []


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"service_number": ""}, "service number is missing"),
        ({"service_number": "12 34"}, "only letters, digits and hyphens"),
        ({"service_number": "9" * 40}, "longer than 32"),
        ({"name": ""}, "name is empty"),
        ({"name": "김\x00철수"}, "printable"),
        ({"name": "가" * 101}, "at most 100"),
        ({"keystone_user_name": "kim chulsoo"}, "only lowercase letters"),
        ({"keystone_user_name": "-kim"}, "only lowercase letters"),
        ({"keystone_user_name": "kim-"}, "only lowercase letters"),
        ({"keystone_user_name": "김철수"}, "only lowercase letters"),
        ({"enlisted_on": date(2026, 5, 1), "discharge_on": date(2026, 4, 1)}, "before the"),
    ],
)
def test_soldier_fields_the_cloud_would_refuse_are_refused_with_a_reason(
    portal_cloud: Any, fields: dict[str, Any], reason: str
) -> None:
    values: dict[str, Any] = {
        "service_number": unique("SN"),
        "name": "이순신",
        "keystone_user_name": unique("ok"),
        **fields,
    }
    with recorded_calls() as calls, pytest.raises(services.OperationRefused, match=reason):
        services.soldier_create(user=new_user(unique("u")), **values)
    assert calls.exchanges == []
    assert Soldier.objects.count() == 0


def test_a_korean_name_is_accepted(portal_cloud: Any) -> None:
    soldier = services.soldier_create(
        user=new_user(unique("u")), service_number="21-76543210", name="똠방각하"
    )
    assert soldier.name == "똠방각하"


def test_a_template_in_a_zone_the_portal_may_not_use_is_refused(cast: Cast, settings: Any) -> None:
    settings.OPENSTACK_ALLOWED_ZONES = ["nova"]
    template = VmTemplate.objects.create(
        name=unique("zone"),
        image_id=cast.template.image_id,
        flavor_id=cast.template.flavor_id,
        availability_zone="restricted",
    )
    with recorded_calls() as calls, pytest.raises(services.OperationRefused, match="restricted"):
        services.instance_launch(soldier=cast.soldier, template=template)
    assert calls.exchanges == []
    assert not cast.soldier.instances.exists()
