"""Decoding real API sample bodies into typed results."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from portal.openstack import AddressKind, PowerState, ServerStatus, VmState, parse_time
from portal.openstack.decode import (
    decode_availability_zone,
    decode_compute_service,
    decode_flavor,
    decode_floating_ip,
    decode_image,
    decode_network,
    decode_port,
    decode_power_state,
    decode_project,
    decode_role_assignment,
    decode_router,
    decode_security_group,
    decode_server,
    decode_user,
)

# Nova GET /servers/{id} at 2.1 as the seed's devstack answered it (ids shortened), admin view.
NOVA_SERVER_21 = json.loads("""
{"server": {"id": "f5dc173b-6804-445a-a6d8-c705dad5b5eb", "name": "vm1", "status": "ACTIVE",
 "tenant_id": "6f70656e737461636b20342065766572", "user_id": "fake",
 "metadata": {"portal_user": "soldier-17"},
 "hostId": "92154fab69d5883ba2c8622b7e65f745dd33257221c07af363c51b29", "image": {"id":
 "70a599e0-31e7-49b7-b260-868f441e862b", "links": [{"rel": "bookmark", "href":
 "http://34.64.118.138/compute/images/70a599e0-31e7-49b7-b260-868f441e862b"}]},
 "flavor": {"id": "1", "links": [{"rel": "bookmark", "href": "http://34.64.118.138/compute/flavors/1"}]},
 "created": "2020-10-16T06:26:03Z", "updated": "2020-10-16T06:26:09Z",
 "addresses": {"private": [
   {"version": 4, "addr": "10.0.0.28", "OS-EXT-IPS:type": "fixed",
    "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:4c:2c:30"},
   {"version": 6, "addr": "fdf8:f53e:61e4::18", "OS-EXT-IPS:type": "fixed",
    "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:4c:2c:30"},
   {"version": 4, "addr": "192.168.1.145", "OS-EXT-IPS:type": "floating",
    "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:4c:2c:30"}]},
 "accessIPv4": "", "accessIPv6": "", "links": [], "OS-DCF:diskConfig": "AUTO", "progress": 0,
 "OS-EXT-AZ:availability_zone": "nova", "config_drive": "", "key_name": "demo_key",
 "OS-SRV-USG:launched_at": "2020-10-16T06:26:08.000000", "OS-SRV-USG:terminated_at": null,
 "OS-EXT-SRV-ATTR:host": "codesquare-devstack-compute2",
 "OS-EXT-SRV-ATTR:instance_name": "instance-00000005",
 "OS-EXT-SRV-ATTR:hypervisor_hostname": "codesquare-devstack-compute2",
 "OS-EXT-STS:task_state": null, "OS-EXT-STS:vm_state": "active", "OS-EXT-STS:power_state": 1,
 "os-extended-volumes:volumes_attached": [], "security_groups": [{"name": "default"}]}}
