"""Request bodies of the client's calls and wait_for_server's rules, over a fake transport."""

from __future__ import annotations

import pytest

from portal.openstack import (
    ConfigurationError,
    NotFound,
    OpenStackClient,
    RebootType,
    ServerInError,
    ServerStatus,
    WaitTimeout,
)
from tests.unit.openstack_fake import FakeCloud, Reply, make_client


def _server(status: str, task: str | None = None, vm: str = "active") -> dict[str, object]:
    return {
        "id": "s1",
        "name": "vm",
        "status": status,
        "tenant_id": "p",
        "user_id": "u",
        "OS-EXT-STS:vm_state": vm,
        "OS-EXT-STS:task_state": task,
        "OS-EXT-STS:power_state": 1,
    }


@pytest.fixture
def fake() -> FakeCloud:
    return FakeCloud()


def test_create_server_body(fake: FakeCloud) -> None:
    fake.route("POST", "/compute/v2.1/servers", lambda c: (202, {}, {"server": {"id": "new"}}))
    client, _ = make_client(fake)
    server_id = client.create_server(
        name="vm1",
        image_id="img",
        flavor_id="42",
        network_ids=["net"],
        security_group_ids=["sg-id"],
        availability_zone="nova",
        host="compute2",
        metadata={"portal_user": "s1"},
        key_name="key",
        user_data="I2Nsb3VkLWNvbmZpZw==",
    )
    assert server_id == "new"
    (call,) = fake.calls_to("POST", "/compute/v2.1/servers")
    assert call.body == {
        "server": {
            "name": "vm1",
            "imageRef": "img",
            "flavorRef": "42",
            "networks": [{"uuid": "net"}],
            "security_groups": [{"name": "sg-id"}],
            "availability_zone": "nova:compute2",
            "metadata": {"portal_user": "s1"},
            "key_name": "key",
            "user_data": "I2Nsb3VkLWNvbmZpZw==",
        }
    }
    assert call.headers["OpenStack-API-Version"] == "compute 2.90"


def test_forced_host_needs_a_zone(fake: FakeCloud) -> None:
    client, _ = make_client(fake)
    with pytest.raises(ConfigurationError):
        client.create_server(name="v", image_id="i", flavor_id="f", host="compute2")
    assert fake.calls == []


def test_server_action_bodies(fake: FakeCloud) -> None:
    fake.route("POST", "/compute/v2.1/servers/s1/action", lambda c: (202, {}, None))
    client, _ = make_client(fake)
    client.start_server("s1")
    client.stop_server("s1")
    client.reboot_server("s1")
    client.reboot_server("s1", kind=RebootType.HARD)
    bodies = [c.body for c in fake.calls_to("POST", "/compute/v2.1/servers/s1/action")]
    assert bodies == [
        {"os-start": None},
        {"os-stop": None},
        {"reboot": {"type": "SOFT"}},
        {"reboot": {"type": "HARD"}},
    ]


def test_ids_are_escaped_in_paths(fake: FakeCloud) -> None:
    fake.route(
        "GET", "/compute/v2.1/servers/a%2Fb", lambda c: (200, {}, {"server": _server("ACTIVE")})
    )
    client, _ = make_client(fake)
    client.get_server("a/b")
    assert fake.calls[-1].path == "/compute/v2.1/servers/a%2Fb"


def test_disassociate_sends_an_explicit_null(fake: FakeCloud) -> None:
    fip = {"id": "f1", "floating_ip_address": "172.24.4.9", "port_id": None}
    fake.route("PUT", "/networking/v2.0/floatingips/f1", lambda c: (200, {}, {"floatingip": fip}))
    client, _ = make_client(fake)
    client.disassociate_floating_ip("f1")
    assert fake.calls[-1].body == {"floatingip": {"port_id": None}}


def test_self_password_change_sends_no_token(fake: FakeCloud) -> None:
    fake.route("POST", "/identity/v3/users/u1/password", lambda c: (204, {}, None))
    client, _ = make_client(fake)
    client.change_own_password("u1", original_password="old", new_password="new")
    call = fake.calls[-1]
    assert "X-Auth-Token" not in call.headers
    assert call.body == {"user": {"original_password": "old", "password": "new"}}


def test_role_grant_check_and_revoke(fake: FakeCloud) -> None:
    path = "/identity/v3/projects/p/users/u/roles/r"
    fake.route("PUT", path, lambda c: (204, {}, None))
    fake.route("HEAD", path, [(204, {}, None), (404, {}, None)])
    client, _ = make_client(fake)
    client.grant_project_role(project_id="p", user_id="u", role_id="r")
    assert client.check_project_role(project_id="p", user_id="u", role_id="r")
    assert not client.check_project_role(project_id="p", user_id="u", role_id="r")
    assert fake.calls_to("PUT", path)[0].body is None


