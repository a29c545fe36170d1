"""Keystone v3 behaviour: discovery, tokens and catalog, users, projects, roles, policy."""

from __future__ import annotations

import re

import requests

from devcloud.testing import RunningDevcloud
from tests.devcloud.conftest import Api, Cloud, Tenant, issue_token, password_auth, unique

KEYSTONE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def test_every_service_root_answers_its_version_document(cloud: Cloud) -> None:
    url = cloud.url
    identity = requests.get(f"{url}/identity", timeout=10)
    assert identity.status_code == 300
    assert identity.json()["versions"]["values"][0]["id"] == "v3.14"
    assert requests.get(f"{url}/identity/v3", timeout=10).json()["version"]["status"] == "stable"

    compute = requests.get(f"{url}/compute", timeout=10).json()["versions"]
    v21 = next(v for v in compute if v["id"] == "v2.1")
    assert (v21["min_version"], v21["version"], v21["status"]) == ("2.1", "2.96", "CURRENT")
    assert requests.get(f"{url}/compute/v2.1", timeout=10).json()["version"]["version"] == "2.96"

    network = requests.get(f"{url}/networking", timeout=10).json()
    assert network["versions"][0]["id"] == "v2.0"
    image = requests.get(f"{url}/image", timeout=10)
    assert image.status_code == 300
    assert image.json()["versions"][0]["status"] == "CURRENT"


def test_a_token_names_itself_in_a_header_and_carries_the_catalog(cloud: Cloud) -> None:
    response = requests.post(
        f"{cloud.url}/identity/v3/auth/tokens",
        json=password_auth("admin", cloud.running.admin_password, "admin"),
        timeout=10,
    )
    assert response.status_code == 201
    assert response.headers["X-Subject-Token"]
    assert response.headers["x-openstack-request-id"].startswith("req-")
    assert response.headers["Vary"] == "X-Auth-Token"
    token = response.json()["token"]
    assert "id" not in token
    assert KEYSTONE_TIME.match(token["expires_at"])
    assert KEYSTONE_TIME.match(token["issued_at"])
    assert token["project"]["name"] == "admin"
    assert {r["name"] for r in token["roles"]} == {"admin", "member", "reader"}
    catalog = {entry["type"]: entry for entry in token["catalog"]}
    assert set(catalog) == {"identity", "compute", "network", "image", "placement"}
    assert catalog["compute"]["endpoints"][0]["url"] == f"{cloud.url}/compute/v2.1"
    for entry in catalog.values():
        interfaces = {e["interface"] for e in entry["endpoints"]}
        assert interfaces == {"public", "internal", "admin"}
        assert {e["region_id"] for e in entry["endpoints"]} == {"RegionOne"}


def test_scope_by_project_id_and_unscoped_tokens(cloud: Cloud, tenant: Tenant) -> None:
    body = password_auth(tenant.user_name, tenant.password, None)
    body["auth"]["scope"] = {"project": {"id": tenant.project_id}}
    scoped = requests.post(f"{cloud.url}/identity/v3/auth/tokens", json=body, timeout=10)
    assert scoped.json()["token"]["project"]["id"] == tenant.project_id

    body["auth"]["scope"] = "unscoped"
    unscoped = requests.post(f"{cloud.url}/identity/v3/auth/tokens", json=body, timeout=10)
    assert unscoped.status_code == 201
    assert "project" not in unscoped.json()["token"]
    assert "catalog" not in unscoped.json()["token"]

    # Without a scope, the user's default project (where they hold a role) is used.
    del body["auth"]["scope"]
    default = requests.post(f"{cloud.url}/identity/v3/auth/tokens", json=body, timeout=10)
    assert default.json()["token"]["project"]["id"] == tenant.project_id


