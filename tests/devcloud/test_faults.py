"""Fault injection and the request log, through devcloud.testing's FaultControl."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from devcloud.testing import DevcloudError, FaultControl
from tests.devcloud.conftest import Cloud, Tenant, boot, wait_for, wait_status


@pytest.fixture
def faults(cloud: Cloud) -> Iterator[FaultControl]:
    control = cloud.running.faults
    control.reset()
    control.clear_requests()
    yield control
    control.reset()


def test_a_one_shot_fault_fails_the_next_n_matching_calls_only(
    faults: FaultControl, tenant: Tenant
) -> None:
    fault_id = faults.add(method="GET", path=r"^/compute/v2\.1/servers$", status=503, count=2)
    assert [f["id"] for f in faults.list_faults()] == [fault_id]
    first = tenant.member.get("compute", "/servers")
    assert first.status_code == 503
    assert first.json()["serviceUnavailable"]["code"] == 503
    assert first.headers["x-openstack-request-id"].startswith("req-")
    assert tenant.member.get("compute", "/servers/detail").status_code == 200  # not matching
    assert tenant.member.get("compute", "/servers").status_code == 503
    assert tenant.member.get("compute", "/servers").status_code == 200
    assert faults.list_faults() == []


def test_injected_errors_use_each_services_own_envelope(
    faults: FaultControl, tenant: Tenant
) -> None:
    faults.add(path="^/networking/", status=503, count=1)
    faults.add(path="^/identity/", status=500, count=1)
    neutron = tenant.member.get("network", "/ports").json()
    assert neutron["NeutronError"]["type"] == "ServiceUnavailable"
    keystone = tenant.member.get("identity", "/v3/auth/projects").json()
    assert keystone["error"]["code"] == 500


def test_a_401_fault_looks_like_an_expired_token(faults: FaultControl, tenant: Tenant) -> None:
    faults.add(path="^/compute/", status=401, count=1)
    response = tenant.member.get("compute", "/servers")
    assert response.status_code == 401
    assert response.json()["error"]["title"] == "Unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Keystone uri=")


def test_fractions_fail_a_share_of_calls(faults: FaultControl, tenant: Tenant) -> None:
    faults.add(method="GET", path="^/image/v2/images$", status=500, fraction=0.5)
    statuses = [tenant.member.get("image", "/images").status_code for _ in range(120)]
    failed = statuses.count(500)
    # Binomial(120, 0.5): outside 20..100 has a probability far below 1e-12.
    assert 20 <= failed <= 100
    assert set(statuses) == {200, 500}


def test_latency_slows_matching_calls(faults: FaultControl, tenant: Tenant) -> None:
    faults.add(method="GET", path="^/compute/v2.1/flavors$", status=None, latency=0.3, count=1)
    started = time.monotonic()
    response = tenant.member.get("compute", "/flavors")
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3  # a floor only: sleep never returns early


def test_dropped_connections_and_timeouts(faults: FaultControl, tenant: Tenant) -> None:
    faults.add(path="^/networking/v2.0/networks$", action="drop", count=1)
    with pytest.raises(requests.ConnectionError):
        tenant.member.get("network", "/networks")
    faults.add(path="^/networking/v2.0/subnets$", action="timeout", count=1)
    with pytest.raises(requests.Timeout):
        tenant.member.get("network", "/subnets", timeout=0.5)
    log = [e for e in faults.requests() if e["path"] in ("/v2.0/networks", "/v2.0/subnets")]
    assert [e["status"] for e in log] == [None, None]
    assert tenant.member.get("network", "/networks").status_code == 200


def test_after_faults_carry_the_request_out_and_lose_the_answer(
    faults: FaultControl, cloud: Cloud, tenant: Tenant
) -> None:
    faults.add(method="POST", path=r"^/compute/v2\.1/servers$", status=503, count=1, after=True)
    response = tenant.member.post(
        "compute",
        "/servers",
        {
            "server": {
                "name": "ghost",
                "imageRef": cloud.image_id(),
                "flavorRef": "1",
                "networks": [{"uuid": cloud.network_id("private")}],
            }
        },
    )
    assert response.status_code == 503
    names = [s["name"] for s in tenant.member.get("compute", "/servers").json()["servers"]]
    assert names == ["ghost"]


def test_build_failures_end_the_next_builds_in_error(
    faults: FaultControl, cloud: Cloud, tenant: Tenant
) -> None:
    faults.fail_builds(1, message="Exceeded maximum number of retries.")
    doomed = boot(tenant.member, cloud)
    healthy = boot(tenant.member, cloud)
    failed = wait_status(tenant.member, doomed, "ERROR")
    assert failed["fault"]["message"] == "Exceeded maximum number of retries."
    wait_status(tenant.member, healthy, "ACTIVE")


def test_revoking_tokens_makes_every_earlier_token_401(
    faults: FaultControl, cloud: Cloud, tenant: Tenant
) -> None:
    assert tenant.member.get("compute", "/servers").status_code == 200
    faults.revoke_tokens()
    assert tenant.member.get("compute", "/servers").status_code == 401
    assert cloud.admin.get("network", "/networks").status_code == 401
    # The control client logs in again by itself.
    assert faults.list_faults() == []
    cloud.relogin_admin()


def test_the_request_log_has_one_precise_entry_per_request(
    faults: FaultControl, tenant: Tenant
) -> None:
    faults.clear_requests()  # forget the calls that set up the tenant
    tenant.member.get("compute", "/servers/detail", params={"limit": 5})
    tenant.member.get("network", "/ports", params={"device_id": "x"})
    tenant.member.get("compute", "/servers/nope")
    entries = faults.requests()
    assert [(e["service"], e["method"], e["path"], e["query"], e["status"]) for e in entries] == [
        ("compute", "GET", "/v2.1/servers/detail", "limit=5", 200),
        ("network", "GET", "/v2.0/ports", "device_id=x", 200),
        ("compute", "GET", "/v2.1/servers/nope", "", 404),
    ]
    assert entries[0]["full_path"] == "/compute/v2.1/servers/detail"
    assert entries[0]["project_id"] == tenant.project_id
    assert faults.requests(since=entries[1]["seq"]) == entries[2:]
    faults.clear_requests()
    assert faults.requests() == []


def test_the_control_endpoint_is_admin_only(cloud: Cloud, tenant: Tenant) -> None:
    assert tenant.member.session.get(f"{cloud.url}/_devcloud/faults", timeout=10).status_code == 403
    assert requests.get(f"{cloud.url}/_devcloud/faults", timeout=10).status_code == 401
    with pytest.raises(DevcloudError, match="400"):
        cloud.running.faults.add(action="explode")


def test_a_deferred_fault_answers_now_and_carries_the_request_out_later(
    faults: FaultControl, tenant: Tenant, cloud: Cloud
) -> None:
    # A create the service records after the client gave up on it: the client's connection is
    # cut at once, and the server appears a moment later.
    faults.add(method="POST", path=r"/compute/v2\.1/servers$", action="drop", after=True, defer=0.5)
    name = f"late-{time.monotonic_ns()}"
    with pytest.raises(requests.ConnectionError):
        boot(tenant.member, cloud, name=name)
    listed = tenant.member.get("compute", "/servers", params={"name": name}).json()["servers"]
    assert listed == []
    listed = wait_for(
        lambda: tenant.member.get("compute", "/servers", params={"name": name}).json()["servers"],
        timeout=10,
    )
    assert [s["name"] for s in listed] == [name]


def test_defer_needs_after(faults: FaultControl) -> None:
    with pytest.raises(DevcloudError, match="defer"):
        faults.add(path="/servers", defer=1.0)
