"""The full cloud's starting contents: the same demo cloud devcloud seeds (devcloud/seed.py).

A test written against devcloud's seed (flavor "1" is m1.tiny, host
codesquare-devstack-compute2 exists, the shared network `private` is there) then runs unchanged
against the real cloud. Flavors, images and host names are taken from devcloud's seed itself,
so the two cannot drift apart; the networks are spelled out here as devcloud's seed builds them.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from devcloud.seed import FLAVORS, IMAGES
from tests.realcloud.rest import Admin

if TYPE_CHECKING:
    from tests.realcloud.cloud import Build


def qcow2_image(virtual_size: int) -> bytes:
    """A minimal, valid qcow2 v3 file of the given virtual size and no data.

    Glance inspects every upload and refuses one whose content does not match its disk_format,
    so a qcow2 image needs a real qcow2 header; nothing ever reads further (the virt driver is
    fake). Layout: header in cluster 0, refcount table in cluster 1, L1 table in cluster 3.
    """
    cluster_bits = 16
    cluster = 1 << cluster_bits
    l1_entries = -(-virtual_size // (cluster * (cluster // 8)))
    header = struct.pack(
        ">4sIQIIQIIQQIIQ",
        b"QFI\xfb",  # magic
        3,  # version
        0,  # backing file offset: none
        0,  # backing file name length
        cluster_bits,
        virtual_size,
        0,  # no encryption
        l1_entries,
        3 * cluster,  # L1 table offset
        cluster,  # refcount table offset
        1,  # refcount table clusters
        0,  # snapshots
        0,  # snapshots offset
    )
    # v3 fields: no incompatible/compatible/autoclear features, 16-bit refcounts, header length.
    header += struct.pack(">QQQII", 0, 0, 0, 4, 104)
    header += b"\0" * 8  # end of header extensions
    return header + b"\0" * (4 * cluster - len(header))


def _image(admin: Admin, image_api: str, spec: tuple[Any, ...]) -> None:
    name, disk_format, _size, virtual_size, distro, version = spec
    created = admin.call(
        "POST",
        f"{image_api}/images",
        json={
            "name": name,
            "disk_format": disk_format,
            "container_format": "bare",
            "visibility": "public",
            "min_disk": 0,
            "min_ram": 0,
            "os_distro": distro,
            "os_version": version,
            "hw_rng_model": "virtio",
        },
    ).json()
    data = qcow2_image(virtual_size) if disk_format == "qcow2" else b"\0" * (1 << 20)
    admin.call(
        "PUT",
        f"{image_api}/images/{created['id']}/file",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
        expect=(204,),
    )


def create(build: Build, admin: Admin) -> None:
    compute = build.state["endpoints"]["nova-api"] + "/v2.1"
    network = build.state["endpoints"]["neutron"] + "/v2.0"
    image_api = build.state["endpoints"]["glance"] + "/v2"

    for flavor_id, name, vcpus, ram, disk in FLAVORS:
        body = {"id": flavor_id, "name": name, "vcpus": vcpus, "ram": ram, "disk": disk}
        admin.call("POST", f"{compute}/flavors", json={"flavor": body})
    for spec in IMAGES:
        _image(admin, image_api, spec)

    def post(kind: str, body: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = admin.call("POST", f"{network}/{kind}s", json={kind: body}).json()[
            kind
        ]
        return answer

    public = post(
        "network",
        {
            "name": "public",
            "router:external": True,
            "shared": False,
            "provider:network_type": "flat",
            "provider:physical_network": "public",
        },
    )
    post(
        "subnet",
        {
            "name": "public-subnet",
            "network_id": public["id"],
            "ip_version": 4,
            "cidr": "172.24.4.0/24",
            "enable_dhcp": False,
        },
    )
    private = post("network", {"name": "private", "shared": True})
    private_v4 = post(
        "subnet",
        {
            "name": "private-subnet",
            "network_id": private["id"],
            "ip_version": 4,
            "cidr": "10.0.0.0/20",
        },
    )
    post(
        "subnet",
        {
            "name": "ipv6-private-subnet",
            "network_id": private["id"],
            "ip_version": 6,
            "cidr": "fd00:c0de:5eed::/64",
            "ipv6_ra_mode": "slaac",
            "ipv6_address_mode": "slaac",
        },
    )
    router = post(
        "router", {"name": "router1", "external_gateway_info": {"network_id": public["id"]}}
    )
    admin.call(
        "PUT",
        f"{network}/routers/{router['id']}/add_router_interface",
        json={"subnet_id": private_v4["id"]},
    )