def test_bad_credentials_and_roleless_scopes_get_401_with_www_authenticate(cloud: Cloud) -> None:
    tokens = f"{cloud.url}/identity/v3/auth/tokens"
    wrong = requests.post(tokens, json=password_auth("admin", "wrong", "admin"), timeout=10)
    assert wrong.status_code == 401
    assert wrong.json()["error"] == {
        "code": 401,
        "message": "The request you have made requires authentication.",
        "title": "Unauthorized",
    }
    assert wrong.headers["WWW-Authenticate"] == f'Keystone uri="{cloud.url}/identity"'
    other = cloud.tenant()
    no_role = requests.post(
        tokens, json=password_auth(other.user_name, other.password, "admin"), timeout=10
    )
    assert no_role.status_code == 401


def test_a_token_can_be_validated_and_revoked(cloud: Cloud, tenant: Tenant) -> None:
    subject = tenant.member.token
    assert subject is not None
    check = cloud.admin.get("identity", "/v3/auth/tokens", headers={"X-Subject-Token": subject})
    assert check.status_code == 200
    assert check.json()["token"]["user"]["id"] == tenant.user_id
    assert tenant.member.get("compute", "/servers").status_code == 200
    revoke = cloud.admin.delete("identity", "/v3/auth/tokens", headers={"X-Subject-Token": subject})
    assert revoke.status_code == 204
    assert tenant.member.get("compute", "/servers").status_code == 401
    gone = cloud.admin.get("identity", "/v3/auth/tokens", headers={"X-Subject-Token": subject})
    assert gone.status_code == 404


def test_missing_and_unknown_tokens_are_401_on_every_service(cloud: Cloud) -> None:
    for service, path in (("compute", "/servers"), ("network", "/ports"), ("image", "/images")):
        assert Api(cloud.url, None).get(service, path).status_code == 401
        response = Api(cloud.url, "not-a-token").get(service, path)
        assert response.status_code == 401
        assert response.json()["error"]["title"] == "Unauthorized"
        assert "WWW-Authenticate" in response.headers


def test_application_credentials_authenticate_by_id_or_by_name_and_user(
    cloud: Cloud, tenant: Tenant
) -> None:
    created = tenant.member.post(
        "identity",
        f"/v3/users/{tenant.user_id}/application_credentials",
        {"application_credential": {"name": "portal"}},
    )
    assert created.status_code == 201, created.text
    cred = created.json()["application_credential"]
    assert cred["project_id"] == tenant.project_id
    tokens = f"{cloud.url}/identity/v3/auth/tokens"

    def auth(identity: dict[str, object]) -> requests.Response:
        body = {
            "auth": {
                "identity": {
                    "methods": ["application_credential"],
                    "application_credential": identity,
                }
            }
        }
        return requests.post(tokens, json=body, timeout=10)

    by_id = auth({"id": cred["id"], "secret": cred["secret"]})
    assert by_id.status_code == 201
    assert by_id.json()["token"]["project"]["id"] == tenant.project_id
    assert by_id.json()["token"]["application_credential"]["id"] == cred["id"]
    by_name = auth(
        {
            "name": "portal",
            "secret": cred["secret"],
            "user": {"name": tenant.user_name, "domain": {"id": "default"}},
        }
    )
    assert by_name.status_code == 201
    assert auth({"id": cred["id"], "secret": "wrong"}).status_code == 401


def test_user_and_project_names_are_unique_per_domain(cloud: Cloud, tenant: Tenant) -> None:
    dup_user = cloud.admin.post(
        "identity", "/v3/users", {"user": {"name": tenant.user_name, "domain_id": "default"}}
    )
    assert dup_user.status_code == 409
    assert "Duplicate entry" in dup_user.json()["error"]["message"]
    dup_project = cloud.admin.post(
        "identity",
        "/v3/projects",
        {"project": {"name": tenant.project_name, "domain_id": "default"}},
    )
    assert dup_project.status_code == 409


