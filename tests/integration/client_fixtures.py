"""Fixtures of the client integration tests, loaded with ``pytest_plugins`` by each module."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from portal.openstack import OpenStackClient
from tests.integration.client_support import Catalog, Tenant, new_admin_client, onboard


@pytest.fixture(scope="module")
def os_admin(devcloud: Any) -> OpenStackClient:
    """The devcloud admin, through a client of this module's own."""
    return new_admin_client(devcloud)


@pytest.fixture(scope="module")
def os_catalog(os_admin: OpenStackClient) -> Catalog:
    image = next(i for i in os_admin.list_images() if i.name.startswith("cirros"))
    flavor = next(f for f in os_admin.list_flavors() if f.name == "m1.tiny")
    external = os_admin.list_networks(external=True)[0]
    return Catalog(image=image, flavor_id=flavor.id, external=external)


@pytest.fixture(scope="module")
def os_tenant(os_admin: OpenStackClient, os_catalog: Catalog, devcloud: Any) -> Tenant:
    return onboard(os_admin, os_catalog, devcloud.auth_url)


@pytest.fixture
def clean_faults(devcloud: Any) -> Iterator[Any]:
    """Fault rules of one test only."""
    devcloud.faults.reset()
    yield devcloud.faults
    devcloud.faults.reset()
