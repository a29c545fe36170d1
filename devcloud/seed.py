"""The demo cloud a fresh data dir starts with (what devstack's bootstrap would leave behind)."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from devcloud.core import new_hex_id, new_id, now
from devcloud.identity import check_password, hash_password

if TYPE_CHECKING:
    from devcloud.app import Cloud

ROLES = ("admin", "member", "reader", "manager", "service")
SERVICE_USERS = ("nova", "neutron", "glance", "placement")

# (id, name, vcpus, ram MiB, disk GiB). m1.colossal fits on no host: under default quotas Nova
# refuses it first (403 over cores and ram); where quotas allow it, booting ends in ERROR
# "No valid host was found", the way an oversized flavor fails on a real scheduler.
FLAVORS = (
    ("1", "m1.tiny", 1, 512, 1),
    ("2", "m1.small", 1, 2048, 20),
    ("3", "m1.medium", 2, 4096, 40),
    ("4", "m1.large", 4, 8192, 80),
    ("5", "m1.xlarge", 8, 16384, 160),
    ("6", "m1.colossal", 512, 4194304, 20000),
)

HOSTS = ("codesquare-devstack-compute1", "codesquare-devstack-compute2")

IMAGES = (
    # name, disk_format, size bytes, virtual_size bytes, os_distro, os_version
    ("ubuntu-24.04", "qcow2", 616_562_688, 3_758_096_384, "ubuntu", "24.04"),
    ("cirros-0.6.3-x86_64-disk", "qcow2", 21_692_416, 117_440_512, "cirros", "0.6.3"),
)


def seed_cloud(cloud: Cloud) -> None:
    """Create the bootstrap cloud once; on every start make the admin password match."""
    store = cloud.store
    if store.get("meta", "seeded") is None:
        _seed(cloud)
        store.put("meta", {"id": "seeded", "at": now()})
    admin = next(u for u in store.values("user") if u["name"] == "admin")
    cloud.identity.keep_secret(cloud.config.admin_password)
    if not check_password(cloud.config.admin_password, admin.get("password_hash")):
        admin["password_hash"] = hash_password(cloud.config.admin_password)
        store.put("user", admin)


def _seed(cloud: Cloud) -> None:
    store = cloud.store
    identity = cloud.identity
    store.put(
        "domain",
        {
            "id": "default",
            "name": "Default",
            "description": "The default domain",
            "enabled": True,
            "tags": [],
            "options": {},
        },
    )
    for name in ROLES:
        store.put(
            "role",
            {
                "id": new_hex_id(),
                "name": name,
                "domain_id": None,
                "description": None,
                "options": {},
            },
        )
    admin_project = identity.create_project_record(
        name="admin", description="Bootstrap project for initializing the cloud."
    )
    service_project = identity.create_project_record(name="service")
    admin = identity.create_user_record(
        name="admin",
        password=cloud.config.admin_password,
        default_project_id=admin_project["id"],
    )
    identity.grant(admin["id"], admin_project["id"], identity.role_by_name("admin")["id"])
    service_role = identity.role_by_name("service")["id"]
    for name in SERVICE_USERS:
        user = identity.create_user_record(name=name, password=secrets.token_urlsafe(24))
        identity.grant(user["id"], service_project["id"], service_role)

    created = now()
    for flavor_id, name, vcpus, ram, disk in FLAVORS:
        store.put(
            "flavor",
            {
                "id": flavor_id,
                "name": name,
                "vcpus": vcpus,
                "ram": ram,
                "disk": disk,
                "ephemeral": 0,
                "swap": 0,
                "rxtx_factor": 1.0,
                "is_public": True,
                "disabled": False,
                "description": None,
                "extra_specs": {},
                "created_at": created,
            },
        )
    for index, name in enumerate(HOSTS, start=1):
        store.put(
            "host",
            {
                "id": name,
                "hypervisor_id": index,
                "service_id": index + 2,
                "vcpus": 32,
                "memory_mb": 131072,
                "local_gb": 1000,
                "host_ip": f"192.168.100.{10 + index}",
                "zone": "nova",
            },
        )
    for name, disk_format, size, virtual_size, distro, version in IMAGES:
        image_id = new_id()
        store.put(
            "image",
            {
                "id": image_id,
                "name": name,
                "status": "active",
                "visibility": "public",
                "owner": admin_project["id"],
                "min_disk": 0,
                "min_ram": 0,
                "size": size,
                "virtual_size": virtual_size,
                "disk_format": disk_format,
                "container_format": "bare",
                "checksum": secrets.token_hex(16),
                "os_hash_algo": "sha512",
                "os_hash_value": secrets.token_hex(64),
                "os_hidden": False,
                "protected": False,
                "tags": [],
                "created_at": created,
                "updated_at": created,
                "os_distro": distro,
                "os_version": version,
                "hw_rng_model": "virtio",
            },
        )

    net = cloud.network
    project_id = admin_project["id"]
    public = net.create_network_record(
        project_id=project_id, name="public", external=True, shared=False, network_type="flat"
    )
    net.create_subnet_record(
        network=public,
        name="public-subnet",
        cidr="172.24.4.0/24",
        ip_version=4,
        enable_dhcp=False,
    )
    private = net.create_network_record(project_id=project_id, name="private", shared=True)
    private_subnet = net.create_subnet_record(
        network=private, name="private-subnet", cidr="10.0.0.0/20", ip_version=4
    )
    net.create_subnet_record(
        network=private,
        name="ipv6-private-subnet",
        cidr="fd00:c0de:5eed::/64",
        ip_version=6,
        ipv6_mode="slaac",
    )
    router = net.create_router_record(project_id=project_id, name="router1")
    net.set_router_gateway(router, public["id"])
    net.add_interface(router, private_subnet)
    net.ensure_default_sg(project_id)
