"""Token reuse and re-auth, retries, paging, microversions and log lines, over a fake transport."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests

from portal.openstack import (
    BadRequest,
    Conflict,
    EndpointNotFound,
    IncompleteListing,
    MemoryTokenCache,
    Microversion,
    NotFound,
    Timeout,
    Unauthorized,
    Unavailable,
    transport,
)
from tests.unit.openstack_fake import PASSWORD, Call, FakeCloud, Reply, make_client

SERVER = {
    "id": "s1",
    "name": "vm1",
    "status": "ACTIVE",
    "tenant_id": "p-admin",
    "user_id": "u-portal",
    "OS-EXT-STS:power_state": 1,
    "OS-EXT-STS:vm_state": "active",
    "OS-EXT-STS:task_state": None,
}


def _server(i: int) -> dict[str, object]:
    return {**SERVER, "id": f"s{i}", "name": f"vm{i}"}


@pytest.fixture
def fake() -> FakeCloud:
    return FakeCloud()


def test_token_is_reused_across_calls(fake: FakeCloud) -> None:
    fake.route("GET", "/compute/v2.1/servers/s1", lambda c: (200, {}, {"server": SERVER}))
    client, _ = make_client(fake)
    for _ in range(5):
        client.get_server("s1")
    assert len(fake.auth_calls()) == 1


def test_token_close_to_expiry_is_renewed_before_use(fake: FakeCloud) -> None:
    # An hour-long token with a minute left: under keystoneauth's 120 s margin, so renewed.
    fake.token_ttl = timedelta(seconds=60)
    fake.token_issued_ago = timedelta(minutes=59)
    fake.route("GET", "/networking/v2.0/networks", lambda c: (200, {}, {"networks": []}))
    client, _ = make_client(fake)
    client.list_networks()
    client.list_networks()
    assert len(fake.auth_calls()) == 2


def test_short_lived_tokens_are_still_reused(fake: FakeCloud) -> None:
    # A cloud configured with one-minute tokens: the margin shrinks to a quarter of the life.
    fake.token_ttl = timedelta(seconds=60)
    fake.route("GET", "/networking/v2.0/networks", lambda c: (200, {}, {"networks": []}))
    client, _ = make_client(fake)
    for _ in range(3):
        client.list_networks()
    assert len(fake.auth_calls()) == 1


def test_revoked_token_costs_exactly_one_reauthentication(fake: FakeCloud) -> None:
    fake.route("GET", "/compute/v2.1/servers/s1", lambda c: (200, {}, {"server": SERVER}))
    client, _ = make_client(fake)
    client.get_server("s1")
    fake.revoke_all()
    assert client.get_server("s1").id == "s1"
    client.get_server("s1")
    assert len(fake.auth_calls()) == 2
    assert client.transport.authentications == 2
    used = [c.headers["X-Auth-Token"] for c in fake.calls_to("GET", "/compute/v2.1/servers/s1")]
    assert used[0] == used[1] != used[2] == used[3]


def test_second_401_after_reauthentication_is_unauthorized(fake: FakeCloud) -> None:
    rejected: Reply = (
        401,
        {},
        {"error": {"code": 401, "title": "Unauthorized", "message": "nope"}},
    )
    fake.route("GET", "/compute/v2.1/servers/s1", [rejected])
    client, _ = make_client(fake)
    with pytest.raises(Unauthorized) as caught:
        client.get_server("s1")
    assert caught.value.status == 401
    assert len(fake.auth_calls()) == 2  # the first login, then exactly one more
    assert len(fake.calls_to("GET", "/compute/v2.1/servers/s1")) == 2


def test_wrong_password_is_unauthorized_without_retry(fake: FakeCloud) -> None:
    client, _ = make_client(fake, password="wrong")
    with pytest.raises(Unauthorized):
        client.token()
    assert len(fake.auth_calls()) == 1


def test_shared_cache_lets_a_second_process_skip_login(fake: FakeCloud) -> None:
    fake.route("GET", "/compute/v2.1/servers/s1", lambda c: (200, {}, {"server": SERVER}))
    cache = MemoryTokenCache()
    first, _ = make_client(fake, token_cache=cache)
    second, _ = make_client(fake, token_cache=cache)
    first.get_server("s1")
    second.get_server("s1")
    assert len(fake.auth_calls()) == 1
    assert second.transport.authentications == 0


def test_after_revocation_a_second_process_adopts_the_renewed_token(fake: FakeCloud) -> None:
    fake.route("GET", "/compute/v2.1/servers/s1", lambda c: (200, {}, {"server": SERVER}))
    cache = MemoryTokenCache()
    first, _ = make_client(fake, token_cache=cache)
    second, _ = make_client(fake, token_cache=cache)
    first.get_server("s1")
    second.get_server("s1")
    fake.revoke_all()
    first.get_server("s1")  # 401, re-authenticates, publishes
    second.get_server("s1")  # 401, finds the published token, no login of its own
    assert len(fake.auth_calls()) == 2
    assert second.transport.authentications == 0


def test_a_cached_token_revoked_too_leads_to_a_login_of_its_own(fake: FakeCloud) -> None:
    fake.route("GET", "/compute/v2.1/servers/s1", lambda c: (200, {}, {"server": SERVER}))
    cache = MemoryTokenCache()
    first, _ = make_client(fake, token_cache=cache)
    second, _ = make_client(fake, token_cache=cache)
    first.get_server("s1")
    second.get_server("s1")  # the same token, from the cache
    fake.revoke_all()
    first.get_server("s1")  # 401, logs in, publishes a second token
    fake.revoke_all()  # which is revoked as well before the second process uses it
    assert second.get_server("s1").id == "s1"  # 401, cached token 401, then its own login
    assert len(fake.auth_calls()) == 3
    assert second.transport.authentications == 1


def test_project_scope_gets_its_own_token_and_is_cached(fake: FakeCloud) -> None:
    fake.route("GET", "/compute/v2.1/servers/s1", lambda c: (200, {}, {"server": SERVER}))
    client, _ = make_client(fake)
    scoped = client.for_project("p-soldier")
    assert client.for_project("p-soldier") is scoped
    assert scoped.for_project("p-soldier") is scoped
    scoped.get_server("s1")
    assert scoped.token().project_id == "p-soldier"
    scopes = [c.body["auth"].get("scope") for c in fake.auth_calls()]
    assert {"project": {"id": "p-soldier"}} in scopes


def test_get_is_retried_on_503_with_capped_backoff(fake: FakeCloud) -> None:
    unavailable: Reply = (503, {}, {"serviceUnavailable": {"code": 503, "message": "busy"}})
    ok: Reply = (200, {}, {"server": SERVER})
    fake.route("GET", "/compute/v2.1/servers/s1", [unavailable, unavailable, unavailable, ok])
    client, sleeps = make_client(fake, backoff_cap=0.6)
    assert client.get_server("s1").id == "s1"
    assert sleeps == [0.25, 0.5, 0.6]


def test_get_gives_up_after_the_configured_retries(fake: FakeCloud) -> None:
    bad_gateway: Reply = (502, {}, "<html>Bad Gateway</html>")
    fake.route("GET", "/compute/v2.1/servers/s1", [bad_gateway])
    client, sleeps = make_client(fake, retries=2)
    with pytest.raises(Unavailable) as caught:
        client.get_server("s1")
    assert caught.value.status == 502
    assert len(fake.calls_to("GET", "/compute/v2.1/servers/s1")) == 3
    assert len(sleeps) == 2


def test_get_is_retried_on_connection_failure(fake: FakeCloud) -> None:
    fake.route(
        "GET",
        "/compute/v2.1/servers/s1",
        [requests.ConnectionError("reset by peer"), (200, {}, {"server": SERVER})],
    )
    client, _ = make_client(fake)
    assert client.get_server("s1").name == "vm1"


def test_post_is_never_retried(fake: FakeCloud) -> None:
    fake.route(
        "POST",
        "/compute/v2.1/servers",
        [(503, {}, {"computeFault": {"code": 503, "message": "x"}})],
    )
    client, sleeps = make_client(fake)
    with pytest.raises(Unavailable):
        client.create_server(name="vm", image_id="i", flavor_id="f", network_ids=["n"])
    assert len(fake.calls_to("POST", "/compute/v2.1/servers")) == 1
    assert sleeps == []


def test_post_connection_failure_is_not_retried(fake: FakeCloud) -> None:
    fake.route("POST", "/networking/v2.0/floatingips", [requests.ConnectionError("reset")])
    client, _ = make_client(fake)
    with pytest.raises(Unavailable):
        client.create_floating_ip(floating_network_id="ext")
    assert len(fake.calls_to("POST", "/networking/v2.0/floatingips")) == 1


def test_timeout_maps_to_timeout_error(fake: FakeCloud) -> None:
    fake.route("GET", "/compute/v2.1/servers/s1", [requests.ReadTimeout("slow")])
    client, _ = make_client(fake, retries=1)
    with pytest.raises(Timeout):
        client.get_server("s1")
    assert len(fake.calls_to("GET", "/compute/v2.1/servers/s1")) == 2


def test_4xx_is_not_retried(fake: FakeCloud) -> None:
    fake.route(
        "GET",
        "/compute/v2.1/servers/s1",
        [(404, {}, {"itemNotFound": {"code": 404, "message": "Instance s1 could not be found."}})],
    )
    client, _ = make_client(fake)
    with pytest.raises(NotFound):
        client.get_server("s1")
    assert len(fake.calls_to("GET", "/compute/v2.1/servers/s1")) == 1


def test_delete_whose_answer_was_lost_counts_as_done(fake: FakeCloud) -> None:
    gone: Reply = (
        404,
        {},
        {"NeutronError": {"type": "FloatingIPNotFound", "message": "gone", "detail": ""}},
    )
    fake.route(
        "DELETE", "/networking/v2.0/floatingips/f1", [requests.ConnectionError("reset"), gone]
    )
    client, _ = make_client(fake)
    client.delete_floating_ip("f1")


def test_delete_of_missing_resource_is_not_found(fake: FakeCloud) -> None:
    gone: Reply = (
        404,
        {},
        {"NeutronError": {"type": "FloatingIPNotFound", "message": "gone", "detail": ""}},
    )
    fake.route("DELETE", "/networking/v2.0/floatingips/f1", [gone])
    client, _ = make_client(fake)
    with pytest.raises(NotFound):
        client.delete_floating_ip("f1")


def test_every_request_carries_the_configured_timeout(fake: FakeCloud) -> None:
    fake.route("GET", "/compute/v2.1/servers/s1", lambda c: (200, {}, {"server": SERVER}))
    client, _ = make_client(fake, timeout=7.5)
    client.get_server("s1")
    assert [c.path for c in fake.calls] == [
        "/identity/v3/auth/tokens",
        "/compute/v2.1/",
        "/compute/v2.1/servers/s1",
    ]
    assert all(c.timeout == 7.5 for c in fake.calls)


def test_endpoints_come_from_the_catalog_by_interface(fake: FakeCloud) -> None:
    fake.route("GET", "/networking/v2.0/networks", lambda c: (200, {}, {"networks": []}))
    client, _ = make_client(fake, interface="internal")
    client.list_networks()
    assert client.transport.endpoint("network") == "http://internal.test/networking/v2.0"
    assert client.transport.endpoint("image") == "http://internal.test/image/v2"
    assert client.transport.endpoint("identity") == "http://internal.test/identity/v3"


def test_endpoint_override_wins_over_catalog(fake: FakeCloud) -> None:
    client, _ = make_client(fake, endpoint_overrides={"compute": "http://cloud.test/alt/v2.1"})
    assert client.transport.endpoint("compute") == "http://cloud.test/alt/v2.1"


def test_nova_pagination_follows_next_links_to_the_end(fake: FakeCloud) -> None:
    pages = {
        None: ([_server(1), _server(2)], "s2"),
        "s2": ([_server(3), _server(4)], "s4"),
        "s4": ([_server(5)], None),
    }

    def page(call: Call) -> Reply:
        marker = dict(call.query).get("marker")
        items, nxt = pages[marker]
        body: dict[str, object] = {"servers": items}
        if nxt:
            href = f"http://34.64.118.138/compute/v2.1/servers/detail?limit=2&marker={nxt}"
            body["servers_links"] = [{"rel": "next", "href": href}]
        return 200, {}, body

    fake.route("GET", "/compute/v2.1/servers/detail", page)
    client, _ = make_client(fake)
    servers = client.list_servers(page_size=2)
    assert [s.id for s in servers] == ["s1", "s2", "s3", "s4", "s5"]
    # Only the link's query is used: the unreachable host in the href is never contacted.
    listing = fake.calls_to("GET", "/compute/v2.1/servers/detail")
    assert len(listing) == 3
    assert dict(listing[0].query) == {"limit": "3"}


def _nova_like(total: int) -> Callable[[Call], Reply]:
    """servers/detail as Nova pages it: a full page always carries a next link."""
    servers = [_server(i) for i in range(1, total + 1)]

    def handler(call: Call) -> Reply:
        query = dict(call.query)
        start = 0
        if "marker" in query:
            start = [s["id"] for s in servers].index(query["marker"]) + 1
        limit = int(query.get("limit", 1000))
        chunk = servers[start : start + limit]
        body: dict[str, object] = {"servers": chunk}
        if chunk and len(chunk) == limit:
            href = f"http://cloud.test/compute/v2.1/servers/detail?limit={limit}&marker={chunk[-1]['id']}"
            body["servers_links"] = [{"rel": "next", "href": href}]
        return 200, {}, body

    return handler


@pytest.mark.parametrize(
    ("total", "page", "calls"),
    [(0, 2, 1), (1, 2, 1), (2, 2, 1), (4, 2, 2), (5, 2, 3), (100, 10, 10)],
)
def test_page_size_lists_cost_ceil_n_over_page_calls(total: int, page: int, calls: int) -> None:
    fake = FakeCloud()
    fake.route("GET", "/compute/v2.1/servers/detail", _nova_like(total))
    client, _ = make_client(fake)
    servers = client.list_servers(page_size=page)
    assert [s.id for s in servers] == [f"s{i}" for i in range(1, total + 1)]
    assert len(fake.calls_to("GET", "/compute/v2.1/servers/detail")) == calls


def test_page_size_above_the_server_maximum_follows_its_links() -> None:
    fake = FakeCloud()
    nova = _nova_like(7)

    def clamped(call: Call) -> Reply:  # a server whose max_limit is 3
        query = [(k, v if k != "limit" else str(min(int(v), 3))) for k, v in call.query]
        return nova(Call(call.method, call.path, query, call.headers, call.body, call.timeout))

    fake.route("GET", "/compute/v2.1/servers/detail", clamped)
    client, _ = make_client(fake)
    assert len(client.list_servers(page_size=10)) == 7
    assert len(fake.calls_to("GET", "/compute/v2.1/servers/detail")) == 3


def test_keystone_and_glance_pagination(fake: FakeCloud) -> None:
    def users(call: Call) -> Reply:
        if dict(call.query).get("marker") == "u2":
            return 200, {}, {"users": [{"id": "u3", "name": "c"}], "links": {"next": None}}
        nxt = "http://cloud.test/identity/v3/users?marker=u2&limit=2"
        return (
            200,
            {},
            {
                "users": [{"id": "u1", "name": "a"}, {"id": "u2", "name": "b"}],
                "links": {"self": "x", "next": nxt},
            },
        )

    def images(call: Call) -> Reply:
        if dict(call.query).get("marker") == "i1":
            return 200, {}, {"images": [{"id": "i2"}], "first": "/v2/images"}
        return 200, {}, {"images": [{"id": "i1"}], "next": "/v2/images?marker=i1&status=active"}

    fake.route("GET", "/identity/v3/users", users)
    fake.route("GET", "/image/v2/images", images)
    client, _ = make_client(fake)
    assert [u.id for u in client.list_users()] == ["u1", "u2", "u3"]
    assert [i.id for i in client.list_images()] == ["i1", "i2"]
    assert len(fake.calls_to("GET", "/image/v2/images")) == 2


def test_compute_microversion_is_capped_and_sent(fake: FakeCloud) -> None:
    fake.route("GET", "/compute/v2.1/servers/s1", lambda c: (200, {}, {"server": SERVER}))
    client, _ = make_client(fake)
    client.get_server("s1")
    assert client.compute_microversion() == Microversion(2, 90)
    sent = fake.calls_to("GET", "/compute/v2.1/servers/s1")[0].headers
    assert sent["OpenStack-API-Version"] == "compute 2.90"
    # Discovery once per endpoint, not per call or per scope.
    client.get_server("s1")
    client.for_project("p2").get_server("s1")
    assert len([c for c in fake.calls if c.path == "/compute/v2.1/"]) == 1


def test_old_compute_falls_back_to_its_maximum(
    fake: FakeCloud, caplog: pytest.LogCaptureFixture
) -> None:
    fake.compute_version = "2.38"
    client, _ = make_client(fake)
    with caplog.at_level(logging.INFO, logger="portal.openstack"):
        assert client.compute_microversion() == Microversion(2, 38)
    assert "compute microversion 2.38 in use" in caplog.text


def test_compute_without_discovery_uses_no_microversion_header(fake: FakeCloud) -> None:
    fake.compute_version = None
    fake.route("GET", "/compute/v2.1/servers/s1", lambda c: (200, {}, {"server": SERVER}))
    client, _ = make_client(fake)
    client.get_server("s1")
    assert client.compute_microversion() is None
    assert (
        "OpenStack-API-Version" not in fake.calls_to("GET", "/compute/v2.1/servers/s1")[0].headers
    )


def test_configured_ceiling_limits_the_microversion(fake: FakeCloud) -> None:
    client, _ = make_client(fake, compute_max_microversion="2.79")
    assert client.compute_microversion() == Microversion(2, 79)


def test_one_log_line_per_request_and_no_secrets(
    fake: FakeCloud, caplog: pytest.LogCaptureFixture
) -> None:
    fake.route("GET", "/compute/v2.1/servers/s1", lambda c: (200, {}, {"server": SERVER}))
    fake.route("POST", "/identity/v3/users/u9/password", lambda c: (204, {}, None))
    fake.route(
        "PUT",
        "/identity/v3/projects/p/users/u/roles/r",
        [(409, {}, {"error": {"code": 409, "title": "Conflict", "message": "dup"}})],
    )
    client, _ = make_client(fake)
    with caplog.at_level(logging.DEBUG):
        client.get_server("s1")
        client.change_own_password("u9", original_password=PASSWORD, new_password="N3w-secret!")
        fake.revoke_all()
        client.get_server("s1")
        with pytest.raises(Conflict):
            client.grant_project_role(project_id="p", user_id="u", role_id="r")
    http_lines = [r.getMessage() for r in caplog.records if r.name == "portal.openstack.http"]
    assert len(http_lines) == len(fake.calls)
    assert http_lines[0].startswith("POST /identity/v3/auth/tokens 201 ")
    assert any(line.startswith("GET /compute/v2.1/servers/s1 401 ") for line in http_lines)
    assert any(
        line.startswith("GET /compute/v2.1/servers/s1 200 ") and line.endswith("req-0003")
        for line in http_lines
    )
    tokens = {c.headers["X-Auth-Token"] for c in fake.calls if "X-Auth-Token" in c.headers}
    assert len(tokens) == 2
    for secret in (*tokens, PASSWORD, "N3w-secret!"):
        assert secret not in caplog.text


def test_bad_request_carries_service_message_and_request_id(fake: FakeCloud) -> None:
    body = {"badRequest": {"code": 400, "message": "Invalid key_name provided."}}
    fake.route(
        "POST", "/compute/v2.1/servers", [(400, {"x-openstack-request-id": "req-abc"}, body)]
    )
    client, _ = make_client(fake)
    with pytest.raises(BadRequest) as caught:
        client.create_server(name="v", image_id="i", flavor_id="f", key_name="nope")
    assert caught.value.message == "Invalid key_name provided."
    assert caught.value.request_id == "req-abc"
    assert caught.value.error_type == "badRequest"
    sent = fake.calls_to("POST", "/compute/v2.1/servers")[0].body
    assert sent["server"]["networks"] == "none"


def test_region_without_the_service_is_endpoint_not_found(fake: FakeCloud) -> None:
    client, _ = make_client(fake, region_name="RegionTwo")
    with pytest.raises(EndpointNotFound, match="no public compute endpoint in region RegionTwo"):
        client.list_servers()
    assert [c.path for c in fake.calls] == ["/identity/v3/auth/tokens"]


def test_threads_hit_by_one_revocation_log_in_once(fake: FakeCloud) -> None:
    fake.route("GET", "/compute/v2.1/servers/s1", lambda c: (200, {}, {"server": SERVER}))
    client, _ = make_client(fake)
    client.get_server("s1")
    fake.revoke_all()
    barrier = threading.Barrier(8)

    def worker() -> str:
        barrier.wait()
        return client.get_server("s1").id

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: worker(), range(8)))
    assert results == ["s1"] * 8
    assert client.transport.authentications == 2


def test_a_next_link_that_repeats_itself_is_an_incomplete_listing(fake: FakeCloud) -> None:
    # A listing that stops at a looping link is not the whole collection: the caller must not
    # conclude anything from what is missing (reconcile would declare servers gone).
    def page(call: Call) -> Reply:
        href = "http://cloud.test/compute/v2.1/servers/detail?marker=s1"
        return 200, {}, {"servers": [_server(1)], "servers_links": [{"rel": "next", "href": href}]}

    fake.route("GET", "/compute/v2.1/servers/detail", page)
    client, _ = make_client(fake)
    with pytest.raises(IncompleteListing, match="repeats"):
        client.list_servers()


def test_every_exchange_is_reported_with_its_service_and_outcome(fake: FakeCloud) -> None:
    unavailable: Reply = (503, {}, {"serviceUnavailable": {"code": 503, "message": "busy"}})
    fake.route("GET", "/compute/v2.1/servers/s1", [unavailable, (200, {}, {"server": SERVER})])
    fake.route("POST", "/networking/v2.0/floatingips", [requests.ConnectionError("reset")])
    fake.route("GET", "/networking/v2.0/networks", [requests.ReadTimeout("slow")])
    client, _ = make_client(fake, retries=1)
    seen: list[transport.Call] = []
    transport.watch_calls(seen.append)
    try:
        client.get_server("s1")
        with pytest.raises(Unavailable):
            client.create_floating_ip(floating_network_id="ext")
        with pytest.raises(Timeout):
            client.list_networks()
    finally:
        transport.unwatch_calls(seen.append)

    # The login, the compute version discovery, then each attempt of each call.
    assert [(c.service, c.method, c.outcome) for c in seen] == [
        ("identity", "POST", "2xx"),
        ("compute", "GET", "2xx"),
        ("compute", "GET", "5xx"),
        ("compute", "GET", "2xx"),
        ("network", "POST", "connection"),
        ("network", "GET", "timeout"),
        ("network", "GET", "timeout"),
    ]
    assert all(c.seconds >= 0 for c in seen)


def test_a_failing_call_observer_never_fails_the_call(fake: FakeCloud) -> None:
    fake.route("GET", "/compute/v2.1/servers/s1", lambda c: (200, {}, {"server": SERVER}))
    client, _ = make_client(fake)

    def broken(call: transport.Call) -> None:
        raise RuntimeError("metrics are down")

    transport.watch_calls(broken)
    try:
        assert client.get_server("s1").id == "s1"
    finally:
        transport.unwatch_calls(broken)
