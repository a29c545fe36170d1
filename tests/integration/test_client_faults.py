"""Retries, re-authentication and error classes against devcloud's injected faults (real HTTP)."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import pytest

from portal.openstack import (
    Conflict,
    OpenStackClient,
    QuotaExceeded,
    ServerStatus,
    Timeout,
    Unauthorized,
    Unavailable,
)
from tests.integration.client_support import (
    Catalog,
    Tenant,
    log_entries,
    new_admin_client,
    onboard,
    unique,
)

pytest_plugins = ["tests.integration.client_fixtures"]
pytestmark = pytest.mark.cloud

TOKENS = "/identity/v3/auth/tokens"


def _fast(devcloud: Any, **overrides: Any) -> OpenStackClient:
    """An admin client whose backoff does not slow the suite down."""
    client = new_admin_client(devcloud, backoff_cap=0.05, **overrides)
    return client


def test_get_retried_after_503(devcloud: Any, clean_faults: Any) -> None:
    client = _fast(devcloud)
    client.list_flavors()  # log in and negotiate first
    devcloud.faults.clear_requests()
    clean_faults.add(method="GET", path="/compute/v2.1/flavors/detail", status=503, count=2)
    assert client.list_flavors()
    statuses = [e["status"] for e in log_entries(devcloud, "GET", "/compute/v2.1/flavors/detail")]
    assert statuses == [503, 503, 200]


def test_get_retried_after_dropped_connection(devcloud: Any, clean_faults: Any) -> None:
    client = _fast(devcloud)
    client.list_networks()
    devcloud.faults.clear_requests()
    clean_faults.add(method="GET", path="/networking/v2.0/networks", action="drop", count=1)
    assert client.list_networks()
    assert len(log_entries(devcloud, "GET", "/networking/v2.0/networks")) == 2


def test_get_gives_up_with_unavailable(devcloud: Any, clean_faults: Any) -> None:
    client = _fast(devcloud, retries=2)
    client.list_networks()
    devcloud.faults.clear_requests()
    clean_faults.add(method="GET", path="/networking/v2.0/networks", status=504)
    with pytest.raises(Unavailable) as caught:
        client.list_networks()
    assert caught.value.status == 504
    assert caught.value.request_id
    assert len(log_entries(devcloud, "GET", "/networking/v2.0/networks")) == 3


def test_500_is_unavailable_and_not_retried(devcloud: Any, clean_faults: Any) -> None:
    client = _fast(devcloud)
    client.list_networks()
    devcloud.faults.clear_requests()
    clean_faults.add(method="GET", path="/networking/v2.0/networks", status=500, count=1)
    with pytest.raises(Unavailable) as caught:
        client.list_networks()
    assert caught.value.status == 500
    assert len(log_entries(devcloud, "GET", "/networking/v2.0/networks")) == 1


def test_post_is_never_retried(
    devcloud: Any, clean_faults: Any, os_tenant: Tenant, os_catalog: Catalog
) -> None:
    client = os_tenant.scoped
    before = {s.id for s in client.list_servers()}
    devcloud.faults.clear_requests()
    # The server is created, then the answer is lost: a blind retry would create a second one.
    clean_faults.add(method="POST", path="/compute/v2.1/servers$", status=503, after=True, count=1)
    with pytest.raises(Unavailable):
        client.create_server(
            name=unique("once"),
            image_id=os_catalog.image.id,
            flavor_id=os_catalog.flavor_id,
            network_ids=[os_tenant.network.id],
        )
    assert len(log_entries(devcloud, "POST", "/compute/v2.1/servers")) == 1
    created = {s.id for s in client.list_servers()} - before
    assert len(created) == 1
    for server_id in created:
        client.delete_server(server_id)


def test_delete_whose_answer_is_lost_still_succeeds(
    devcloud: Any, clean_faults: Any, os_tenant: Tenant, os_catalog: Catalog
) -> None:
    client = os_tenant.scoped
    fip = client.create_floating_ip(floating_network_id=os_catalog.external.id)
    clean_faults.add(
        method="DELETE", path=f"/floatingips/{fip.id}", status=503, after=True, count=1
    )
    client.delete_floating_ip(fip.id)
    assert fip.id not in {f.id for f in client.list_floating_ips()}


def test_timeout(devcloud: Any, clean_faults: Any) -> None:
    client = _fast(devcloud, timeout=1.0, retries=1)
    client.list_networks()
    clean_faults.add(method="GET", path="/networking/v2.0/networks", action="timeout", count=2)
    with pytest.raises(Timeout):
        client.list_networks()


def test_nova_quota_is_quota_exceeded(os_tenant: Tenant, os_catalog: Catalog) -> None:
    colossal = next(f for f in os_tenant.scoped.list_flavors() if f.name == "m1.colossal")
    with pytest.raises(QuotaExceeded) as caught:
        os_tenant.scoped.create_server(
            name=unique("over"),
            image_id=os_catalog.image.id,
            flavor_id=colossal.id,
            network_ids=[os_tenant.network.id],
        )
    assert caught.value.status == 403
    assert caught.value.message.startswith("Quota exceeded for cores")


def test_neutron_quota_is_quota_exceeded(
    devcloud: Any, os_admin: OpenStackClient, os_catalog: Catalog
) -> None:
    tenant = onboard(os_admin, os_catalog, devcloud.auth_url)
    os_admin.transport.request(
        "network",
        "PUT",
        f"/quotas/{tenant.project.id}",
        json={"quota": {"floatingip": 1}},
        idempotent=True,
    )
    tenant.scoped.create_floating_ip(floating_network_id=os_catalog.external.id)
    with pytest.raises(QuotaExceeded) as caught:
        tenant.scoped.create_floating_ip(floating_network_id=os_catalog.external.id)
    assert (caught.value.status, caught.value.error_type) == (409, "OverQuota")


def test_wrong_state_is_conflict(os_tenant: Tenant, os_catalog: Catalog) -> None:
    client = os_tenant.scoped
    server_id = client.create_server(
        name=unique("vm"),
        image_id=os_catalog.image.id,
        flavor_id=os_catalog.flavor_id,
        network_ids=[os_tenant.network.id],
    )
    client.wait_for_server(server_id, status=ServerStatus.ACTIVE, timeout=60)
    with pytest.raises(Conflict) as caught:
        client.start_server(server_id)
    assert caught.value.error_type == "conflictingRequest"
    client.delete_server(server_id)


def test_revoked_tokens_cost_one_reauthentication_per_scope(
    devcloud: Any, os_admin: OpenStackClient, os_catalog: Catalog
) -> None:
    tenant = onboard(os_admin, os_catalog, devcloud.auth_url)
    client = tenant.scoped
    client.list_servers()
    client.list_networks()
    devcloud.faults.clear_requests()
    before = client.transport.authentications
    devcloud.faults.revoke_tokens()
    # A sequence across services, the token dying under it after the first call.
    client.list_servers()
    client.list_networks()
    client.list_images()
    client.list_security_groups(project_id=tenant.project.id)
    assert client.transport.authentications == before + 1
    assert len(log_entries(devcloud, "POST", TOKENS)) == 1
    assert [e["status"] for e in log_entries(devcloud, "GET")][:2] == [401, 200]


def test_token_expiring_mid_sequence_is_renewed_once(tmp_path: Path) -> None:
    from devcloud.testing import start_devcloud

    short = start_devcloud(tmp_path / "short-ttl", token_ttl=8)
    try:
        client = new_admin_client(short)
        client.list_servers()
        short.faults.clear_requests()
        first_token = client.token().value
        # Keep calling for longer than the token lives; it must be renewed exactly once.
        for _ in range(60):
            client.list_flavors()
            if client.transport.authentications == 2:
                break
            time.sleep(0.25)
        client.list_flavors()
        assert client.token().value != first_token
        assert len(log_entries(short, "POST", TOKENS)) == 1
        assert all(e["status"] < 400 for e in log_entries(short))
    finally:
        short.stop()


def test_wrong_password_is_unauthorized(devcloud: Any) -> None:
    client = new_admin_client(devcloud, password="not-the-password")
    with pytest.raises(Unauthorized):
        client.list_servers()


def test_one_log_line_per_request_without_secrets(
    devcloud: Any,
    os_admin: OpenStackClient,
    os_catalog: Catalog,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG):
        tenant = onboard(os_admin, os_catalog, devcloud.auth_url)
        client = tenant.scoped
        devcloud.faults.clear_requests()
        tokens = {os_admin.token().value, client.token().value, tenant.member.token().value}
        server_id = client.create_server(
            name=unique("logged"),
            image_id=os_catalog.image.id,
            flavor_id=os_catalog.flavor_id,
            network_ids=[tenant.network.id],
            security_group_ids=[tenant.security_group_id],
        )
        client.wait_for_server(server_id, status=ServerStatus.ACTIVE, timeout=60, interval=0.2)
        new_password = "N3w-" + unique("pw")
        os_admin.change_own_password(
            tenant.user.id, original_password=tenant.password, new_password=new_password
        )
        reset_password = "R3set-" + unique("pw")
        os_admin.reset_user_password(tenant.user.id, reset_password)
        os_admin.authenticate(username=tenant.user.name, password=reset_password)
        devcloud.faults.revoke_tokens()
        client.delete_server(server_id)
        tokens |= {os_admin.token().value, client.token().value}
    http_lines = [r.getMessage() for r in caplog.records if r.name == "portal.openstack.http"]
    served = log_entries(devcloud)
    assert len(http_lines) >= len(served) > 0
    for entry in served:
        assert any(
            line.startswith(f"{entry['method']} {entry['full_path']}")
            and line.endswith(entry["request_id"])
            for line in http_lines
        ), entry
    secrets = {*tokens, tenant.password, new_password, reset_password, devcloud.admin_password}
    assert all(secrets)
    for secret in secrets:
        assert secret not in caplog.text


@pytest.mark.parametrize("count", [1, 10, 100])
def test_listing_servers_costs_one_call_per_page(
    count: int, devcloud: Any, os_admin: OpenStackClient, os_catalog: Catalog
) -> None:
    page = 10
    tenant = onboard(os_admin, os_catalog, devcloud.auth_url)
    client = tenant.scoped
    # Past Nova's default quota of 10: devcloud creates them directly, ACTIVE with ports.
    created = devcloud.faults.bulk_servers(
        project_id=tenant.project.id, count=count, network_id=tenant.network.id
    )
    assert len(created) == count
    client.list_servers(page_size=page)  # warm: token and microversion
    devcloud.faults.clear_requests()
    servers = client.list_servers(page_size=page)
    assert len({s.id for s in servers}) == count
    calls = log_entries(devcloud, "GET", "/compute/v2.1/servers/detail")
    assert len(calls) == math.ceil(count / page)
    assert len(log_entries(devcloud)) == len(calls)  # nothing else: no login, no discovery
    devcloud.faults.clear_requests()
    assert len(client.list_servers()) == count  # the server's own page size (max_limit 1000)
    assert len(log_entries(devcloud)) == 1


def test_forget_token_logs_in_again(devcloud: Any) -> None:
    client = new_admin_client(devcloud)
    client.list_networks()
    client.forget_token()
    devcloud.faults.clear_requests()
    client.list_networks()
    assert client.transport.authentications == 2
    assert len(log_entries(devcloud, "POST", TOKENS)) == 1
