"""Every identity call the portal makes, through portal.openstack, against the test cloud.

Runs against whatever CODESQUARE_TEST_CLOUD names: devcloud by default, a real Keystone from
PyPI with ``CODESQUARE_TEST_CLOUD=keystone``. One suite, so devcloud and Keystone are held to the
same standard: a difference shows up as a failure on one side.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from portal.openstack import (
    CloudConfig,
    ConfigurationError,
    Conflict,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    OpenStackClient,
    Project,
    Role,
    Unauthorized,
    User,
    load_config,
)
from portal.openstack.config import APPLICATION_CREDENTIAL
from tests.cloud_targets import CloudTarget

pytestmark = [pytest.mark.cloud, pytest.mark.needs("identity")]

DOMAIN = "default"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _password() -> str:
    return "Pw-" + uuid.uuid4().hex


@dataclass(frozen=True)
class Soldier:
    user: User
    password: str
    project: Project


@pytest.fixture(scope="module")
def admin(cloud_target: CloudTarget) -> OpenStackClient:
    config = load_config(cloud_target.cloud_name, env={}, clouds_yaml=cloud_target.clouds_yaml)
    return OpenStackClient.from_config(config)


@pytest.fixture(scope="module")
def member_role(admin: OpenStackClient) -> Role:
    return admin.find_role("member")


@pytest.fixture
def project(admin: OpenStackClient) -> Project:
    return admin.create_project(name=_name("conf-p"), domain_id=DOMAIN, description="conformance")


@pytest.fixture
def soldier(admin: OpenStackClient, project: Project, member_role: Role) -> Soldier:
    password = _password()
    user = admin.create_user(
        name=_name("conf-u"),
        domain_id=DOMAIN,
        password=password,
        default_project_id=project.id,
        email="soldier@example.mil",
    )
    admin.grant_project_role(project_id=project.id, user_id=user.id, role_id=member_role.id)
    return Soldier(user, password, project)


def _client_for(cloud_target: CloudTarget, soldier: Soldier, password: str) -> OpenStackClient:
    return OpenStackClient.from_config(
        CloudConfig(
            auth_url=cloud_target.auth_url,
            username=soldier.user.name,
            password=password,
            user_domain_id=DOMAIN,
            project_id=soldier.project.id,
        )
    )


# --- tokens ---------------------------------------------------------------------------------


def test_admin_token_is_project_scoped_with_admin_role(admin: OpenStackClient) -> None:
    token = admin.token()
    assert token.project_name == "admin"
    assert "admin" in token.roles
    assert token.expires_at.tzinfo is not None
    assert token.expires_at > datetime.now(UTC)
    assert token.value
    assert token.value not in repr(token)


def test_wrong_password_is_unauthorized(admin: OpenStackClient, soldier: Soldier) -> None:
    with pytest.raises(Unauthorized) as caught:
        admin.authenticate(username=soldier.user.name, password="not-" + soldier.password)
    assert caught.value.status == 401
    assert caught.value.request_id


def test_token_scoped_to_a_project_without_role_is_unauthorized(
    admin: OpenStackClient, soldier: Soldier
) -> None:
    other = admin.create_project(name=_name("conf-other"), domain_id=DOMAIN)
    with pytest.raises(Unauthorized):
        admin.authenticate(
            username=soldier.user.name, password=soldier.password, project_id=other.id
        )


def test_soldier_token_is_scoped_to_their_project(admin: OpenStackClient, soldier: Soldier) -> None:
    token = admin.authenticate(
        username=soldier.user.name, password=soldier.password, project_id=soldier.project.id
    )
    assert (token.user_id, token.project_id) == (soldier.user.id, soldier.project.id)
    assert "member" in token.roles


def test_admin_client_rescoped_to_a_project(
    admin: OpenStackClient, project: Project, cloud_target: CloudTarget
) -> None:
    admin_role = admin.find_role("admin")
    me = admin.token().user_id
    admin.grant_project_role(project_id=project.id, user_id=me, role_id=admin_role.id)
    scoped = admin.for_project(project.id)
    assert scoped.token().project_id == project.id
    assert scoped.get_project(project.id).id == project.id


# --- domains and roles ----------------------------------------------------------------------


def test_domain_lookup_by_id_then_by_name(admin: OpenStackClient) -> None:
    by_id = admin.get_domain("default")
    by_name = admin.get_domain("Default")
    assert by_id.id == by_name.id == "default"
    with pytest.raises(NotFound):
        admin.get_domain(_name("no-such-domain"))


def test_bootstrap_roles_exist_and_are_found_by_name(admin: OpenStackClient) -> None:
    names = {r.name for r in admin.list_roles()}
    assert {"admin", "member", "reader"} <= names
    member = admin.find_role("member")
    assert [r.id for r in admin.list_roles(name="member")] == [member.id]
    with pytest.raises(NotFound):
        admin.find_role(_name("no-such-role"))


# --- users ----------------------------------------------------------------------------------


def test_user_create_get_list_and_find(admin: OpenStackClient, soldier: Soldier) -> None:
    user = admin.get_user(soldier.user.id)
    assert (user.name, user.domain_id, user.enabled) == (soldier.user.name, DOMAIN, True)
    assert user.default_project_id == soldier.project.id
    assert user.email == "soldier@example.mil"
    assert [u.id for u in admin.list_users(name=soldier.user.name, domain_id=DOMAIN)] == [user.id]
    assert soldier.user.id in {u.id for u in admin.list_users()}
    assert admin.find_user(soldier.user.name, domain_id=DOMAIN) == user
    assert admin.find_user(_name("nobody"), domain_id=DOMAIN) is None


def test_duplicate_user_name_is_conflict(admin: OpenStackClient, soldier: Soldier) -> None:
    with pytest.raises(Conflict) as caught:
        admin.create_user(name=soldier.user.name, domain_id=DOMAIN, password=_password())
    assert caught.value.status == 409


def test_unknown_user_is_not_found(admin: OpenStackClient) -> None:
    with pytest.raises(NotFound) as caught:
        admin.get_user(uuid.uuid4().hex)
    assert caught.value.status == 404
    assert caught.value.request_id


def test_user_update(admin: OpenStackClient, soldier: Soldier) -> None:
    updated = admin.update_user(soldier.user.id, email="new@example.mil", description="transferred")
    assert (updated.email, updated.description) == ("new@example.mil", "transferred")
    assert admin.get_user(soldier.user.id).email == "new@example.mil"


def test_disabled_user_cannot_log_in_until_enabled(
    admin: OpenStackClient, soldier: Soldier
) -> None:
    assert admin.disable_user(soldier.user.id).enabled is False
    assert admin.get_user(soldier.user.id).enabled is False
    with pytest.raises(Unauthorized):
        admin.authenticate(username=soldier.user.name, password=soldier.password)
    assert admin.enable_user(soldier.user.id).enabled is True
    admin.authenticate(username=soldier.user.name, password=soldier.password)


def test_member_may_not_list_users(cloud_target: CloudTarget, soldier: Soldier) -> None:
    client = _client_for(cloud_target, soldier, soldier.password)
    with pytest.raises(Forbidden) as caught:
        client.list_users()
    assert caught.value.status == 403
    # but may read their own record
    assert client.get_user(soldier.user.id).id == soldier.user.id


# --- passwords ------------------------------------------------------------------------------


def test_the_password_rule_is_readable_by_any_token_for_the_default_domain_only(
    admin: OpenStackClient, cloud_target: CloudTarget, soldier: Soldier
) -> None:
    member = _client_for(cloud_target, soldier, soldier.password)
    rule = member.password_rule(DOMAIN)
    # The test clouds set no [security_compliance] rule: both values are absent.
    assert (rule.regex, rule.description) == (None, None)
    assert admin.password_rule(DOMAIN) == rule
    with pytest.raises(Forbidden):
        admin.password_rule("not-" + DOMAIN)


def test_self_service_password_change(
    admin: OpenStackClient, soldier: Soldier, cloud_target: CloudTarget
) -> None:
    new = _password()
    admin.change_own_password(soldier.user.id, original_password=soldier.password, new_password=new)
    admin.authenticate(username=soldier.user.name, password=new)
    with pytest.raises(Unauthorized):
        admin.authenticate(username=soldier.user.name, password=soldier.password)


def test_password_change_revokes_existing_tokens(
    admin: OpenStackClient, soldier: Soldier, cloud_target: CloudTarget
) -> None:
    client = _client_for(cloud_target, soldier, soldier.password)
    client.get_user(soldier.user.id)
    admin.change_own_password(
        soldier.user.id, original_password=soldier.password, new_password=_password()
    )
    # The old token is revoked; the one re-authentication with the old password fails too.
    with pytest.raises(Unauthorized):
        client.get_user(soldier.user.id)


def test_self_service_change_with_wrong_original_is_unauthorized(
    admin: OpenStackClient, soldier: Soldier
) -> None:
    with pytest.raises(Unauthorized):
        admin.change_own_password(
            soldier.user.id, original_password="wrong-" + soldier.password, new_password=_password()
        )
    admin.authenticate(username=soldier.user.name, password=soldier.password)


def test_staff_password_reset(admin: OpenStackClient, soldier: Soldier) -> None:
    new = _password()
    user = admin.reset_user_password(soldier.user.id, new)
    assert user.id == soldier.user.id
    admin.authenticate(username=soldier.user.name, password=new)
    with pytest.raises(Unauthorized):
        admin.authenticate(username=soldier.user.name, password=soldier.password)


def test_seed_password_call_is_method_not_allowed(admin: OpenStackClient, soldier: Soldier) -> None:
    # The seed's curl -d to /v3/users/{id} is a POST to a route that has no POST.
    with pytest.raises(MethodNotAllowed) as caught:
        admin.transport.request(
            "identity",
            "POST",
            f"/users/{soldier.user.id}",
            json={"user": {"password": _password()}},
        )
    assert caught.value.status == 405
    admin.authenticate(username=soldier.user.name, password=soldier.password)


# --- projects -------------------------------------------------------------------------------


def test_project_create_get_list(admin: OpenStackClient, project: Project) -> None:
    assert (project.domain_id, project.description, project.enabled) == (
        DOMAIN,
        "conformance",
        True,
    )
    assert admin.get_project(project.id) == project
    assert [p.id for p in admin.list_projects(name=project.name)] == [project.id]
    assert project.id in {p.id for p in admin.list_projects(domain_id=DOMAIN)}
    assert admin.find_project(project.name, domain_id=DOMAIN) == project


def test_duplicate_project_is_conflict(admin: OpenStackClient, project: Project) -> None:
    with pytest.raises(Conflict):
        admin.create_project(name=project.name, domain_id=DOMAIN)


def test_unknown_project_is_not_found(admin: OpenStackClient) -> None:
    with pytest.raises(NotFound):
        admin.get_project(uuid.uuid4().hex)


# --- role assignments -----------------------------------------------------------------------


def test_grant_check_list_revoke(
    admin: OpenStackClient, soldier: Soldier, member_role: Role
) -> None:
    ids = {"project_id": soldier.project.id, "user_id": soldier.user.id}
    assert admin.check_project_role(**ids, role_id=member_role.id)
    # granting again is idempotent
    admin.grant_project_role(**ids, role_id=member_role.id)
    assignments = admin.list_role_assignments(**ids)
    assert [(a.role_id, a.role_name, a.user_name) for a in assignments] == [
        (member_role.id, "member", soldier.user.name)
    ]
    admin.revoke_project_role(**ids, role_id=member_role.id)
    assert not admin.check_project_role(**ids, role_id=member_role.id)
    assert admin.list_role_assignments(**ids) == []
    with pytest.raises(NotFound):
        admin.revoke_project_role(**ids, role_id=member_role.id)
    with pytest.raises(Unauthorized):
        admin.authenticate(
            username=soldier.user.name, password=soldier.password, project_id=soldier.project.id
        )


def test_default_project_alone_grants_nothing(admin: OpenStackClient, project: Project) -> None:
    password = _password()
    user = admin.create_user(
        name=_name("conf-nogrant"),
        domain_id=DOMAIN,
        password=password,
        default_project_id=project.id,
    )
    assert admin.list_role_assignments(user_id=user.id) == []
    with pytest.raises(Unauthorized):
        admin.authenticate(username=user.name, password=password, project_id=project.id)


def test_grant_of_unknown_role_is_not_found(admin: OpenStackClient, soldier: Soldier) -> None:
    with pytest.raises(NotFound):
        admin.grant_project_role(
            project_id=soldier.project.id, user_id=soldier.user.id, role_id=uuid.uuid4().hex
        )


# --- application credentials ----------------------------------------------------------------


def test_application_credential_auth(admin: OpenStackClient, cloud_target: CloudTarget) -> None:
    me = admin.token()
    name = _name("conf-appcred")
    created = admin.transport.request(
        "identity",
        "POST",
        f"/users/{me.user_id}/application_credentials",
        json={"application_credential": {"name": name}},
    ).json()["application_credential"]
    by_id = OpenStackClient.from_config(
        CloudConfig(
            auth_url=cloud_target.auth_url,
            auth_type=APPLICATION_CREDENTIAL,
            application_credential_id=created["id"],
            application_credential_secret=created["secret"],
        )
    )
    token = by_id.token()
    assert (token.user_id, token.project_id) == (me.user_id, me.project_id)
    assert by_id.get_project(me.project_id or "").name == "admin"
    assert by_id.for_project(me.project_id or "") is by_id
    with pytest.raises(ConfigurationError):
        by_id.for_project(uuid.uuid4().hex)
    by_name = OpenStackClient.from_config(
        CloudConfig(
            auth_url=cloud_target.auth_url,
            auth_type=APPLICATION_CREDENTIAL,
            application_credential_name=name,
            application_credential_secret=created["secret"],
            username=me.user_name,
            user_domain_id=DOMAIN,
        )
    )
    assert by_name.token().user_id == me.user_id
    wrong = OpenStackClient.from_config(
        CloudConfig(
            auth_url=cloud_target.auth_url,
            auth_type=APPLICATION_CREDENTIAL,
            application_credential_id=created["id"],
            application_credential_secret="not-" + created["secret"],
        )
    )
    with pytest.raises(Unauthorized):
        wrong.token()
