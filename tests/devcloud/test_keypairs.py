"""Nova key pairs: import, show, list, delete, and whose they are (``user_id`` from 2.10)."""

from __future__ import annotations

import requests

from tests.devcloud.conftest import Api, Cloud, Tenant, boot, unique
from tests.sshkeys import ed25519


def _import(api: Api, name: str, public_key: str, **extra: str) -> requests.Response:
    return api.post(
        "compute", "/os-keypairs", {"keypair": {"name": name, "public_key": public_key, **extra}}
    )


def test_a_member_imports_lists_shows_and_deletes_their_own_key_pair(tenant: Tenant) -> None:
    name = unique("key")
    key = ed25519()
    created = _import(tenant.member, name, key)
    assert created.status_code == 201, created.text
    body = created.json()["keypair"]
    assert body["user_id"] == tenant.user_id
    assert body["public_key"] == key
    assert body["type"] == "ssh"
    assert len(body["fingerprint"].split(":")) == 16

    listed = tenant.member.get("compute", "/os-keypairs").json()["keypairs"]
    assert [k["keypair"]["name"] for k in listed] == [name]
    shown = tenant.member.get("compute", f"/os-keypairs/{name}").json()["keypair"]
    assert shown["user_id"] == tenant.user_id
    assert tenant.member.delete("compute", f"/os-keypairs/{name}").status_code == 204
    assert tenant.member.get("compute", f"/os-keypairs/{name}").status_code == 404


def test_an_admin_imports_a_key_pair_for_another_user_and_manages_it_by_user_id(
    cloud: Cloud, tenant: Tenant
) -> None:
    name = unique("key")
    admin = cloud.api(cloud.admin.token or "", "2.10")
    created = _import(admin, name, ed25519(), user_id=tenant.user_id)
    assert created.status_code == 201, created.text
    assert created.json()["keypair"]["user_id"] == tenant.user_id

    # The owner sees it as their own; the admin's own list does not have it.
    assert [
        k["keypair"]["name"]
        for k in tenant.member.get("compute", "/os-keypairs").json()["keypairs"]
    ] == [name]
    assert name not in str(admin.get("compute", "/os-keypairs").json())
    by_user = admin.get("compute", "/os-keypairs", params={"user_id": tenant.user_id})
    assert [k["keypair"]["name"] for k in by_user.json()["keypairs"]] == [name]
    shown = admin.get("compute", f"/os-keypairs/{name}", params={"user_id": tenant.user_id})
    assert shown.status_code == 200
    assert shown.json()["keypair"]["user_id"] == tenant.user_id
    assert admin.get("compute", f"/os-keypairs/{name}").status_code == 404
    deleted = admin.delete("compute", f"/os-keypairs/{name}", params={"user_id": tenant.user_id})
    assert deleted.status_code == 204
    assert tenant.member.get("compute", f"/os-keypairs/{name}").status_code == 404


def test_a_member_may_not_touch_another_users_key_pairs(cloud: Cloud, tenant: Tenant) -> None:
    other = cloud.tenant()
    name = unique("key")
    assert _import(other.member, name, ed25519()).status_code == 201

    refused = _import(tenant.member, unique("key"), ed25519(), user_id=other.user_id)
    assert refused.status_code == 403
    assert "os-keypairs:create" in refused.text
    params = {"user_id": other.user_id}
    assert tenant.member.get("compute", "/os-keypairs", params=params).status_code == 403
    assert tenant.member.get("compute", f"/os-keypairs/{name}", params=params).status_code == 403
    assert tenant.member.delete("compute", f"/os-keypairs/{name}", params=params).status_code == 403
    # Naming oneself is allowed.
    own = tenant.member.get("compute", "/os-keypairs", params={"user_id": tenant.user_id})
    assert own.status_code == 200


def test_user_id_is_new_in_2_10(cloud: Cloud, tenant: Tenant) -> None:
    admin = cloud.api(cloud.admin.token or "", "2.9")
    refused = _import(admin, unique("key"), ed25519(), user_id=tenant.user_id)
    assert refused.status_code == 400
    assert "Additional properties are not allowed" in refused.text
    # Before 2.10 the query string is ignored: the caller's own key pairs are listed.
    name = unique("key")
    assert _import(tenant.member, name, ed25519()).status_code == 201
    listed = admin.get("compute", "/os-keypairs", params={"user_id": tenant.user_id})
    assert listed.status_code == 200
    assert name not in listed.text


def test_duplicate_names_conflict_per_user_only(cloud: Cloud, tenant: Tenant) -> None:
    other = cloud.tenant()
    name = unique("key")
    assert _import(tenant.member, name, ed25519()).status_code == 201
    again = _import(tenant.member, name, ed25519())
    assert again.status_code == 409
    assert f"Key pair '{name}' already exists." in again.text
    assert _import(other.member, name, ed25519()).status_code == 201


def test_a_server_takes_key_name_from_the_key_pairs_of_the_user_who_creates_it(
    cloud: Cloud, tenant: Tenant
) -> None:
    # Nova resolves key_name under the requesting user: a key imported for the soldier cannot
    # be used by the admin who creates a server in the soldier's project, and vice versa.
    name = unique("key")
    admin = cloud.api(cloud.admin.token or "", "2.10")
    assert _import(admin, name, ed25519(), user_id=tenant.user_id).status_code == 201
    refused = tenant.admin.post(
        "compute",
        "/servers",
        {
            "server": {
                "name": unique("vm"),
                "imageRef": cloud.image_id(),
                "flavorRef": "1",
                "networks": [{"uuid": cloud.network_id("private")}],
                "key_name": name,
            }
        },
    )
    assert refused.status_code == 400
    assert "Invalid key_name provided." in refused.text
    server_id = boot(tenant.member, cloud, key_name=name)
    shown = tenant.member.get("compute", f"/servers/{server_id}").json()["server"]
    assert shown["key_name"] == name