def test_lookups_by_name_and_id(cloud: Cloud, tenant: Tenant) -> None:
    admin = cloud.admin
    users = admin.get("identity", "/v3/users", params={"name": tenant.user_name}).json()["users"]
    assert [u["id"] for u in users] == [tenant.user_id]
    assert users[0]["default_project_id"] == tenant.project_id
    projects = admin.get("identity", "/v3/projects", params={"name": tenant.project_name}).json()
    assert [p["id"] for p in projects["projects"]] == [tenant.project_id]
    roles = admin.get("identity", "/v3/roles", params={"name": "member"}).json()["roles"]
    assert [r["name"] for r in roles] == ["member"]
    assert admin.get("identity", "/v3/domains/default").json()["domain"]["name"] == "Default"
    by_name = admin.get("identity", "/v3/domains", params={"name": "Default"}).json()
    assert [d["id"] for d in by_name["domains"]] == ["default"]
    missing = admin.get("identity", "/v3/users/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "Could not find user: nope."


def test_user_list_pages_with_limit_and_marker(cloud: Cloud) -> None:
    first = cloud.admin.get("identity", "/v3/users", params={"limit": 2}).json()
    assert len(first["users"]) == 2
    assert first["links"]["next"]
    second = cloud.admin.session.get(first["links"]["next"], timeout=10).json()
    assert second["users"][0]["id"] != first["users"][0]["id"]


def test_role_assignments_can_be_granted_checked_listed_and_revoked(
    cloud: Cloud, tenant: Tenant
) -> None:
    reader = cloud.role_id("reader")
    path = f"/v3/projects/{tenant.project_id}/users/{tenant.user_id}/roles/{reader}"
    assert cloud.admin.call("HEAD", "identity", path).status_code == 404
    assert cloud.admin.put("identity", path).status_code == 204
    assert cloud.admin.put("identity", path).status_code == 204  # idempotent
    assert cloud.admin.call("HEAD", "identity", path).status_code == 204
    listed = cloud.admin.get(
        "identity",
        "/v3/role_assignments",
        params={
            "user.id": tenant.user_id,
            "scope.project.id": tenant.project_id,
            "include_names": 1,
        },
    ).json()["role_assignments"]
    assert {a["role"]["name"] for a in listed} == {"member", "reader"}
    assert listed[0]["scope"]["project"]["name"] == tenant.project_name
    assert cloud.admin.delete("identity", path).status_code == 204
    assert cloud.admin.call("HEAD", "identity", path).status_code == 404
    missing_role = f"/v3/projects/{tenant.project_id}/users/{tenant.user_id}/roles/nope"
    assert cloud.admin.put("identity", missing_role).status_code == 404


def test_members_cannot_administer_identity(cloud: Cloud, tenant: Tenant) -> None:
    forbidden = tenant.member.get("identity", "/v3/users")
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["message"] == (
        "You are not authorized to perform the requested action: identity:list_users."
    )
    assert (
        tenant.member.post("identity", "/v3/projects", {"project": {"name": "x"}}).status_code
        == 403
    )
    # Users may read themselves.
    assert tenant.member.get("identity", f"/v3/users/{tenant.user_id}").status_code == 200


def test_the_seed_password_call_is_405_and_bad_bodies_name_the_field(
    cloud: Cloud, tenant: Tenant
) -> None:
    wrong_method = cloud.admin.post(
        "identity", f"/v3/users/{tenant.user_id}", {"user": {"password": "x"}}
    )
    assert wrong_method.status_code == 405
    assert "PATCH" in wrong_method.headers["Allow"]
    assert wrong_method.json()["error"]["code"] == 405
    no_user = cloud.admin.post("identity", "/v3/users", {"name": "x"})
    assert no_user.status_code == 400
    assert no_user.json()["error"]["message"] == "'user' is a required property"
    bad_name = cloud.admin.post("identity", "/v3/users", {"user": {"name": 5}})
    assert bad_name.status_code == 400
    assert "'user/name'" in bad_name.json()["error"]["message"]
    no_original = requests.post(
        f"{cloud.url}/identity/v3/users/{tenant.user_id}/password",
        json={"user": {"password": "new"}},
        timeout=10,
    )
    assert no_original.status_code == 400
    assert "'original_password' is a required property" in no_original.json()["error"]["message"]


def test_self_service_password_change_revokes_tokens(cloud: Cloud, tenant: Tenant) -> None:
    url = f"{cloud.url}/identity/v3/users/{tenant.user_id}/password"
    wrong = requests.post(
        url, json={"user": {"password": "new-pw", "original_password": "nope"}}, timeout=10
    )
    assert wrong.status_code == 401
    ok = requests.post(
        url,
        json={"user": {"password": "new-pw", "original_password": tenant.password}},
        timeout=10,
    )
    assert ok.status_code == 204
    assert ok.content == b""
    assert tenant.member.get("compute", "/servers").status_code == 401
    assert issue_token(cloud.url, tenant.user_name, "new-pw", tenant.project_name)


def test_admin_password_reset_and_disable(cloud: Cloud, tenant: Tenant) -> None:
    reset = cloud.admin.call(
        "PATCH", "identity", f"/v3/users/{tenant.user_id}", json={"user": {"password": "staff-set"}}
    )
    assert reset.status_code == 200
    assert "password" not in reset.json()["user"]
    assert tenant.member.get("compute", "/servers").status_code == 401
    token = issue_token(cloud.url, tenant.user_name, "staff-set", tenant.project_name)
    cloud.admin.call(
        "PATCH", "identity", f"/v3/users/{tenant.user_id}", json={"user": {"enabled": False}}
    )
    assert Api(cloud.url, token).get("compute", "/servers").status_code == 401
    denied = requests.post(
        f"{cloud.url}/identity/v3/auth/tokens",
        json=password_auth(tenant.user_name, "staff-set", tenant.project_name),
        timeout=10,
    )
    assert denied.status_code == 401


def test_user_projects_and_auth_projects_list_where_a_user_has_roles(
    cloud: Cloud, tenant: Tenant
) -> None:
    own = tenant.member.get("identity", f"/v3/users/{tenant.user_id}/projects").json()
    assert [p["id"] for p in own["projects"]] == [tenant.project_id]
    auth = tenant.member.get("identity", "/v3/auth/projects").json()
    assert [p["name"] for p in auth["projects"]] == [tenant.project_name]
    assert tenant.member.get("identity", f"/v3/projects/{tenant.project_id}").status_code == 200
    other = cloud.admin.post(
        "identity", "/v3/projects", {"project": {"name": unique("other"), "domain_id": "default"}}
    ).json()["project"]
    assert tenant.member.get("identity", f"/v3/projects/{other['id']}").status_code == 403


def test_a_password_rule_refuses_new_passwords_that_do_not_match_it(
    cloud: Cloud, tenant: Tenant, running: RunningDevcloud
) -> None:
    running.faults.password_rule(r"^(?=.*\d).{12,}$", "at least 12 characters with a digit")
    try:
        url = f"{cloud.url}/identity/v3/users/{tenant.user_id}/password"
        weak = {"user": {"password": "short", "original_password": tenant.password}}
        refused = requests.post(url, json=weak, timeout=10)
        assert refused.status_code == 400
        assert refused.json()["error"]["message"] == (
            "The password does not match the requirements: at least 12 characters with a digit."
        )
        # A wrong original password is checked first, and a refused change changes nothing.
        wrong = {"user": {"password": "short", "original_password": "nope"}}
        assert requests.post(url, json=wrong, timeout=10).status_code == 401
        assert issue_token(cloud.url, tenant.user_name, tenant.password, tenant.project_name)
        patched = cloud.admin.call(
            "PATCH", "identity", f"/v3/users/{tenant.user_id}", json={"user": {"password": "x"}}
        )
        assert patched.status_code == 400
        strong = {"user": {"password": "long-enough-1", "original_password": tenant.password}}
        assert requests.post(url, json=strong, timeout=10).status_code == 204
    finally:
        running.faults.password_rule(None)
    url = f"{cloud.url}/identity/v3/users/{tenant.user_id}/password"
    anything = {"user": {"password": "x", "original_password": "long-enough-1"}}
    assert requests.post(url, json=anything, timeout=10).status_code == 204