def test_all_projects_listing_query(fake: FakeCloud) -> None:
    fake.route("GET", "/compute/v2.1/servers/detail", lambda c: (200, {}, {"servers": []}))
    client, _ = make_client(fake)
    client.list_servers(all_projects=True, project_id="p1", status=ServerStatus.ACTIVE)
    client.list_servers(project_id="ignored-without-all-projects")
    first, second = fake.calls_to("GET", "/compute/v2.1/servers/detail")
    assert dict(first.query) == {"all_tenants": "true", "project_id": "p1", "status": "ACTIVE"}
    assert second.query == []


def _sequence(fake: FakeCloud, replies: list[Reply]) -> None:
    fake.route("GET", "/compute/v2.1/servers/s1", list(replies))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _client_with_clock(fake: FakeCloud, clock: Clock) -> OpenStackClient:
    client, _ = make_client(fake)
    client.transport.shared.monotonic = clock.monotonic
    client.transport.shared.sleep = clock.sleep
    return client


def test_wait_needs_the_status_and_no_task(fake: FakeCloud, clock: Clock) -> None:
    _sequence(
        fake,
        [
            (200, {}, {"server": _server("ACTIVE", task="powering-off")}),
            (200, {}, {"server": _server("SHUTOFF", vm="stopped")}),
        ],
    )
    client = _client_with_clock(fake, clock)
    server = client.wait_for_server("s1", status=ServerStatus.SHUTOFF, timeout=10, interval=2)
    assert server is not None
    assert server.status is ServerStatus.SHUTOFF
    assert clock.now == 2


def test_wait_for_any_of_several_statuses(fake: FakeCloud, clock: Clock) -> None:
    _sequence(fake, [(200, {}, {"server": _server("SHUTOFF", vm="stopped")})])
    client = _client_with_clock(fake, clock)
    server = client.wait_for_server(
        "s1", status=[ServerStatus.ACTIVE, ServerStatus.SHUTOFF], timeout=10
    )
    assert server is not None
    assert clock.now == 0


def test_wait_raises_on_error(fake: FakeCloud, clock: Clock) -> None:
    broken = {**_server("ERROR", vm="error"), "fault": {"code": 500, "message": "No valid host"}}
    _sequence(
        fake,
        [(200, {}, {"server": _server("BUILD", task="spawning")}), (200, {}, {"server": broken})],
    )
    client = _client_with_clock(fake, clock)
    with pytest.raises(ServerInError, match="No valid host"):
        client.wait_for_server("s1", status=ServerStatus.ACTIVE, timeout=10)


def test_wait_for_error_itself_returns_it(fake: FakeCloud, clock: Clock) -> None:
    _sequence(fake, [(200, {}, {"server": _server("ERROR", vm="error")})])
    client = _client_with_clock(fake, clock)
    server = client.wait_for_server("s1", status=ServerStatus.ERROR, timeout=10)
    assert server is not None


def test_wait_until_gone(fake: FakeCloud, clock: Clock) -> None:
    gone: Reply = (
        404,
        {},
        {"itemNotFound": {"code": 404, "message": "Instance s1 could not be found."}},
    )
    _sequence(fake, [(200, {}, {"server": _server("ACTIVE", task="deleting")}), gone])
    client = _client_with_clock(fake, clock)
    assert client.wait_for_server("s1", gone=True, timeout=10) is None


def test_vanishing_while_a_status_is_awaited_is_not_found(fake: FakeCloud, clock: Clock) -> None:
    _sequence(fake, [(404, {}, {"itemNotFound": {"code": 404, "message": "gone"}})])
    client = _client_with_clock(fake, clock)
    with pytest.raises(NotFound):
        client.wait_for_server("s1", status=ServerStatus.ACTIVE, timeout=10)


def test_wait_deadline(fake: FakeCloud, clock: Clock) -> None:
    _sequence(fake, [(200, {}, {"server": _server("BUILD", task="spawning", vm="building")})])
    client = _client_with_clock(fake, clock)
    with pytest.raises(WaitTimeout) as caught:
        client.wait_for_server("s1", status=ServerStatus.ACTIVE, timeout=5, interval=2)
    assert caught.value.last_status == "BUILD"
    assert clock.now == 5  # slept 2, 2, then the 1 s left; never past the deadline


def test_wait_needs_something_to_wait_for(fake: FakeCloud) -> None:
    client, _ = make_client(fake)
    with pytest.raises(ValueError, match="wait for"):
        client.wait_for_server("s1")


def test_scoped_clients_share_settings_and_cache(fake: FakeCloud) -> None:
    client, _ = make_client(fake)
    scoped = client.for_project("p2")
    assert scoped.config is client.config
    assert scoped.transport.shared is client.transport.shared
    assert client.for_project("p-admin") is client  # already scoped there
    assert scoped.for_project("p3") is client.for_project("p3")