""")["server"]

# The same server at 2.47+, as seen by its (non-admin) owner, while being stopped.
NOVA_SERVER_247 = {
    **{k: v for k, v in NOVA_SERVER_21.items() if not k.startswith("OS-EXT-SRV-ATTR")},
    "flavor": {
        "original_name": "m1.small",
        "vcpus": 1,
        "ram": 2048,
        "disk": 20,
        "ephemeral": 0,
        "swap": 0,
        "extra_specs": {},
    },
    "OS-EXT-STS:task_state": "powering-off",
}

NOVA_SERVER_ERROR = {
    "id": "e1",
    "name": "broken",
    "status": "ERROR",
    "tenant_id": "p",
    "user_id": "u",
    "image": "",
    "addresses": {},
    "OS-EXT-STS:vm_state": "error",
    "OS-EXT-STS:task_state": None,
    "OS-EXT-STS:power_state": 0,
    "OS-SRV-USG:launched_at": None,
    "fault": {
        "code": 500,
        "created": "2020-10-16T06:26:05Z",
        "message": "No valid host was found. There are not enough hosts available.",
    },
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Keystone expires_at / issued_at (fernet: microseconds zero)
        ("2026-11-26T19:31:07.000000Z", datetime(2026, 11, 26, 19, 31, 7, tzinfo=UTC)),
        ("2015-11-07T02:58:43.578887Z", datetime(2015, 11, 7, 2, 58, 43, 578887, tzinfo=UTC)),
        # Keystone password_expires_at: no offset
        ("2016-11-06T15:32:17.000000", datetime(2016, 11, 6, 15, 32, 17, tzinfo=UTC)),
        # Nova created/updated, Neutron and Glance: whole seconds and Z
        ("2020-10-16T06:26:03Z", datetime(2020, 10, 16, 6, 26, 3, tzinfo=UTC)),
        # Nova launched_at / terminated_at: naive UTC with microseconds
        ("2020-10-16T06:26:08.000000", datetime(2020, 10, 16, 6, 26, 8, tzinfo=UTC)),
        # Neutron api-ref samples that omit the Z
        ("2016-12-21T01:36:04", datetime(2016, 12, 21, 1, 36, 4, tzinfo=UTC)),
        # The api-ref's documented ±hh:mm form
        (
            "2020-10-16T15:26:08+09:00",
            datetime(2020, 10, 16, 15, 26, 8, tzinfo=timezone(timedelta(hours=9))),
        ),
        (
            "2020-10-15T21:26:08.123-09:00",
            datetime(2020, 10, 15, 21, 26, 8, 123000, tzinfo=timezone(timedelta(hours=-9))),
        ),
        # lowercase z
        ("2020-10-16T06:26:03z", datetime(2020, 10, 16, 6, 26, 3, tzinfo=UTC)),
    ],
)
def test_parse_time_forms(text: str, expected: datetime) -> None:
    parsed = parse_time(text)
    assert parsed == expected
    assert parsed is not None
    assert parsed.utcoffset() == expected.utcoffset()


def test_offsets_name_the_same_instant() -> None:
    assert parse_time("2020-10-16T15:26:08+09:00") == parse_time("2020-10-16T06:26:08.000000")


@pytest.mark.parametrize("empty", [None, "", "  "])
def test_parse_time_keeps_missing_values_none(empty: str | None) -> None:
    assert parse_time(empty) is None


def test_parse_time_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="Invalid isoformat"):
        parse_time("yesterday")


@pytest.mark.parametrize(
    ("raw", "state", "number"),
    [
        (0, PowerState.NOSTATE, 0),
        (1, PowerState.RUNNING, 1),
        (3, PowerState.PAUSED, 3),
        (4, PowerState.SHUTDOWN, 4),
        (6, PowerState.CRASHED, 6),
        (7, PowerState.SUSPENDED, 7),
        (2, PowerState.UNKNOWN, 2),  # retired BLOCKED
        (5, PowerState.UNKNOWN, 5),  # retired SHUTOFF
        (9, PowerState.UNKNOWN, 9),
        (-1, PowerState.UNKNOWN, -1),
        (None, PowerState.UNKNOWN, None),  # field absent (down cell, 2.69)
    ],
)
def test_power_state_names_and_keeps_unknown_numbers(
    raw: int | None, state: PowerState, number: int | None
) -> None:
    assert decode_power_state(raw) == (state, number)


def test_power_state_labels() -> None:
    assert [s.label for s in PowerState] == [
        "No state",
        "Running",
        "Paused",
        "Shutdown",
        "Crashed",
        "Suspended",
        "Unknown",
    ]


def test_server_at_21_as_admin() -> None:
    server = decode_server(NOVA_SERVER_21)
    assert server.status is ServerStatus.ACTIVE
    assert server.vm_state is VmState.ACTIVE
    assert server.task_state is None
    assert server.power_state is PowerState.RUNNING
    assert server.project_id == "6f70656e737461636b20342065766572"
    assert server.created == datetime(2020, 10, 16, 6, 26, 3, tzinfo=UTC)
    assert server.launched_at == datetime(2020, 10, 16, 6, 26, 8, tzinfo=UTC)
    assert server.terminated_at is None
    assert server.flavor is not None
    assert server.flavor.id == "1"
    assert server.flavor.vcpus is None
    assert server.image_id == "70a599e0-31e7-49b7-b260-868f441e862b"
    assert server.host == "codesquare-devstack-compute2"
    assert server.availability_zone == "nova"
    assert server.key_name == "demo_key"
    assert server.security_groups == ("default",)
    assert dict(server.metadata) == {"portal_user": "soldier-17"}
    assert server.fault is None


def test_server_addresses_split_fixed_floating_v4_v6_with_macs() -> None:
    server = decode_server(NOVA_SERVER_21)
    assert [(a.addr, a.version, a.kind) for a in server.addresses] == [
        ("10.0.0.28", 4, AddressKind.FIXED),
        ("fdf8:f53e:61e4::18", 6, AddressKind.FIXED),
        ("192.168.1.145", 4, AddressKind.FLOATING),
    ]
    assert [a.addr for a in server.fixed_addresses] == ["10.0.0.28", "fdf8:f53e:61e4::18"]
    assert [a.addr for a in server.floating_addresses] == ["192.168.1.145"]
    assert [a.addr for a in server.ipv6] == ["fdf8:f53e:61e4::18"]
    assert [a.addr for a in server.ipv4] == ["10.0.0.28", "192.168.1.145"]
    assert {a.mac for a in server.addresses} == {"fa:16:3e:4c:2c:30"}
    assert {a.network for a in server.addresses} == {"private"}


def test_server_at_247_embeds_flavor_and_hides_admin_fields() -> None:
    server = decode_server(NOVA_SERVER_247)
    assert server.flavor is not None
    assert (server.flavor.id, server.flavor.name) == (None, "m1.small")
    assert (server.flavor.vcpus, server.flavor.ram_mib, server.flavor.disk_gib) == (1, 2048, 20)
    assert server.host is None
    assert server.task_state == "powering-off"
    assert server.status is ServerStatus.ACTIVE


def test_server_in_error_with_fault_and_boot_from_volume_image() -> None:
    server = decode_server(NOVA_SERVER_ERROR)
    assert server.status is ServerStatus.ERROR
    assert server.power_state is PowerState.NOSTATE
    assert server.image_id is None
    assert server.addresses == ()
    assert server.fault is not None
    assert server.fault.code == 500
    assert server.fault.message.startswith("No valid host")
    assert server.fault.created == datetime(2020, 10, 16, 6, 26, 5, tzinfo=UTC)


def test_unexpected_status_and_vm_state_are_unknown_and_raw_kept() -> None:
    server = decode_server(
        {**NOVA_SERVER_ERROR, "status": "BUILDING", "OS-EXT-STS:vm_state": "shutoff"}
    )
    assert server.status is ServerStatus.UNKNOWN
    assert server.status_raw == "BUILDING"
    assert server.vm_state is VmState.UNKNOWN


def test_soft_deleted_vm_state_has_a_hyphen() -> None:
    server = decode_server({**NOVA_SERVER_ERROR, "OS-EXT-STS:vm_state": "soft-delete"})
    assert server.vm_state is VmState.SOFT_DELETED


def test_flavor_detail_swap_before_and_after_275() -> None:
    sample = {
        "id": "42",
        "name": "m1.nano",
        "vcpus": 1,
        "ram": 128,
        "disk": 1,
        "OS-FLV-EXT-DATA:ephemeral": 0,
        "swap": "",
        "os-flavor-access:is_public": True,
        "links": [],
    }
    old = decode_flavor(sample)
    new = decode_flavor({**sample, "swap": 512, "description": "tiny"})
    assert (old.id, old.swap_mib, old.ram_mib, old.description) == ("42", 0, 128, None)
    assert (new.swap_mib, new.description) == (512, "tiny")


def test_glance_image() -> None:
    image = decode_image(
        json.loads("""
        {"status": "active", "name": "cirros-0.6.2-x86_64-disk", "tags": [],
         "container_format": "bare", "created_at": "2014-11-07T17:07:06Z", "disk_format": "qcow2",
         "updated_at": "2014-11-07T17:19:09Z", "visibility": "public", "self": "/v2/images/1bea",
         "min_disk": 0, "protected": false, "id": "1bea47ed-f6a9-463b-b423-14b9cca9ad27",
         "file": "/v2/images/1bea/file", "checksum": "64d7c1cd2b6f60c92c14662941cb7913",
         "os_hash_algo": "sha512", "owner": "5ef70662f8b34079a6eddb8da9d75fe8", "size": 13167616,
         "min_ram": 0, "schema": "/v2/schemas/image", "virtual_size": null}
        """)
    )
    assert image.status == "active"
    assert image.size_bytes == 13167616
    assert image.created_at == datetime(2014, 11, 7, 17, 7, 6, tzinfo=UTC)
    assert image.disk_format == "qcow2"


def test_keystone_user_project_and_assignment() -> None:
    user = decode_user(
        {
            "id": "ff4e51",
            "name": "soldier1",
            "domain_id": "default",
            "enabled": True,
            "default_project_id": "p1",
            "password_expires_at": "2016-11-06T15:32:17.000000",
            "options": {},
            "links": {"self": "x"},
            "email": "s1@example.mil",
        }
    )
    assert user.password_expires_at == datetime(2016, 11, 6, 15, 32, 17, tzinfo=UTC)
    assert user.email == "s1@example.mil"
    project = decode_project(
        {
            "id": "p1",
            "name": "cs-17",
            "domain_id": "default",
            "description": "",
            "enabled": True,
            "is_domain": False,
            "parent_id": "default",
            "tags": [],
            "options": {},
        }
    )
    assert (project.name, project.parent_id) == ("cs-17", "default")
    assignment = decode_role_assignment(
        {
            "role": {"id": "r1", "name": "member"},
            "user": {"id": "u1", "name": "soldier1", "domain": {"id": "default"}},
            "scope": {"project": {"id": "p1", "name": "cs-17", "domain": {"id": "default"}}},
            "links": {"assignment": "x"},
        }
    )
    assert (assignment.role_name, assignment.user_id, assignment.project_id) == (
        "member",
        "u1",
        "p1",
    )


def test_neutron_floating_ip_port_network_router_security_group() -> None:
    fip = decode_floating_ip(
        {
            "id": "2f245a7b",
            "floating_ip_address": "172.24.4.228",
            "floating_network_id": "376da547",
            "fixed_ip_address": "10.0.0.3",
            "port_id": "ce705c24",
            "router_id": "d23abc8d",
            "status": "DOWN",
            "project_id": "4969c491",
            "tenant_id": "4969c491",
            "description": "for vm1",
            "port_details": None,
            "created_at": "2016-12-21T10:55:50Z",
            "updated_at": "2016-12-21T01:36:04Z",
        }
    )
    assert (fip.status, fip.port_id, fip.description) == ("DOWN", "ce705c24", "for vm1")
    assert fip.created_at == datetime(2016, 12, 21, 10, 55, 50, tzinfo=UTC)
    released = decode_floating_ip({"id": "x", "port_id": None, "fixed_ip_address": None})
    assert (released.port_id, released.fixed_ip_address) == (None, None)

    port = decode_port(
        {
            "id": "ce705c24",
            "network_id": "net1",
            "mac_address": "fa:16:3e:c9:cb:f0",
            "fixed_ips": [{"subnet_id": "sub1", "ip_address": "10.0.0.3"}],
            "device_id": "f5dc",
            "device_owner": "compute:nova",
            "status": "ACTIVE",
            "security_groups": ["sg1"],
            "project_id": "4969c491",
        }
    )
    assert port.fixed_ips[0].ip_address == "10.0.0.3"
    assert (port.mac_address, port.device_owner) == ("fa:16:3e:c9:cb:f0", "compute:nova")

    network = decode_network(
        {
            "id": "n1",
            "name": "public",
            "status": "ACTIVE",
            "router:external": True,
            "shared": False,
            "subnets": ["s1"],
            "tenant_id": "admin-p",
            "mtu": 1500,
        }
    )
    assert network.external
    assert network.project_id == "admin-p"
    router = decode_router(
        {
            "id": "r1",
            "name": "router1",
            "status": "ACTIVE",
            "project_id": "p1",
            "external_gateway_info": {
                "network_id": "n1",
                "enable_snat": True,
                "external_fixed_ips": [{"subnet_id": "s1", "ip_address": "172.24.4.3"}],
            },
        }
    )
    assert router.external_network_id == "n1"
    assert router.external_fixed_ips[0].ip_address == "172.24.4.3"
    assert decode_router({"id": "r2", "external_gateway_info": None}).external_network_id is None
    group = decode_security_group(
        {
            "id": "sg1",
            "name": "default",
            "description": "Default security group",
            "project_id": "p1",
            "security_group_rules": [
                {
                    "id": "rule1",
                    "direction": "ingress",
                    "ethertype": "IPv4",
                    "protocol": "tcp",
                    "port_range_min": 22,
                    "port_range_max": 22,
                    "remote_ip_prefix": "0.0.0.0/0",
                    "remote_group_id": None,
                }
            ],
        }
    )
    assert group.rules[0].port_range_min == 22


def test_compute_hosts_and_zones() -> None:
    service = decode_compute_service(
        {
            "id": 7,
            "binary": "nova-compute",
            "host": "compute2",
            "zone": "nova",
            "status": "enabled",
            "state": "up",
            "updated_at": "2020-10-16T06:26:03.000000",
            "disabled_reason": None,
            "forced_down": False,
        }
    )
    assert (service.id, service.enabled, service.up) == ("7", True, True)
    assert service.updated_at == datetime(2020, 10, 16, 6, 26, 3, tzinfo=UTC)
    zone = decode_availability_zone(
        {
            "zoneName": "nova",
            "zoneState": {"available": True},
            "hosts": {
                "compute2": {"nova-compute": {"available": True, "active": True}},
                "compute1": {"nova-compute": {"available": True, "active": True}},
            },
        }
    )
    assert zone.hosts == ("compute1", "compute2")
    assert zone.available
