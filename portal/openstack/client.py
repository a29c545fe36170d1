"""The portal's OpenStack client: one typed method per call of the contract.

Section names in docstrings refer to the upstream api-refs (identity v3, compute v2.1,
networking v2.0, image v2) as summarised in shared/openstack-contract-details.md.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from portal.openstack import decode
from portal.openstack.config import CloudConfig, load_config
from portal.openstack.errors import (
    ConfigurationError,
    EndpointNotFound,
    NotFound,
    OpenStackError,
    WaitTimeout,
)
from portal.openstack.tokencache import TokenCache
from portal.openstack.transport import (
    Shared,
    Transport,
    build_auth_plugin,
    map_keystoneauth_error,
    normalise_endpoint,
)
from portal.openstack.types import (
    AvailabilityZone,
    ComputeQuota,
    ComputeService,
    Domain,
    Flavor,
    FloatingIP,
    Hypervisor,
    Image,
    Inventory,
    Keypair,
    Microversion,
    Network,
    NetworkIpAvailability,
    PasswordRule,
    Port,
    Project,
    RebootType,
    ResourceProvider,
    Role,
    RoleAssignment,
    Router,
    SecurityGroup,
    Server,
    ServerStatus,
    Subnet,
    Token,
    User,
)

log = logging.getLogger("portal.openstack")

# Compute 2.10 lets an admin name the owner of a key pair.
KEYPAIR_USER_MICROVERSION = Microversion(2, 10)


class ServerInError(OpenStackError):
    """``wait_for_server`` saw the server go to ERROR while waiting for something else."""

    def __init__(self, server: Server) -> None:
        fault = server.fault.message if server.fault else "no fault recorded"
        super().__init__(f"server {server.id} is in ERROR: {fault}")
        self.server = server


def _q(value: str) -> str:
    """A path segment, escaped (ids are opaque strings from users or the cloud)."""
    return quote(value, safe="")


def _flag(value: bool | None) -> str | None:
    return None if value is None else ("true" if value else "false")


def _token_from_access(ref: Any) -> Token:
    return Token(
        user_id=str(ref.user_id),
        user_name=str(ref.username),
        user_domain_id=ref.user_domain_id,
        project_id=ref.project_id,
        project_name=ref.project_name,
        roles=tuple(ref.role_names or ()),
        expires_at=ref.expires,
        issued_at=ref.issued,
        value=str(ref.auth_token),
    )


class OpenStackClient:
    """Typed calls to Keystone, Nova, Neutron and Glance for one token scope.

    Build one with ``OpenStackClient.from_config(...)`` (or ``portal.cloud.get_client()`` in the
    portal); ``for_project(project_id)`` gives the same user's client scoped to another project.
    Every method raises ``portal.openstack.errors.OpenStackError`` subclasses on failure.
    """

    def __init__(
        self, shared: Shared, transport: Transport, parent: OpenStackClient | None = None
    ) -> None:
        self._shared = shared
        self._http = transport
        # Scoped clients are cached on the client built from the configuration.
        self._root: OpenStackClient = parent or self
        self._scoped: dict[str, OpenStackClient] = {}
        self._scoped_lock = threading.Lock()

    # --- construction and scope --------------------------------------------------------

    @classmethod
    def from_config(
        cls, config: CloudConfig, *, token_cache: TokenCache | None = None
    ) -> OpenStackClient:
        """A client for the configured user and scope."""
        shared = Shared(config, token_cache)
        plugin = build_auth_plugin(config)
        scope = config.project_id or config.project_name or "application credential"
        return cls(shared, Transport(shared, plugin, f"project {scope}"))

    @classmethod
    def from_env(
        cls, cloud: str | None = None, *, token_cache: TokenCache | None = None, **extra: Any
    ) -> OpenStackClient:
        """A client from ``OS_CLOUD``/clouds.yaml or the ``OS_*`` variables (see load_config)."""
        return cls.from_config(load_config(cloud, **extra), token_cache=token_cache)

    @property
    def config(self) -> CloudConfig:
        return self._shared.config

    @property
    def transport(self) -> Transport:
        """The HTTP layer of this scope (for diagnostics: ``transport.authentications``)."""
        return self._http

    def for_project(self, project_id: str) -> OpenStackClient:
        """The same user's client with a token scoped to ``project_id`` (cached per project).

        Nova takes a new server's project from the token, so a soldier's server must be created
        through ``client.for_project(soldier_project_id)``; the portal's user needs a role there.
        """
        if project_id == self._http.access().project_id:
            return self
        root = self._root
        with root._scoped_lock:
            client = root._scoped.get(project_id)
            if client is None:
                plugin = build_auth_plugin(self.config, project_id=project_id)
                transport = Transport(self._shared, plugin, f"project {project_id}")
                client = OpenStackClient(self._shared, transport, parent=root)
                root._scoped[project_id] = client
            return client

    # --- identity: tokens (api-ref identity v3 "Authentication and token management") -----

    def token(self) -> Token:
        """This client's current token, obtained or renewed if needed (POST /v3/auth/tokens)."""
        return _token_from_access(self._http.access())

    def authenticate(
        self,
        *,
        username: str,
        password: str,
        user_domain_id: str = "default",
        project_id: str | None = None,
        timeout: float | None = None,
    ) -> Token:
        """Check a user's own credentials by obtaining a token for them (POST /v3/auth/tokens).

        Raises Unauthorized for a wrong password, a disabled user or no role on the project.
        ``timeout`` overrides the client's for this call (a login must not wait as long as a
        background operation may).
        """
        plugin = v3.Password(
            auth_url=normalise_endpoint("identity", self.config.auth_url),
            username=username,
            password=password,
            user_domain_id=user_domain_id,
            project_id=project_id,
            unscoped=project_id is None,
        )
        session = ks_session.Session(
            auth=plugin,
            session=self._shared.requests_session,
            verify=self.config.verify,
            timeout=self.config.timeout if timeout is None else timeout,
            app_name="codesquare-portal",
        )
        try:
            return _token_from_access(plugin.get_access(session))
        except ks_exc.ClientException as exc:
            raise map_keystoneauth_error(exc, "POST", plugin.auth_url) from exc

    def forget_token(self) -> None:
        """Drop this scope's token locally and in the shared cache; the next call logs in."""
        self._http.forget_token()

    # --- identity: users (api-ref identity v3 "Users") -----------------------------------

    def list_users(
        self, *, name: str | None = None, domain_id: str | None = None, enabled: bool | None = None
    ) -> list[User]:
        """GET /v3/users (all pages); includes the cloud's service users."""
        params = {"name": name, "domain_id": domain_id, "enabled": _flag(enabled)}
        return [
            decode.decode_user(u)
            for u in self._http.paginate("identity", "/users", "users", params=params)
        ]

    def find_user(self, name: str, *, domain_id: str) -> User | None:
        """The user with this name in this domain, or None (GET /v3/users?name=)."""
        users = self.list_users(name=name, domain_id=domain_id)
        return users[0] if users else None

    def get_user(self, user_id: str) -> User:
        """GET /v3/users/{user_id}."""
        body = self._http.get_json("identity", f"/users/{_q(user_id)}")
        return decode.decode_user(body["user"])

    def create_user(
        self,
        *,
        name: str,
        domain_id: str,
        password: str | None = None,
        default_project_id: str | None = None,
        email: str | None = None,
        description: str | None = None,
        enabled: bool = True,
    ) -> User:
        """POST /v3/users; 409 Conflict on a duplicate name. default_project_id grants no role."""
        user: dict[str, Any] = {"name": name, "domain_id": domain_id, "enabled": enabled}
        for key, value in (
            ("password", password),
            ("default_project_id", default_project_id),
            ("email", email),
            ("description", description),
        ):
            if value is not None:
                user[key] = value
        response = self._http.request("identity", "POST", "/users", json={"user": user})
        return decode.decode_user(response.json()["user"])

    def update_user(
        self,
        user_id: str,
        *,
        name: str | None = None,
        email: str | None = None,
        description: str | None = None,
        enabled: bool | None = None,
        default_project_id: str | None = None,
    ) -> User:
        """PATCH /v3/users/{user_id} with the given fields only."""
        changes = {
            key: value
            for key, value in (
                ("name", name),
                ("email", email),
                ("description", description),
                ("enabled", enabled),
                ("default_project_id", default_project_id),
            )
            if value is not None
        }
        return self._patch_user(user_id, changes)

    def disable_user(self, user_id: str) -> User:
        """PATCH /v3/users/{user_id} enabled=false (Keystone revokes the user's tokens)."""
        return self._patch_user(user_id, {"enabled": False})

    def enable_user(self, user_id: str) -> User:
        """PATCH /v3/users/{user_id} enabled=true."""
        return self._patch_user(user_id, {"enabled": True})

    def reset_user_password(self, user_id: str, new_password: str) -> User:
        """Staff reset: PATCH /v3/users/{user_id} {"user": {"password"}} (admin)."""
        return self._patch_user(user_id, {"password": new_password})

    def _patch_user(self, user_id: str, changes: Mapping[str, Any]) -> User:
        response = self._http.request(
            "identity", "PATCH", f"/users/{_q(user_id)}", json={"user": dict(changes)}
        )
        return decode.decode_user(response.json()["user"])

    def change_own_password(
        self, user_id: str, *, original_password: str, new_password: str
    ) -> None:
        """Self-service: POST /v3/users/{user_id}/password → 204; no token is sent.

        Unauthorized for a wrong original password, BadRequest for a password-policy failure.
        Keystone revokes all of that user's tokens.
        """
        self._http.request(
            "identity",
            "POST",
            f"/users/{_q(user_id)}/password",
            json={"user": {"original_password": original_password, "password": new_password}},
            authenticated=False,
        )

    # --- identity: projects, roles, domains ----------------------------------------------

    def list_projects(
        self, *, name: str | None = None, domain_id: str | None = None
    ) -> list[Project]:
        """GET /v3/projects (all pages)."""
        params = {"name": name, "domain_id": domain_id}
        return [
            decode.decode_project(p)
            for p in self._http.paginate("identity", "/projects", "projects", params=params)
        ]

    def get_project(self, project_id: str) -> Project:
        """GET /v3/projects/{project_id}."""
        body = self._http.get_json("identity", f"/projects/{_q(project_id)}")
        return decode.decode_project(body["project"])

    def find_project(self, name: str, *, domain_id: str) -> Project | None:
        """The project with this name in this domain, or None (GET /v3/projects?name=)."""
        projects = self.list_projects(name=name, domain_id=domain_id)
        return projects[0] if projects else None

    def create_project(
        self, *, name: str, domain_id: str, description: str = "", enabled: bool = True
    ) -> Project:
        """POST /v3/projects; 409 Conflict on a duplicate name in the domain."""
        body = {
            "project": {
                "name": name,
                "domain_id": domain_id,
                "description": description,
                "enabled": enabled,
            }
        }
        response = self._http.request("identity", "POST", "/projects", json=body)
        return decode.decode_project(response.json()["project"])

    def list_roles(self, *, name: str | None = None) -> list[Role]:
        """GET /v3/roles."""
        return [
            decode.decode_role(r)
            for r in self._http.paginate("identity", "/roles", "roles", params={"name": name})
        ]

    def find_role(self, name: str) -> Role:
        """The role with this name (GET /v3/roles?name=); NotFound if there is none."""
        roles = self.list_roles(name=name)
        if not roles:
            raise NotFound(f"no role named {name!r}")
        return roles[0]

    def _grant_path(self, project_id: str, user_id: str, role_id: str) -> str:
        return f"/projects/{_q(project_id)}/users/{_q(user_id)}/roles/{_q(role_id)}"

    def grant_project_role(self, *, project_id: str, user_id: str, role_id: str) -> None:
        """PUT /v3/projects/{p}/users/{u}/roles/{r} → 204 (idempotent)."""
        self._http.request(
            "identity", "PUT", self._grant_path(project_id, user_id, role_id), idempotent=True
        )

    def check_project_role(self, *, project_id: str, user_id: str, role_id: str) -> bool:
        """HEAD /v3/projects/{p}/users/{u}/roles/{r}: True on 204, False on 404."""
        try:
            self._http.request("identity", "HEAD", self._grant_path(project_id, user_id, role_id))
        except NotFound:
            return False
        return True

    def revoke_project_role(self, *, project_id: str, user_id: str, role_id: str) -> None:
        """DELETE /v3/projects/{p}/users/{u}/roles/{r} → 204; NotFound if not granted."""
        self._http.request("identity", "DELETE", self._grant_path(project_id, user_id, role_id))

    def list_role_assignments(
        self, *, user_id: str | None = None, project_id: str | None = None
    ) -> list[RoleAssignment]:
        """GET /v3/role_assignments?user.id=&scope.project.id=&include_names."""
        params = {
            "user.id": user_id,
            "scope.project.id": project_id,
            "include_names": "true",
        }
        return [
            decode.decode_role_assignment(a)
            for a in self._http.paginate(
                "identity", "/role_assignments", "role_assignments", params=params
            )
        ]

    def password_rule(self, domain_id: str) -> PasswordRule:
        """Keystone's own password rule: GET /v3/domains/{id}/config/security_compliance.

        Any token may read it, for the default domain only (another domain is a 403).
        """
        body = self._http.get_json(
            "identity", f"/domains/{_q(domain_id)}/config/security_compliance"
        )
        return decode.decode_password_rule(body)

    def get_domain(self, id_or_name: str) -> Domain:
        """GET /v3/domains/{id}, else GET /v3/domains?name= (the way OpenStack clients look up)."""
        try:
            body = self._http.get_json("identity", f"/domains/{_q(id_or_name)}")
            return decode.decode_domain(body["domain"])
        except NotFound:
            pass
        found = self._http.get_json("identity", "/domains", params={"name": id_or_name})
        domains = found.get("domains") or []
        if not domains:
            raise NotFound(f"no domain with id or name {id_or_name!r}")
        return decode.decode_domain(domains[0])

    # --- image (api-ref image v2 "Images") -------------------------------------------------

    def list_images(
        self,
        *,
        status: str | None = "active",
        visibility: str | None = None,
        name: str | None = None,
        page_size: int | None = None,
    ) -> list[Image]:
        """GET /v2/images from Glance (Nova's image proxy 404s from compute 2.36), all pages."""
        params = {"status": status, "visibility": visibility, "name": name}
        items = self._http.paginate(
            "image",
            "/images",
            "images",
            params=params,
            page_size=page_size or self.config.page_size,
        )
        return [decode.decode_image(i) for i in items]

    def get_image(self, image_id: str) -> Image:
        """GET /v2/images/{image_id} (Glance answers the bare image, unwrapped)."""
        return decode.decode_image(self._http.get_json("image", f"/images/{_q(image_id)}"))

    # --- compute (api-ref compute v2.1) ---------------------------------------------------

    def compute_microversion(self) -> Microversion | None:
        """The compute microversion in use: the server's highest up to 2.90 (None means 2.1)."""
        return self._http.compute_microversion()

    def _compute(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**self._http.compute_headers(), **kwargs.pop("headers", {})}
        return self._http.request("compute", method, path, headers=headers, **kwargs)

    def list_flavors(self) -> list[Flavor]:
        """GET /flavors/detail (all pages; /flavors lacks vcpus, ram and disk)."""
        items = self._http.paginate(
            "compute", "/flavors/detail", "flavors", headers=self._http.compute_headers()
        )
        return [decode.decode_flavor(f) for f in items]

    def get_flavor(self, flavor_id: str) -> Flavor:
        """GET /flavors/{flavor_id}."""
        return decode.decode_flavor(
            self._compute("GET", f"/flavors/{_q(flavor_id)}").json()["flavor"]
        )

    def list_servers(
        self,
        *,
        all_projects: bool = False,
        project_id: str | None = None,
        user_id: str | None = None,
        name: str | None = None,
        status: ServerStatus | str | None = None,
        changes_since: datetime | None = None,
        page_size: int | None = None,
    ) -> list[Server]:
        """GET /servers/detail, every page. all_projects (all_tenants) is admin-only: Forbidden.

        ``project_id`` filters only together with ``all_projects`` (Nova's rule); without it the
        token's own project is listed.
        """
        params: dict[str, Any] = {
            "all_tenants": "true" if all_projects else None,
            "project_id": project_id if all_projects else None,
            "user_id": user_id,
            "name": name,
            "status": str(status) if status is not None else None,
            "changes-since": changes_since.isoformat() if changes_since else None,
        }
        items = self._http.paginate(
            "compute",
            "/servers/detail",
            "servers",
            params=params,
            headers=self._http.compute_headers(),
            page_size=page_size or self.config.page_size,
        )
        return [decode.decode_server(s) for s in items]

    def get_server(self, server_id: str) -> Server:
        """GET /servers/{server_id}; NotFound once deleted (or in another project)."""
        return decode.decode_server(
            self._compute("GET", f"/servers/{_q(server_id)}").json()["server"]
        )

    def create_server(
        self,
        *,
        name: str,
        image_id: str,
        flavor_id: str,
        network_ids: Iterable[str] = (),
        security_group_ids: Iterable[str] = (),
        availability_zone: str | None = None,
        host: str | None = None,
        metadata: Mapping[str, str] | None = None,
        key_name: str | None = None,
        user_data: str | None = None,
    ) -> str:
        """POST /servers → 202; returns the new server's id. Never retried.

        The server lands in this client's token project (use ``for_project``). ``host`` forces a
        compute host through the ``zone:host`` form, which is admin-only (Forbidden otherwise).
        Security groups are passed by id, because every project has a group named ``default``.
        With no networks, ``"none"`` is sent (Nova requires the key from 2.37).
        """
        if host and not availability_zone:
            raise ConfigurationError("a forced host needs its availability zone")
        networks = [{"uuid": n} for n in network_ids]
        server: dict[str, Any] = {
            "name": name,
            "imageRef": image_id,
            "flavorRef": flavor_id,
            "networks": networks or "none",
        }
        groups = [{"name": g} for g in security_group_ids]
        if groups:
            server["security_groups"] = groups
        if availability_zone:
            server["availability_zone"] = (
                f"{availability_zone}:{host}" if host else availability_zone
            )
        if metadata:
            server["metadata"] = dict(metadata)
        if key_name:
            server["key_name"] = key_name
        if user_data:
            server["user_data"] = user_data
        response = self._compute("POST", "/servers", json={"server": server})
        return str(response.json()["server"]["id"])

    def _action(self, server_id: str, body: Mapping[str, Any]) -> None:
        self._compute("POST", f"/servers/{_q(server_id)}/action", json=dict(body))

    def start_server(self, server_id: str) -> None:
        """POST /servers/{id}/action os-start → 202; Conflict unless SHUTOFF."""
        self._action(server_id, {"os-start": None})

    def stop_server(self, server_id: str) -> None:
        """POST /servers/{id}/action os-stop → 202; Conflict unless ACTIVE or ERROR."""
        self._action(server_id, {"os-stop": None})

    def reboot_server(self, server_id: str, *, kind: RebootType = RebootType.SOFT) -> None:
        """POST /servers/{id}/action reboot SOFT|HARD → 202; Conflict in a wrong state."""
        self._action(server_id, {"reboot": {"type": str(kind)}})

    def delete_server(self, server_id: str) -> None:
        """DELETE /servers/{id} → 204; asynchronous (task_state deleting, then 404)."""
        self._compute("DELETE", f"/servers/{_q(server_id)}")

    def wait_for_server(
        self,
        server_id: str,
        *,
        status: ServerStatus | Iterable[ServerStatus] | None = None,
        gone: bool = False,
        timeout: float = 300.0,
        interval: float = 2.0,
    ) -> Server | None:
        """Poll GET /servers/{id} until it has ``status`` with no task running, or is gone.

        Returns the server (or None once gone with ``gone=True``). Raises ServerInError if it
        goes to ERROR unless ERROR is awaited, NotFound if it vanishes while a status is awaited,
        and WaitTimeout at the deadline.
        """
        if status is None and not gone:
            raise ValueError("wait for a status, for gone=True, or both")
        wanted: frozenset[ServerStatus] = (
            frozenset()
            if status is None
            else frozenset({status} if isinstance(status, ServerStatus) else status)
        )
        clock, sleep = self._shared.monotonic, self._shared.sleep
        deadline = clock() + timeout
        last: Server | None = None
        while True:
            try:
                last = self.get_server(server_id)
            except NotFound:
                if gone:
                    return None
                raise
            if last.task_state is None:
                if last.status in wanted:
                    return last
                if last.status is ServerStatus.ERROR:
                    raise ServerInError(last)
            if gone and last.status is ServerStatus.DELETED:
                return None
            remaining = deadline - clock()
            if remaining <= 0:
                target = ", ".join(sorted(wanted)) + (" or gone" if gone else "")
                raise WaitTimeout(
                    f"server {server_id} is {last.status} (task {last.task_state}) after "
                    f"{timeout:.0f}s waiting for {target}",
                    last_status=str(last.status),
                )
            sleep(min(interval, remaining))

    # Key pairs belong to a Keystone user, not a project. Naming another user (``user_id``) is
    # compute 2.10 and admin-only; a server's ``key_name`` is looked up among the key pairs of
    # the user whose token creates the server.

    def _keypair_owner(self, user_id: str | None) -> dict[str, str] | None:
        if user_id is None:
            return None
        version = self.compute_microversion()
        if version is None or version < KEYPAIR_USER_MICROVERSION:
            raise ConfigurationError(
                f"key pairs of another user need compute {KEYPAIR_USER_MICROVERSION}; "
                f"the cloud speaks {version or '2.1'}"
            )
        return {"user_id": user_id}

    def create_keypair(
        self, *, name: str, public_key: str, user_id: str | None = None, key_type: str = "ssh"
    ) -> Keypair:
        """Import a public key: POST /os-keypairs → 201; Conflict if the name is taken.

        ``user_id`` (2.10, admin) makes the key pair another user's. Never retried.
        """
        keypair: dict[str, Any] = {"name": name, "public_key": public_key, "type": key_type}
        keypair.update(self._keypair_owner(user_id) or {})
        response = self._compute("POST", "/os-keypairs", json={"keypair": keypair})
        return decode.decode_keypair(response.json()["keypair"])

    def get_keypair(self, name: str, *, user_id: str | None = None) -> Keypair:
        """GET /os-keypairs/{name}?user_id= (2.10, admin for another user); NotFound."""
        body = self._compute(
            "GET", f"/os-keypairs/{_q(name)}", params=self._keypair_owner(user_id)
        ).json()
        return decode.decode_keypair(body["keypair"])

    def list_keypairs(self, *, user_id: str | None = None) -> list[Keypair]:
        """GET /os-keypairs?user_id= (2.10, admin for another user)."""
        body = self._compute("GET", "/os-keypairs", params=self._keypair_owner(user_id)).json()
        return [decode.decode_keypair(k["keypair"]) for k in body.get("keypairs") or ()]

    def delete_keypair(self, name: str, *, user_id: str | None = None) -> None:
        """DELETE /os-keypairs/{name}?user_id= → 204 (2.10, admin for another user); NotFound."""
        self._compute("DELETE", f"/os-keypairs/{_q(name)}", params=self._keypair_owner(user_id))

    def list_compute_services(self, *, binary: str | None = "nova-compute") -> list[ComputeService]:
        """GET /os-services?binary= (admin): compute hosts with zone and up/enabled state."""
        params = {"binary": binary} if binary else None
        body = self._compute("GET", "/os-services", params=params).json()
        return [decode.decode_compute_service(s) for s in body.get("services") or ()]

    def get_compute_quota(self, project_id: str) -> ComputeQuota:
        """GET /os-quota-sets/{project_id}/detail (admin for another project): limit and use."""
        body = self._compute("GET", f"/os-quota-sets/{_q(project_id)}/detail").json()
        return decode.decode_compute_quota(body["quota_set"], project_id)

    def get_compute_quota_defaults(self, project_id: str) -> ComputeQuota:
        """GET /os-quota-sets/{project_id}/defaults: what a new project gets (nothing used)."""
        body = self._compute("GET", f"/os-quota-sets/{_q(project_id)}/defaults").json()
        return decode.decode_compute_quota(body["quota_set"], project_id, detailed=False)

    def list_hypervisors(self) -> list[Hypervisor]:
        """GET /os-hypervisors (admin), every page."""
        items = self._http.paginate(
            "compute", "/os-hypervisors", "hypervisors", headers=self._http.compute_headers()
        )
        return [decode.decode_hypervisor(h) for h in items]

    def list_availability_zones(self) -> list[AvailabilityZone]:
        """GET /os-availability-zone/detail (admin): zones and their hosts."""
        body = self._compute("GET", "/os-availability-zone/detail").json()
        return [decode.decode_availability_zone(z) for z in body.get("availabilityZoneInfo") or ()]

    # --- network (api-ref networking v2.0) ------------------------------------------------

    def _net(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._http.request("network", method, path, **kwargs)

    def _net_list(self, path: str, key: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        return list(self._http.paginate("network", path, key, params=params))

    def list_networks(
        self,
        *,
        external: bool | None = None,
        project_id: str | None = None,
        shared: bool | None = None,
        name: str | None = None,
    ) -> list[Network]:
        """GET /v2.0/networks; ``external=True`` filters on router:external (floating-IP pools)."""
        params = {
            "router:external": _flag(external),
            "project_id": project_id,
            "shared": _flag(shared),
            "name": name,
        }
        return [decode.decode_network(n) for n in self._net_list("/networks", "networks", params)]

    def get_network(self, network_id: str) -> Network:
        """GET /v2.0/networks/{id}."""
        return decode.decode_network(
            self._net("GET", f"/networks/{_q(network_id)}").json()["network"]
        )

    def create_network(self, *, name: str, project_id: str | None = None) -> Network:
        """POST /v2.0/networks → 201 (project_id on behalf of another project is admin-only)."""
        network: dict[str, Any] = {"name": name}
        if project_id:
            network["project_id"] = project_id
        response = self._net("POST", "/networks", json={"network": network})
        return decode.decode_network(response.json()["network"])

    def delete_network(self, network_id: str) -> None:
        """DELETE /v2.0/networks/{id} → 204; Conflict while ports use it."""
        self._net("DELETE", f"/networks/{_q(network_id)}")

    def list_subnets(
        self, *, network_id: str | None = None, project_id: str | None = None
    ) -> list[Subnet]:
        """GET /v2.0/subnets."""
        params = {"network_id": network_id, "project_id": project_id}
        return [decode.decode_subnet(s) for s in self._net_list("/subnets", "subnets", params)]

    def create_subnet(
        self,
        *,
        network_id: str,
        cidr: str,
        ip_version: int = 4,
        name: str | None = None,
        gateway_ip: str | None = None,
        dns_nameservers: Iterable[str] = (),
        enable_dhcp: bool = True,
        project_id: str | None = None,
    ) -> Subnet:
        """POST /v2.0/subnets → 201."""
        subnet: dict[str, Any] = {
            "network_id": network_id,
            "cidr": cidr,
            "ip_version": ip_version,
            "enable_dhcp": enable_dhcp,
        }
        if name is not None:
            subnet["name"] = name
        if gateway_ip is not None:
            subnet["gateway_ip"] = gateway_ip
        if dns_nameservers:
            subnet["dns_nameservers"] = list(dns_nameservers)
        if project_id:
            subnet["project_id"] = project_id
        response = self._net("POST", "/subnets", json={"subnet": subnet})
        return decode.decode_subnet(response.json()["subnet"])

    def delete_subnet(self, subnet_id: str) -> None:
        """DELETE /v2.0/subnets/{id} → 204."""
        self._net("DELETE", f"/subnets/{_q(subnet_id)}")

    def list_routers(
        self, *, project_id: str | None = None, name: str | None = None
    ) -> list[Router]:
        """GET /v2.0/routers."""
        params = {"project_id": project_id, "name": name}
        return [decode.decode_router(r) for r in self._net_list("/routers", "routers", params)]

    def get_router(self, router_id: str) -> Router:
        """GET /v2.0/routers/{id}."""
        return decode.decode_router(self._net("GET", f"/routers/{_q(router_id)}").json()["router"])

    def create_router(
        self,
        *,
        name: str,
        external_network_id: str | None = None,
        project_id: str | None = None,
    ) -> Router:
        """POST /v2.0/routers → 201, with its gateway on ``external_network_id`` if given."""
        router: dict[str, Any] = {"name": name}
        if external_network_id:
            router["external_gateway_info"] = {"network_id": external_network_id}
        if project_id:
            router["project_id"] = project_id
        response = self._net("POST", "/routers", json={"router": router})
        return decode.decode_router(response.json()["router"])

    def set_router_gateway(self, router_id: str, external_network_id: str) -> Router:
        """PUT /v2.0/routers/{id} external_gateway_info → 200."""
        body = {"router": {"external_gateway_info": {"network_id": external_network_id}}}
        response = self._net("PUT", f"/routers/{_q(router_id)}", json=body, idempotent=True)
        return decode.decode_router(response.json()["router"])

    def clear_router_gateway(self, router_id: str) -> Router:
        """PUT /v2.0/routers/{id} external_gateway_info={} → 200."""
        body: dict[str, Any] = {"router": {"external_gateway_info": {}}}
        response = self._net("PUT", f"/routers/{_q(router_id)}", json=body, idempotent=True)
        return decode.decode_router(response.json()["router"])

    def add_router_interface(self, router_id: str, subnet_id: str) -> str:
        """PUT /v2.0/routers/{id}/add_router_interface → 200; returns the new port's id."""
        response = self._net(
            "PUT",
            f"/routers/{_q(router_id)}/add_router_interface",
            json={"subnet_id": subnet_id},
            idempotent=False,  # a repeat answers 400 "already has a port on subnet"
        )
        return str(response.json().get("port_id", ""))

    def remove_router_interface(self, router_id: str, subnet_id: str) -> None:
        """PUT /v2.0/routers/{id}/remove_router_interface → 200."""
        self._net(
            "PUT",
            f"/routers/{_q(router_id)}/remove_router_interface",
            json={"subnet_id": subnet_id},
            idempotent=False,
        )

    def delete_router(self, router_id: str) -> None:
        """DELETE /v2.0/routers/{id} → 204; Conflict while it has interfaces."""
        self._net("DELETE", f"/routers/{_q(router_id)}")

    def list_security_groups(
        self, *, project_id: str | None = None, name: str | None = None
    ) -> list[SecurityGroup]:
        """GET /v2.0/security-groups; filter by project, since every project has a "default"."""
        params = {"project_id": project_id, "name": name}
        return [
            decode.decode_security_group(g)
            for g in self._net_list("/security-groups", "security_groups", params)
        ]

    def get_network_ip_availability(self, network_id: str) -> NetworkIpAvailability:
        """GET /v2.0/network-ip-availabilities/{network_id} (admin): pool size and use."""
        body = self._net("GET", f"/network-ip-availabilities/{_q(network_id)}").json()
        return decode.decode_network_ip_availability(body["network_ip_availability"])

    def list_ports(
        self, *, device_id: str | None = None, network_id: str | None = None
    ) -> list[Port]:
        """GET /v2.0/ports?device_id= (a server's ports carry its fixed IPs and MACs)."""
        params = {"device_id": device_id, "network_id": network_id}
        return [decode.decode_port(p) for p in self._net_list("/ports", "ports", params)]

    def list_floating_ips(
        self,
        *,
        port_id: str | None = None,
        project_id: str | None = None,
        floating_network_id: str | None = None,
        floating_ip_address: str | None = None,
    ) -> list[FloatingIP]:
        """GET /v2.0/floatingips (floating IPs only; fixed IPs live on ports)."""
        params = {
            "port_id": port_id,
            "project_id": project_id,
            "floating_network_id": floating_network_id,
            "floating_ip_address": floating_ip_address,
        }
        return [
            decode.decode_floating_ip(f)
            for f in self._net_list("/floatingips", "floatingips", params)
        ]

    def get_floating_ip(self, floating_ip_id: str) -> FloatingIP:
        """GET /v2.0/floatingips/{id}."""
        body = self._net("GET", f"/floatingips/{_q(floating_ip_id)}").json()
        return decode.decode_floating_ip(body["floatingip"])

    def create_floating_ip(
        self,
        *,
        floating_network_id: str,
        port_id: str | None = None,
        fixed_ip_address: str | None = None,
        description: str | None = None,
    ) -> FloatingIP:
        """POST /v2.0/floatingips → 201, bound to ``port_id`` if given. Never retried.

        NotFound (ExternalGatewayForFloatingIPNotFound) when no router joins the port's subnet
        to the external network; Conflict when the port already has one; QuotaExceeded.
        """
        fip: dict[str, Any] = {"floating_network_id": floating_network_id}
        if port_id:
            fip["port_id"] = port_id
        if fixed_ip_address:
            fip["fixed_ip_address"] = fixed_ip_address
        if description is not None:
            fip["description"] = description
        response = self._net("POST", "/floatingips", json={"floatingip": fip})
        return decode.decode_floating_ip(response.json()["floatingip"])

    def associate_floating_ip(
        self, floating_ip_id: str, *, port_id: str, fixed_ip_address: str | None = None
    ) -> FloatingIP:
        """PUT /v2.0/floatingips/{id} {"port_id"} → 200."""
        fip: dict[str, Any] = {"port_id": port_id}
        if fixed_ip_address:
            fip["fixed_ip_address"] = fixed_ip_address
        response = self._net(
            "PUT", f"/floatingips/{_q(floating_ip_id)}", json={"floatingip": fip}, idempotent=True
        )
        return decode.decode_floating_ip(response.json()["floatingip"])

    def disassociate_floating_ip(self, floating_ip_id: str) -> FloatingIP:
        """PUT /v2.0/floatingips/{id} {"port_id": null} → 200 (null must be explicit)."""
        response = self._net(
            "PUT",
            f"/floatingips/{_q(floating_ip_id)}",
            json={"floatingip": {"port_id": None}},
            idempotent=True,
        )
        return decode.decode_floating_ip(response.json()["floatingip"])

    def delete_floating_ip(self, floating_ip_id: str) -> None:
        """DELETE /v2.0/floatingips/{id} → 204; disassociates and releases in one step."""
        self._net("DELETE", f"/floatingips/{_q(floating_ip_id)}")

    # --- placement (api-ref placement "Resource providers", "Inventories", "Usages") --------

    def has_service(self, service_type: str) -> bool:
        """Whether the catalog (or an override) names an endpoint for ``service_type``."""
        try:
            self._http.endpoint(service_type)
        except EndpointNotFound:
            return False
        return True

    def list_resource_providers(self, *, name: str | None = None) -> list[ResourceProvider]:
        """GET /resource_providers (admin): for Nova, one provider per compute node."""
        params = {"name": name} if name else None
        body = self._http.get_json("placement", "/resource_providers", params=params)
        return [decode.decode_resource_provider(r) for r in body.get("resource_providers") or ()]

    def get_provider_inventories(self, provider_uuid: str) -> dict[str, Inventory]:
        """GET /resource_providers/{uuid}/inventories: totals, reserved and allocation ratios."""
        body = self._http.get_json(
            "placement", f"/resource_providers/{_q(provider_uuid)}/inventories"
        )
        return decode.decode_inventories(body)

    def get_provider_usages(self, provider_uuid: str) -> dict[str, int]:
        """GET /resource_providers/{uuid}/usages: what the allocations consume per class."""
        body = self._http.get_json("placement", f"/resource_providers/{_q(provider_uuid)}/usages")
        return {str(k): int(v) for k, v in (body.get("usages") or {}).items()}
