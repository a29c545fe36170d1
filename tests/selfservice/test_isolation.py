"""Soldier B with soldier A's ids: 404 on every id-taking URL and method, no cloud call, no
Operation. Every id goes through ``access.get_instance_for_soldier``."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from portal.models import Instance, Operation
from portal.openstack import OpenStackClient
from portal.selfservice.cards import ACTIONS
from tests.integration.conftest import make_soldier, recorded_calls, unique
from tests.selfservice.conftest import CloudSoldier, logged_in, offline_instances

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.cloud,
    pytest.mark.needs("identity", "network", "image", "compute"),
]

# Every URL of the soldier pages that takes the id of something a soldier owns, with its methods.
ID_URLS: dict[str, list[tuple[str, str]]] = {
    "vm_card": [("GET", "/vm/{pk}/card/")],
    "vm_action": [
        (method, f"/vm/{{pk}}/{slug}/") for slug in ACTIONS for method in ("GET", "POST")
    ],
}
# Templates are offered to every soldier; nobody owns one.
SHARED_ID_URLS = {"vm_request"}


def _cases() -> list[tuple[str, str]]:
    return [case for cases in ID_URLS.values() for case in cases]


def test_every_id_taking_url_of_the_soldier_pages_is_covered_here() -> None:
    resolver = get_resolver()
    (selfservice,) = [
        p
        for p in resolver.url_patterns
        if isinstance(p, URLResolver) and p.namespace == "selfservice"
    ]
    taking_ids = {
        p.name
        for p in selfservice.url_patterns
        if isinstance(p, URLPattern) and "<int:" in str(p.pattern)
    }
    assert taking_ids == set(ID_URLS) | SHARED_ID_URLS


def _assert_refused(client: Any, instance: Instance, method: str, url: str) -> None:
    before = Operation.objects.count()
    status_before = (instance.status, instance.pending_action)
    with recorded_calls() as calls:
        response = client.generic(method, url.format(pk=instance.pk))
    assert response.status_code == 404, (method, url)
    assert calls.exchanges == []
    assert Operation.objects.count() == before
    instance.refresh_from_db()
    assert (instance.status, instance.pending_action) == status_before
    assert instance.name not in response.content.decode()


@pytest.fixture
def a_vm_of_someone_else(portal_cloud: Any) -> Instance:
    """Soldier A's VM as the database knows it (the ids are what matters)."""
    (instance,) = offline_instances(1, prefix="sola")
    return instance


@pytest.mark.parametrize(("method", "url"), _cases())
def test_soldier_b_gets_404_for_soldier_a_s_vm(
    a_vm_of_someone_else: Instance, settings: Any, method: str, url: str
) -> None:
    settings.SELFSERVICE_SOLDIER_DELETE = True  # so a leak would really delete
    soldier_b = make_soldier(unique("solb"))
    _assert_refused(logged_in(soldier_b), a_vm_of_someone_else, method, url)
    # The other side: the 404 is about the owner, not a broken URL.
    if method == "GET":
        owner = logged_in(a_vm_of_someone_else.owner)
        response = owner.generic(method, url.format(pk=a_vm_of_someone_else.pk))
        assert response.status_code in (200, 286)


def test_soldier_b_cannot_touch_a_running_vm_of_soldier_a_in_the_cloud(
    soldier_b: CloudSoldier, running_vm: Instance, settings: Any, admin: OpenStackClient
) -> None:
    settings.SELFSERVICE_SOLDIER_DELETE = True
    for method, url in _cases():
        _assert_refused(soldier_b.client, running_vm, method, url)
    assert admin.get_server(running_vm.server_id or "").status_raw == "ACTIVE"


def test_an_id_that_does_not_exist_is_the_same_404(portal_cloud: Any) -> None:
    client = logged_in(make_soldier())
    assert client.get("/vm/999999/card/").status_code == 404
    assert client.post("/vm/999999/stop/").status_code == 404
