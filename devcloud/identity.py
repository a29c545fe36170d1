"""Keystone v3: tokens, catalog, users, projects, domains, roles, grants, app credentials."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from devcloud.core import (
    AUTH_REQUIRED,
    FALSE_WORDS,
    ApiError,
    Request,
    Response,
    Router,
    Service,
    iso_keystone,
    keystone_error,
    new_hex_id,
    now,
    page,
    parse_time,
)

if TYPE_CHECKING:
    from devcloud.app import Cloud

API_VERSION = "v3.14"
API_UPDATED = "2020-04-07T00:00:00Z"
# Keystone bootstrap's implied roles: admin implies member implies reader.
IMPLIES = {"admin": ["member"], "member": ["reader"], "manager": ["member"]}
CATALOG = (
    ("identity", "keystone", "/identity"),
    ("compute", "nova", "/compute/v2.1"),
    ("network", "neutron", "/networking"),
    ("image", "glance", "/image"),
    ("placement", "placement", "/placement"),
)
INTERFACES = ("public", "internal", "admin")
REGION = "RegionOne"
PBKDF2_ROUNDS = 5000  # enough to keep hashes honest, cheap enough for 50 clients logging in


def hash_password(password: str) -> str:
    salt = secrets.token_hex(8)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), PBKDF2_ROUNDS)
    return f"{salt}${digest.hex()}"


def check_password(password: str, stored: str | None) -> bool:
    if not stored or "$" not in stored:
        return False
    salt, digest = stored.split("$", 1)
    mine = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), PBKDF2_ROUNDS)
    return hmac.compare_digest(mine.hex(), digest)


@dataclass
class Token:
    """A validated token: who, which project, and the effective role names."""

    id: str
    user_id: str
    project_id: str | None
    roles: list[str]
    doc: dict[str, Any]

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    @property
    def is_member(self) -> bool:
        return "member" in self.roles or self.is_admin


def _unauthorized(base_url: str, message: str = AUTH_REQUIRED) -> ApiError:
    return keystone_error(
        401, message, **{"WWW-Authenticate": f'Keystone uri="{base_url}/identity"'}
    )


def _forbidden(action: str) -> ApiError:
    return keystone_error(
        403, f"You are not authorized to perform the requested action: identity:{action}."
    )


def _not_found(kind: str, ident: str) -> ApiError:
    return keystone_error(404, f"Could not find {kind}: {ident}.")


def _bad(field: str | None, message: str) -> ApiError:
    """Keystone's JSON-Schema wording, naming the field that failed."""
    if field:
        return keystone_error(400, f"Invalid input for field '{field}': {message}")
    return keystone_error(400, message)


def _json_body(req: Request) -> dict[str, Any]:
    try:
        body = json.loads(req.body or b"null")
    except ValueError as exc:
        raise keystone_error(400, f"Malformed JSON in request body: {exc}.") from exc
    if not isinstance(body, dict):
        raise keystone_error(400, "The request body must be a JSON object.")
    return body


def _section(body: dict[str, Any], key: str, path: str | None = None) -> dict[str, Any]:
    if key not in body:
        raise _bad(path, f"'{key}' is a required property")
    value = body[key]
    if not isinstance(value, dict):
        raise _bad(f"{path}/{key}" if path else key, f"{json.dumps(value)} is not of type 'object'")
    return value


def _check_str(section: dict[str, Any], key: str, path: str, *, nullable: bool = False) -> None:
    if key in section:
        value = section[key]
        if value is None and nullable:
            return
        if not isinstance(value, str) or (key == "name" and not value.strip()):
            kind = "'string'" if not isinstance(value, str) else "a non-empty name"
            raise _bad(f"{path}/{key}", f"{json.dumps(value)} is not {kind}")


def _check_bool(section: dict[str, Any], key: str, path: str) -> None:
    if key in section and not isinstance(section[key], bool):
        raise _bad(f"{path}/{key}", f"{json.dumps(section[key])} is not of type 'boolean'")


class Identity(Service):
    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.store = cloud.store
        r = self.router = Router()
        r.add("GET", "", self.versions, public=True)
        r.add("GET", "/v3", self.version, public=True)
        r.add("POST", "/v3/auth/tokens", self.issue_token, public=True)
        r.add("GET", "/v3/auth/tokens", self.validate_token)
        r.add("HEAD", "/v3/auth/tokens", self.check_token)
        r.add("DELETE", "/v3/auth/tokens", self.revoke_token)
        r.add("GET", "/v3/auth/catalog", self.auth_catalog)
        r.add("GET", "/v3/auth/projects", self.auth_projects)
        r.add("GET", "/v3/auth/domains", self.auth_domains)
        r.add("GET", "/v3/users", self.list_users)
        r.add("POST", "/v3/users", self.create_user)
        r.add("GET", "/v3/users/(?P<user_id>[^/]+)", self.get_user)
        r.add("PATCH", "/v3/users/(?P<user_id>[^/]+)", self.update_user)
        r.add("DELETE", "/v3/users/(?P<user_id>[^/]+)", self.delete_user)
        # No token: the original password is the credential (Keystone leaves it unenforced).
        r.add("POST", "/v3/users/(?P<user_id>[^/]+)/password", self.change_password, public=True)
        r.add("GET", "/v3/users/(?P<user_id>[^/]+)/projects", self.user_projects)
        r.add("GET", "/v3/users/(?P<user_id>[^/]+)/groups", self.user_groups)
        r.add("GET", "/v3/users/(?P<user_id>[^/]+)/application_credentials", self.list_app_creds)
        r.add("POST", "/v3/users/(?P<user_id>[^/]+)/application_credentials", self.create_app_cred)
        r.add(
            "GET",
            "/v3/users/(?P<user_id>[^/]+)/application_credentials/(?P<cred_id>[^/]+)",
            self.get_app_cred,
        )
        r.add(
            "DELETE",
            "/v3/users/(?P<user_id>[^/]+)/application_credentials/(?P<cred_id>[^/]+)",
            self.delete_app_cred,
        )
        r.add("GET", "/v3/projects", self.list_projects)
        r.add("POST", "/v3/projects", self.create_project)
        r.add("GET", "/v3/projects/(?P<project_id>[^/]+)", self.get_project)
        r.add("PATCH", "/v3/projects/(?P<project_id>[^/]+)", self.update_project)
        r.add("DELETE", "/v3/projects/(?P<project_id>[^/]+)", self.delete_project)
        grant = "/v3/projects/(?P<project_id>[^/]+)/users/(?P<user_id>[^/]+)/roles"
        r.add("GET", grant, self.list_grants)
        r.add("PUT", grant + "/(?P<role_id>[^/]+)", self.put_grant)
        r.add("HEAD", grant + "/(?P<role_id>[^/]+)", self.head_grant)
        r.add("GET", grant + "/(?P<role_id>[^/]+)", self.head_grant)
        r.add("DELETE", grant + "/(?P<role_id>[^/]+)", self.delete_grant)
        r.add("GET", "/v3/role_assignments", self.list_role_assignments)
        r.add("GET", "/v3/domains", self.list_domains)
        r.add("GET", "/v3/domains/(?P<domain_id>[^/]+)", self.get_domain)
        r.add(
            "GET",
            "/v3/domains/(?P<domain_id>[^/]+)/config/security_compliance",
            self.get_security_compliance,
        )
        r.add("GET", "/v3/roles", self.list_roles)
        r.add("GET", "/v3/roles/(?P<role_id>[^/]+)", self.get_role)
        r.add("GET", "/v3/services", self.list_services)
        r.add("GET", "/v3/endpoints", self.list_endpoints)
        r.add("GET", "/v3/regions", self.list_regions)

    def after(self, req: Request, response: Response) -> None:
        # Keystone's answers depend on the caller's token; caches must not mix them.
        response.headers.setdefault("Vary", "X-Auth-Token")

    # ---- helpers used by every service -------------------------------------------------------

    def _counters(self) -> dict[str, Any]:
        doc = self.store.get("meta", "counters")
        if doc is None:
            doc = self.store.put("meta", {"id": "counters", "token_seq": 0, "revoke_all_seq": 0})
        return doc

    def security_compliance(self) -> dict[str, Any]:
        """Keystone's ``[security_compliance]`` password rule (both None: no rule, the default)."""
        doc = self.store.get("meta", "security_compliance") or {}
        return {
            "password_regex": doc.get("password_regex"),
            "password_regex_description": doc.get("password_regex_description"),
        }

    def set_security_compliance(self, regex: str | None, description: str | None) -> None:
        if regex is not None:
            re.compile(regex)  # a bad rule is the operator's error, refused at once
        self.store.put(
            "meta",
            {
                "id": "security_compliance",
                "password_regex": regex,
                "password_regex_description": description,
            },
        )

    def _check_password_rule(self, password: str | None) -> None:
        """Keystone's ``_validate_password``: a new password must match ``password_regex``."""
        rule = self.security_compliance()
        if not password or not rule["password_regex"]:
            return
        if re.match(rule["password_regex"], password) is None:
            raise keystone_error(
                400,
                "The password does not match the requirements: "
                f"{rule['password_regex_description'] or rule['password_regex']}.",
            )

    def authenticate(self, req: Request) -> Token:
        """The caller's token, or the 401 keystonemiddleware would send."""
        token_id = req.header("X-Auth-Token")
        token = self.lookup_token(token_id) if token_id else None
        if token is None:
            raise _unauthorized(req.base_url)
        return token

    def keep_secret(self, value: str) -> None:
        """Remember a credential in clear, so tests can prove the portal leaks none of them.

        Only the admin-only control endpoint reads these; a real Keystone keeps hashes only.
        """
        self.store.put("seen_secret", {"id": value})

    def seen_secrets(self) -> list[str]:
        return sorted(self.store.all("seen_secret"))

    def _hash_kept(self, password: str) -> str:
        self.keep_secret(password)
        return hash_password(password)

    def lookup_token(self, token_id: str) -> Token | None:
        doc = self.store.get("token", token_id)
        if doc is None or doc["expires_at"] <= now():
            return None
        counters = self._counters()
        if doc["seq"] <= counters["revoke_all_seq"] or doc.get("revoked"):
            return None
        user = self.store.get("user", doc["user_id"])
        if user is None or not user["enabled"] or doc["seq"] <= user.get("revoke_seq", 0):
            return None
        project_id = doc.get("project_id")
        roles: list[str] = []
        if doc.get("app_cred_id"):
            cred = self.store.get("app_cred", doc["app_cred_id"])
            if cred is None:
                return None
            roles = self._expand([r["name"] for r in cred["roles"]])
        elif project_id:
            roles = self.effective_roles(doc["user_id"], project_id)
        if project_id:
            project = self.store.get("project", project_id)
            # Fernet tokens are re-validated against current assignments: no role, no token.
            if project is None or not project["enabled"] or not roles:
                return None
        return Token(token_id, doc["user_id"], project_id, roles, doc)

    def _expand(self, names: list[str]) -> list[str]:
        out: list[str] = []
        todo = list(names)
        while todo:
            name = todo.pop(0)
            if name not in out:
                out.append(name)
                todo.extend(IMPLIES.get(name, []))
        return out

    def effective_roles(self, user_id: str, project_id: str) -> list[str]:
        names = []
        for assignment in self.store.values("assignment"):
            if assignment["user_id"] == user_id and assignment["project_id"] == project_id:
                role = self.store.get("role", assignment["role_id"])
                if role:
                    names.append(role["name"])
        return self._expand(names)

    def require_admin(self, req: Request, action: str) -> Token:
        if not req.token.is_admin:
            raise _forbidden(action)
        token: Token = req.token
        return token

    def catalog(self, base_url: str) -> list[dict[str, Any]]:
        entries = []
        for service_type, name, prefix in CATALOG:
            endpoints = [
                {
                    "id": hashlib.md5(
                        f"{name}-{iface}".encode(), usedforsecurity=False
                    ).hexdigest(),
                    "interface": iface,
                    "region": REGION,
                    "region_id": REGION,
                    "url": base_url + prefix,
                }
                for iface in INTERFACES
            ]
            entries.append(
                {
                    "id": hashlib.md5(name.encode(), usedforsecurity=False).hexdigest(),
                    "type": service_type,
                    "name": name,
                    "endpoints": endpoints,
                }
            )
        return entries

    def _link(self, req: Request, path: str) -> dict[str, Any]:
        return {"self": f"{req.base_url}/identity/v3/{path}"}

    # ---- discovery ---------------------------------------------------------------------------

    def _version_doc(self, req: Request) -> dict[str, Any]:
        return {
            "id": API_VERSION,
            "status": "stable",
            "updated": API_UPDATED,
            "links": [{"rel": "self", "href": f"{req.base_url}/identity/v3/"}],
            "media-types": [
                {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}
            ],
        }

    def versions(self, req: Request) -> Response:
        body = {"versions": {"values": [self._version_doc(req)]}}
        return Response(300, body, {"Location": f"{req.base_url}/identity/v3/"})

    def version(self, req: Request) -> Response:
        return Response(200, {"version": self._version_doc(req)})

    # ---- tokens ------------------------------------------------------------------------------

    def _find_domain(self, ref: Any, path: str) -> dict[str, Any] | None:
        if not isinstance(ref, dict):
            raise _bad(path, f"{json.dumps(ref)} is not of type 'object'")
        if "id" in ref:
            return self.store.get("domain", str(ref["id"]))
        if "name" in ref:
            return next((d for d in self.store.values("domain") if d["name"] == ref["name"]), None)
        raise _bad(path, "'id' or 'name' is a required property")

    def _find_user(self, ref: dict[str, Any], path: str) -> dict[str, Any] | None:
        if "id" in ref:
            return self.store.get("user", str(ref["id"]))
        if "name" not in ref:
            raise _bad(path, "'id' or 'name' is a required property")
        if "domain" not in ref:
            raise keystone_error(
                400,
                "Expecting to find domain in user. The server could not comply with the request "
                "since it is either malformed or otherwise incorrect. The client is assumed to "
                "be in error.",
            )
        domain = self._find_domain(ref["domain"], f"{path}/domain")
        if domain is None:
            return None
        return next(
            (
                u
                for u in self.store.values("user")
                if u["name"] == ref["name"] and u["domain_id"] == domain["id"]
            ),
            None,
        )

    def _find_project_ref(self, ref: Any) -> dict[str, Any] | None:
        if not isinstance(ref, dict):
            raise _bad("auth/scope/project", f"{json.dumps(ref)} is not of type 'object'")
        if "id" in ref:
            return self.store.get("project", str(ref["id"]))
        if "name" not in ref:
            raise _bad("auth/scope/project", "'id' or 'name' is a required property")
        if "domain" not in ref:
            raise keystone_error(
                400,
                "Expecting to find domain in project. The server could not comply with the "
                "request since it is either malformed or otherwise incorrect. The client is "
                "assumed to be in error.",
            )
        domain = self._find_domain(ref["domain"], "auth/scope/project/domain")
        if domain is None:
            return None
        return next(
            (
                p
                for p in self.store.values("project")
                if p["name"] == ref["name"] and p["domain_id"] == domain["id"]
            ),
            None,
        )

    def issue_token(self, req: Request) -> Response:
        body = _json_body(req)
        auth = _section(body, "auth")
        identity = _section(auth, "identity", "auth")
        methods = identity.get("methods")
        if not isinstance(methods, list) or not methods:
            raise _bad("auth/identity", "'methods' is a required property")
        expires_at: float | None = None
        app_cred: dict[str, Any] | None = None
        method = methods[0]
        if method == "password":
            pw = _section(identity, "password", "auth/identity")
            user_ref = _section(pw, "user", "auth/identity/password")
            user = self._find_user(user_ref, "auth/identity/password/user")
            password = user_ref.get("password")
            if user is None or not isinstance(password, str):
                raise _unauthorized(req.base_url)
            if not check_password(password, user.get("password_hash")):
                raise _unauthorized(req.base_url)
        elif method == "token":
            ref = _section(identity, "token", "auth/identity")
            old = self.lookup_token(str(ref.get("id", "")))
            if old is None:
                raise _unauthorized(req.base_url)
            user = self.store.get("user", old.user_id)
            expires_at = old.doc["expires_at"]  # a rescoped token keeps the original expiry
        elif method == "application_credential":
            ref = _section(identity, "application_credential", "auth/identity")
            app_cred = self._find_app_cred(ref)
            if app_cred is None or not check_password(
                str(ref.get("secret", "")), app_cred["secret_hash"]
            ):
                raise _unauthorized(req.base_url)
            if app_cred.get("expires_at") and app_cred["expires_at"] <= now():
                raise _unauthorized(req.base_url)
            user = self.store.get("user", app_cred["user_id"])
        else:
            raise _unauthorized(
                req.base_url, f"Attempted to authenticate with an unsupported method: {method}."
            )
        if user is None or not user["enabled"]:
            raise _unauthorized(req.base_url)

        scope = auth.get("scope")
        project: dict[str, Any] | None = None
        if app_cred is not None:
            if scope not in (None, "unscoped") and scope != {}:
                raise _unauthorized(req.base_url)  # an application credential carries its own scope
            project = self.store.get("project", app_cred["project_id"])
            if project is None:
                raise _unauthorized(req.base_url)
        elif scope is None:
            default = user.get("default_project_id")
            candidate = self.store.get("project", default) if default else None
            if (
                candidate
                and candidate["enabled"]
                and self.effective_roles(user["id"], candidate["id"])
            ):
                project = candidate
        elif scope == "unscoped":
            project = None
        elif isinstance(scope, dict):
            if len(scope) > 1:
                raise keystone_error(400, "Specifying more than one scope is not allowed.")
            if "project" in scope:
                project = self._find_project_ref(scope["project"])
                if project is None:
                    raise _unauthorized(req.base_url)
            else:
                # Domain and system scopes need assignments devcloud does not model.
                raise _unauthorized(req.base_url)
        else:
            raise _bad("auth/scope", f"{json.dumps(scope)} is not of type 'object'")

        if project is not None and not project["enabled"]:
            raise _unauthorized(req.base_url)
        # Scoping needs a role on the project (an application credential brings its own).
        needs_role = project is not None and app_cred is None
        if needs_role and not self.effective_roles(user["id"], project["id"]):  # type: ignore[index]
            raise _unauthorized(req.base_url)

        counters = self._counters()
        counters["token_seq"] += 1
        self.store.put("meta", counters)
        issued = now()
        doc = {
            "id": "gAAAAA" + secrets.token_urlsafe(96),
            "user_id": user["id"],
            "project_id": project["id"] if project else None,
            "issued_at": issued,
            "expires_at": expires_at or issued + self.cloud.config.token_ttl,
            "methods": [method],
            "audit_id": secrets.token_urlsafe(16)[:22],
            "seq": counters["token_seq"],
            "app_cred_id": app_cred["id"] if app_cred else None,
        }
        self.store.put("token", doc)
        self.keep_secret(doc["id"])
        self._prune_tokens()
        token = self.lookup_token(doc["id"])
        if token is None:  # e.g. the app credential's role set is empty
            raise _unauthorized(req.base_url)
        nocatalog = req.q("nocatalog") is not None
        return Response(
            201, self.token_body(req, token, not nocatalog), {"X-Subject-Token": doc["id"]}
        )

    def _prune_tokens(self) -> None:
        # Expired tokens are dead weight; drop them now and then so the table stays small.
        counters = self._counters()
        if counters["token_seq"] % 500:
            return
        moment = now()
        for doc in self.store.values("token"):
            if doc["expires_at"] < moment:
                self.store.delete("token", doc["id"])

    def token_body(self, req: Request, token: Token, with_catalog: bool) -> dict[str, Any]:
        user = self.store.get("user", token.user_id) or {}
        domain = self.store.get("domain", user.get("domain_id", "default")) or {}
        body: dict[str, Any] = {
            "audit_ids": [token.doc["audit_id"]],
            "methods": token.doc["methods"],
            "expires_at": iso_keystone(token.doc["expires_at"]),
            "issued_at": iso_keystone(token.doc["issued_at"]),
            "user": {
                "id": user.get("id"),
                "name": user.get("name"),
                "domain": {"id": domain.get("id"), "name": domain.get("name")},
                "password_expires_at": None,
            },
        }
        if token.project_id:
            project = self.store.get("project", token.project_id) or {}
            pdomain = self.store.get("domain", project.get("domain_id", "default")) or {}
            body["project"] = {
                "id": project.get("id"),
                "name": project.get("name"),
                "domain": {"id": pdomain.get("id"), "name": pdomain.get("name")},
            }
            body["is_domain"] = False
            roles = [r for r in self.store.values("role") if r["name"] in token.roles]
            body["roles"] = [{"id": r["id"], "name": r["name"]} for r in roles]
            if project.get("name") == "admin" and project.get("domain_id") == "default":
                body["is_admin_project"] = True
            if with_catalog:
                body["catalog"] = self.catalog(req.base_url)
        if token.doc.get("app_cred_id"):
            cred = self.store.get("app_cred", token.doc["app_cred_id"]) or {}
            body["application_credential"] = {
                "id": cred.get("id"),
                "name": cred.get("name"),
                "restricted": not cred.get("unrestricted", False),
            }
        return {"token": body}

    def _subject(self, req: Request) -> Token:
        subject = req.header("X-Subject-Token") or ""
        if req.token.id != subject and not req.token.is_admin:
            raise _forbidden("validate_token")
        token = self.lookup_token(subject) if subject else None
        if token is None:
            raise _not_found("token", subject)
        return token

    def validate_token(self, req: Request) -> Response:
        token = self._subject(req)
        body = self.token_body(req, token, req.q("nocatalog") is None)
        return Response(200, body, {"X-Subject-Token": token.id})

    def check_token(self, req: Request) -> Response:
        token = self._subject(req)
        return Response(200, None, {"X-Subject-Token": token.id})

    def revoke_token(self, req: Request) -> Response:
        token = self._subject(req)
        token.doc["revoked"] = True
        self.store.put("token", token.doc)
        return Response(204)

    def auth_catalog(self, req: Request) -> Response:
        if not req.token.project_id:
            raise keystone_error(403, "The service catalog is empty.")
        return Response(
            200, {"catalog": self.catalog(req.base_url), "links": self._link(req, "auth/catalog")}
        )

    def auth_projects(self, req: Request) -> Response:
        ids = {
            a["project_id"]
            for a in self.store.values("assignment")
            if a["user_id"] == req.token.user_id
        }
        projects = [
            self.project_view(req, p)
            for p in self.store.values("project")
            if p["id"] in ids and p["enabled"]
        ]
        return Response(200, {"projects": projects, "links": self._link(req, "auth/projects")})

    def auth_domains(self, req: Request) -> Response:
        return Response(200, {"domains": [], "links": self._link(req, "auth/domains")})

    # ---- users -------------------------------------------------------------------------------

    def user_view(self, req: Request, user: dict[str, Any]) -> dict[str, Any]:
        view = {
            k: v for k, v in user.items() if k not in ("password_hash", "revoke_seq", "created")
        }
        view["links"] = self._link(req, f"users/{user['id']}")
        view["password_expires_at"] = None
        view.setdefault("options", {})
        return view

    def _paged(self, req: Request, items: list[dict[str, Any]], key: str, path: str) -> Response:
        limit_text = req.q("limit")
        limit = None
        if limit_text is not None:
            try:
                limit = max(1, min(int(limit_text), 1000))
            except ValueError as exc:
                raise _bad("limit", f"'{limit_text}' is not of type 'integer'") from exc
        result = page(items, limit, req.q("marker"))
        if result is None:
            raise _not_found("marker", req.q("marker") or "")
        chunk, more = result
        next_link = None
        if more and chunk:
            next_link = f"{req.base_url}/identity/v3/{path}?limit={limit}&marker={chunk[-1]['id']}"
        links = {"self": f"{req.base_url}/identity/v3/{path}", "next": next_link, "previous": None}
        return Response(200, {key: chunk, "links": links})

    def list_users(self, req: Request) -> Response:
        self.require_admin(req, "list_users")
        users = list(self.store.values("user"))
        for attr in ("name", "domain_id", "default_project_id"):
            wanted = req.q(attr)
            if wanted is not None:
                users = [u for u in users if u.get(attr) == wanted]
        enabled = req.q("enabled")
        if enabled is not None:
            flag = enabled.lower() not in FALSE_WORDS
            users = [u for u in users if u["enabled"] == flag]
        return self._paged(req, [self.user_view(req, u) for u in users], "users", "users")

    def _get_user(self, user_id: str) -> dict[str, Any]:
        user = self.store.get("user", user_id)
        if user is None:
            raise _not_found("user", user_id)
        return user

    def create_user_record(
        self,
        *,
        name: str,
        password: str | None,
        domain_id: str = "default",
        default_project_id: str | None = None,
        enabled: bool = True,
        extras: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        user: dict[str, Any] = {
            "id": new_hex_id(),
            "name": name,
            "domain_id": domain_id,
            "enabled": enabled,
            "password_hash": self._hash_kept(password) if password else None,
            "options": {},
            "federated": [],
        }
        if default_project_id:
            user["default_project_id"] = default_project_id
        user.update(extras or {})
        return self.store.put("user", user)

    def create_user(self, req: Request) -> Response:
        self.require_admin(req, "create_user")
        section = _section(_json_body(req), "user")
        if "name" not in section:
            raise _bad("user", "'name' is a required property")
        for key in ("name", "domain_id", "default_project_id", "description", "email"):
            _check_str(section, key, "user", nullable=key != "name")
        _check_str(section, "password", "user", nullable=True)
        _check_bool(section, "enabled", "user")
        domain_id = section.get("domain_id") or "default"
        if self.store.get("domain", domain_id) is None:
            raise _not_found("domain", domain_id)
        name = section["name"]
        if any(
            u["name"] == name and u["domain_id"] == domain_id for u in self.store.values("user")
        ):
            raise keystone_error(
                409,
                "Conflict occurred attempting to store user - Duplicate entry found with name "
                f"{name} at domain ID {domain_id}.",
            )
        project_id = section.get("default_project_id")
        if project_id and self.store.get("project", project_id) is None:
            raise _not_found("project", project_id)
        self._check_password_rule(section.get("password"))
        extras = {
            k: v
            for k, v in section.items()
            if k not in ("name", "password", "domain_id", "default_project_id", "enabled", "id")
        }
        user = self.create_user_record(
            name=name,
            password=section.get("password"),
            domain_id=domain_id,
            default_project_id=project_id,
            enabled=section.get("enabled", True),
            extras=extras,
        )
        return Response(201, {"user": self.user_view(req, user)})

    def get_user(self, req: Request) -> Response:
        user_id = req.params["user_id"]
        if user_id != req.token.user_id:
            self.require_admin(req, "get_user")
        return Response(200, {"user": self.user_view(req, self._get_user(user_id))})

    def _revoke_user(self, user: dict[str, Any]) -> None:
        user["revoke_seq"] = self._counters()["token_seq"]

    def update_user(self, req: Request) -> Response:
        self.require_admin(req, "update_user")
        user = self._get_user(req.params["user_id"])
        section = _section(_json_body(req), "user")
        for key in ("name", "description", "email", "default_project_id"):
            _check_str(section, key, "user", nullable=key != "name")
        _check_str(section, "password", "user", nullable=True)
        _check_bool(section, "enabled", "user")
        if "id" in section and section["id"] != user["id"]:
            raise keystone_error(400, "Cannot change user ID.")
        name = section.get("name")
        if (
            name
            and name != user["name"]
            and any(
                u["name"] == name and u["domain_id"] == user["domain_id"]
                for u in self.store.values("user")
            )
        ):
            raise keystone_error(
                409,
                "Conflict occurred attempting to store user - Duplicate entry found with name "
                f"{name} at domain ID {user['domain_id']}.",
            )
        self._check_password_rule(section.get("password"))
        for key, value in section.items():
            if key == "password":
                user["password_hash"] = self._hash_kept(value) if value else None
                self._revoke_user(user)
            elif key == "enabled":
                user["enabled"] = value
                if not value:
                    self._revoke_user(user)
            elif key not in ("id", "domain_id"):
                user[key] = value
        self.store.put("user", user)
        return Response(200, {"user": self.user_view(req, user)})

    def delete_user(self, req: Request) -> Response:
        self.require_admin(req, "delete_user")
        user = self._get_user(req.params["user_id"])
        for assignment in self.store.values("assignment"):
            if assignment["user_id"] == user["id"]:
                self.store.delete("assignment", assignment["id"])
        for cred in self.store.values("app_cred"):
            if cred["user_id"] == user["id"]:
                self.store.delete("app_cred", cred["id"])
        self.store.delete("user", user["id"])
        return Response(204)

    def change_password(self, req: Request) -> Response:
        section = _section(_json_body(req), "user")
        for key in ("password", "original_password"):
            if key not in section:
                raise _bad("user", f"'{key}' is a required property")
            if not isinstance(section[key], str):
                raise _bad(f"user/{key}", f"{json.dumps(section[key])} is not of type 'string'")
        extra = sorted(set(section) - {"password", "original_password"})
        if extra:
            raise _bad(
                "user",
                "Additional properties are not allowed ("
                + ", ".join(f"'{k}'" for k in extra)
                + (" was" if len(extra) == 1 else " were")
                + " unexpected)",
            )
        user = self._get_user(req.params["user_id"])
        if not check_password(section["original_password"], user.get("password_hash")):
            raise _unauthorized(req.base_url)
        self._check_password_rule(section["password"])
        user["password_hash"] = self._hash_kept(section["password"])
        self._revoke_user(user)
        self.store.put("user", user)
        return Response(204)

    def user_projects(self, req: Request) -> Response:
        user_id = req.params["user_id"]
        if user_id != req.token.user_id:
            self.require_admin(req, "list_user_projects")
        self._get_user(user_id)
        ids = {a["project_id"] for a in self.store.values("assignment") if a["user_id"] == user_id}
        projects = [
            self.project_view(req, p) for p in self.store.values("project") if p["id"] in ids
        ]
        return Response(
            200, {"projects": projects, "links": self._link(req, f"users/{user_id}/projects")}
        )

    def user_groups(self, req: Request) -> Response:
        user_id = req.params["user_id"]
        if user_id != req.token.user_id:
            self.require_admin(req, "list_groups_for_user")
        self._get_user(user_id)
        return Response(200, {"groups": [], "links": self._link(req, f"users/{user_id}/groups")})

    # ---- application credentials -------------------------------------------------------------

    def _find_app_cred(self, ref: dict[str, Any]) -> dict[str, Any] | None:
        if "id" in ref:
            return self.store.get("app_cred", str(ref["id"]))
        if "name" in ref and isinstance(ref.get("user"), dict):
            user = self._find_user(ref["user"], "auth/identity/application_credential/user")
            if user is None:
                return None
            return next(
                (
                    c
                    for c in self.store.values("app_cred")
                    if c["user_id"] == user["id"] and c["name"] == ref["name"]
                ),
                None,
            )
        raise _bad("auth/identity/application_credential", "'id' is a required property")

    def app_cred_view(self, req: Request, cred: dict[str, Any]) -> dict[str, Any]:
        view = {k: v for k, v in cred.items() if k != "secret_hash"}
        view["expires_at"] = iso_keystone(cred["expires_at"]) if cred.get("expires_at") else None
        view["links"] = self._link(
            req, f"users/{cred['user_id']}/application_credentials/{cred['id']}"
        )
        return view

    def _own_or_admin(self, req: Request, user_id: str, action: str) -> None:
        if user_id != req.token.user_id and not req.token.is_admin:
            raise _forbidden(action)

    def create_app_cred(self, req: Request) -> Response:
        user_id = req.params["user_id"]
        if user_id != req.token.user_id:
            raise _forbidden("create_application_credential")
        if req.token.doc.get("app_cred_id"):
            parent = self.store.get("app_cred", req.token.doc["app_cred_id"]) or {}
            if not parent.get("unrestricted"):
                raise _forbidden("create_application_credential")
        if not req.token.project_id:
            raise keystone_error(
                400, "Application credentials must be created with a project-scoped token."
            )
        section = _section(_json_body(req), "application_credential")
        if "name" not in section:
            raise _bad("application_credential", "'name' is a required property")
        _check_str(section, "name", "application_credential")
        _check_str(section, "secret", "application_credential", nullable=True)
        _check_str(section, "description", "application_credential", nullable=True)
        _check_bool(section, "unrestricted", "application_credential")
        if any(
            c["user_id"] == user_id and c["name"] == section["name"]
            for c in self.store.values("app_cred")
        ):
            raise keystone_error(
                409,
                "Conflict occurred attempting to store application_credential - Duplicate entry "
                f"found with name {section['name']}.",
            )
        wanted = section.get("roles")
        roles = []
        if wanted:
            if not isinstance(wanted, list):
                raise _bad(
                    "application_credential/roles", f"{json.dumps(wanted)} is not of type 'array'"
                )
            for ref in wanted:
                role = None
                if isinstance(ref, dict):
                    role = self.store.get("role", str(ref.get("id", ""))) or next(
                        (r for r in self.store.values("role") if r["name"] == ref.get("name")), None
                    )
                if role is None or role["name"] not in req.token.roles:
                    raise keystone_error(
                        403,
                        "Application credentials may not be granted roles the creator does not "
                        "hold.",
                    )
                roles.append({"id": role["id"], "name": role["name"], "domain_id": None})
        else:
            roles = [
                {"id": r["id"], "name": r["name"], "domain_id": None}
                for r in self.store.values("role")
                if r["name"] in req.token.roles
            ]
        expires = section.get("expires_at")
        expires_ts = None
        if expires:
            try:
                expires_ts = parse_time(str(expires))
            except ValueError as exc:
                raise _bad(
                    "application_credential/expires_at", f"'{expires}' is not a 'date-time'"
                ) from exc
        secret = section.get("secret") or secrets.token_urlsafe(64)
        cred = {
            "id": new_hex_id(),
            "name": section["name"],
            "description": section.get("description"),
            "user_id": user_id,
            "project_id": req.token.project_id,
            "roles": roles,
            "unrestricted": bool(section.get("unrestricted", False)),
            "expires_at": expires_ts,
            "access_rules": [],
            "secret_hash": self._hash_kept(secret),
            "system": None,
        }
        self.store.put("app_cred", cred)
        view = self.app_cred_view(req, cred)
        view["secret"] = secret
        return Response(201, {"application_credential": view})

    def list_app_creds(self, req: Request) -> Response:
        user_id = req.params["user_id"]
        self._own_or_admin(req, user_id, "list_application_credentials")
        creds = [c for c in self.store.values("app_cred") if c["user_id"] == user_id]
        name = req.q("name")
        if name is not None:
            creds = [c for c in creds if c["name"] == name]
        return Response(
            200,
            {
                "application_credentials": [self.app_cred_view(req, c) for c in creds],
                "links": self._link(req, f"users/{user_id}/application_credentials"),
            },
        )

    def _get_app_cred(self, req: Request, action: str) -> dict[str, Any]:
        user_id = req.params["user_id"]
        self._own_or_admin(req, user_id, action)
        cred = self.store.get("app_cred", req.params["cred_id"])
        if cred is None or cred["user_id"] != user_id:
            raise _not_found("application credential", req.params["cred_id"])
        return cred

    def get_app_cred(self, req: Request) -> Response:
        cred = self._get_app_cred(req, "get_application_credential")
        return Response(200, {"application_credential": self.app_cred_view(req, cred)})

    def delete_app_cred(self, req: Request) -> Response:
        cred = self._get_app_cred(req, "delete_application_credential")
        self.store.delete("app_cred", cred["id"])
        return Response(204)

    # ---- projects ----------------------------------------------------------------------------

    def project_view(self, req: Request, project: dict[str, Any]) -> dict[str, Any]:
        view = dict(project)
        view["links"] = self._link(req, f"projects/{project['id']}")
        return view

    def create_project_record(
        self,
        *,
        name: str,
        domain_id: str = "default",
        description: str = "",
        enabled: bool = True,
        extras: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        project: dict[str, Any] = {
            "id": new_hex_id(),
            "name": name,
            "domain_id": domain_id,
            "description": description,
            "enabled": enabled,
            "is_domain": False,
            "parent_id": domain_id,
            "tags": [],
            "options": {},
        }
        project.update(extras or {})
        self.store.put("project", project)
        return project

    def list_projects(self, req: Request) -> Response:
        self.require_admin(req, "list_projects")
        projects = list(self.store.values("project"))
        for attr in ("name", "domain_id", "parent_id"):
            wanted = req.q(attr)
            if wanted is not None:
                projects = [p for p in projects if p.get(attr) == wanted]
        enabled = req.q("enabled")
        if enabled is not None:
            flag = enabled.lower() not in FALSE_WORDS
            projects = [p for p in projects if p["enabled"] == flag]
        is_domain = req.q("is_domain")
        if is_domain is not None and is_domain.lower() not in FALSE_WORDS:
            projects = []
        views = [self.project_view(req, p) for p in projects]
        return self._paged(req, views, "projects", "projects")

    def create_project(self, req: Request) -> Response:
        self.require_admin(req, "create_project")
        section = _section(_json_body(req), "project")
        if "name" not in section:
            raise _bad("project", "'name' is a required property")
        for key in ("name", "domain_id", "description", "parent_id"):
            _check_str(section, key, "project", nullable=key != "name")
        _check_bool(section, "enabled", "project")
        _check_bool(section, "is_domain", "project")
        name = section["name"]
        if len(name) > 64:
            raise _bad("project/name", f"'{name}' is too long")
        domain_id = section.get("domain_id") or "default"
        if self.store.get("domain", domain_id) is None:
            raise _not_found("domain", domain_id)
        if any(
            p["name"] == name and p["domain_id"] == domain_id for p in self.store.values("project")
        ):
            raise keystone_error(
                409,
                "Conflict occurred attempting to store project - it is not permitted to have two "
                f"projects with the same name in the same domain : {name}.",
            )
        extras = {
            k: v
            for k, v in section.items()
            if k
            not in ("id", "name", "domain_id", "description", "enabled", "parent_id", "is_domain")
        }
        project = self.create_project_record(
            name=name,
            domain_id=domain_id,
            description=section.get("description") or "",
            enabled=section.get("enabled", True),
            extras=extras,
        )
        return Response(201, {"project": self.project_view(req, project)})

    def _get_project(self, project_id: str) -> dict[str, Any]:
        project = self.store.get("project", project_id)
        if project is None:
            raise _not_found("project", project_id)
        return project

    def get_project(self, req: Request) -> Response:
        project_id = req.params["project_id"]
        if project_id != req.token.project_id:
            self.require_admin(req, "get_project")
        return Response(200, {"project": self.project_view(req, self._get_project(project_id))})

    def update_project(self, req: Request) -> Response:
        self.require_admin(req, "update_project")
        project = self._get_project(req.params["project_id"])
        section = _section(_json_body(req), "project")
        for key in ("name", "description"):
            _check_str(section, key, "project", nullable=key != "name")
        _check_bool(section, "enabled", "project")
        for key, value in section.items():
            if key not in ("id", "domain_id", "is_domain", "parent_id"):
                project[key] = value
        self.store.put("project", project)
        return Response(200, {"project": self.project_view(req, project)})

    def delete_project(self, req: Request) -> Response:
        self.require_admin(req, "delete_project")
        project = self._get_project(req.params["project_id"])
        for assignment in self.store.values("assignment"):
            if assignment["project_id"] == project["id"]:
                self.store.delete("assignment", assignment["id"])
        self.store.delete("project", project["id"])
        return Response(204)

    # ---- roles and grants --------------------------------------------------------------------

    def role_view(self, req: Request, role: dict[str, Any]) -> dict[str, Any]:
        view = dict(role)
        view["links"] = self._link(req, f"roles/{role['id']}")
        return view

    def role_by_name(self, name: str) -> dict[str, Any]:
        role = next((r for r in self.store.values("role") if r["name"] == name), None)
        if role is None:
            raise _not_found("role", name)
        return role

    def list_roles(self, req: Request) -> Response:
        self.require_admin(req, "list_roles")
        roles = list(self.store.values("role"))
        name = req.q("name")
        if name is not None:
            roles = [r for r in roles if r["name"] == name]
        return Response(
            200,
            {"roles": [self.role_view(req, r) for r in roles], "links": self._link(req, "roles")},
        )

    def get_role(self, req: Request) -> Response:
        self.require_admin(req, "get_role")
        role = self.store.get("role", req.params["role_id"])
        if role is None:
            raise _not_found("role", req.params["role_id"])
        return Response(200, {"role": self.role_view(req, role)})

    def _grant_parts(
        self, req: Request
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
        project = self._get_project(req.params["project_id"])
        user = self._get_user(req.params["user_id"])
        role = None
        if "role_id" in req.params:
            role = self.store.get("role", req.params["role_id"])
            if role is None:
                raise _not_found("role", req.params["role_id"])
        return project, user, role

    def grant(self, user_id: str, project_id: str, role_id: str) -> None:
        key = f"{user_id}:{project_id}:{role_id}"
        if self.store.get("assignment", key) is None:
            self.store.put(
                "assignment",
                {"id": key, "user_id": user_id, "project_id": project_id, "role_id": role_id},
            )

    def put_grant(self, req: Request) -> Response:
        self.require_admin(req, "create_grant")
        project, user, role = self._grant_parts(req)
        assert role is not None
        self.grant(user["id"], project["id"], role["id"])
        return Response(204)

    def head_grant(self, req: Request) -> Response:
        self.require_admin(req, "check_grant")
        project, user, role = self._grant_parts(req)
        assert role is not None
        if self.store.get("assignment", f"{user['id']}:{project['id']}:{role['id']}") is None:
            raise keystone_error(
                404,
                f"Could not find role assignment with role: {role['id']}, user or group: "
                f"{user['id']}, project, domain, or system: {project['id']}.",
            )
        return Response(204)

    def delete_grant(self, req: Request) -> Response:
        self.require_admin(req, "revoke_grant")
        project, user, role = self._grant_parts(req)
        assert role is not None
        key = f"{user['id']}:{project['id']}:{role['id']}"
        if self.store.get("assignment", key) is None:
            raise keystone_error(
                404,
                f"Could not find role assignment with role: {role['id']}, user or group: "
                f"{user['id']}, project, domain, or system: {project['id']}.",
            )
        self.store.delete("assignment", key)
        return Response(204)

    def list_grants(self, req: Request) -> Response:
        self.require_admin(req, "list_grants")
        project, user, _ = self._grant_parts(req)
        ids = {
            a["role_id"]
            for a in self.store.values("assignment")
            if a["user_id"] == user["id"] and a["project_id"] == project["id"]
        }
        roles = [self.role_view(req, r) for r in self.store.values("role") if r["id"] in ids]
        return Response(
            200,
            {
                "roles": roles,
                "links": self._link(req, f"projects/{project['id']}/users/{user['id']}/roles"),
            },
        )

    def list_role_assignments(self, req: Request) -> Response:
        wanted_user = req.q("user.id")
        if not req.token.is_admin and wanted_user != req.token.user_id:
            raise _forbidden("list_role_assignments")
        include_names = (
            req.q("include_names") is not None
            and (req.q("include_names") or "true").lower() not in FALSE_WORDS
        )
        effective = req.q("effective") is not None
        rows = []
        for a in self.store.values("assignment"):
            if wanted_user and a["user_id"] != wanted_user:
                continue
            if req.q("scope.project.id") and a["project_id"] != req.q("scope.project.id"):
                continue
            role = self.store.get("role", a["role_id"])
            if role is None:
                continue
            names = self._expand([role["name"]]) if effective else [role["name"]]
            for name in names:
                r = self.role_by_name(name)
                if req.q("role.id") and r["id"] != req.q("role.id"):
                    continue
                rows.append(self._assignment_view(req, a, r, include_names))
        if req.q("group.id"):
            rows = []
        return Response(
            200, {"role_assignments": rows, "links": self._link(req, "role_assignments")}
        )

    def _assignment_view(
        self, req: Request, a: dict[str, Any], role: dict[str, Any], names: bool
    ) -> dict[str, Any]:
        base = f"{req.base_url}/identity/v3"
        row: dict[str, Any] = {
            "role": {"id": role["id"]},
            "user": {"id": a["user_id"]},
            "scope": {"project": {"id": a["project_id"]}},
            "links": {
                "assignment": (
                    f"{base}/projects/{a['project_id']}/users/{a['user_id']}/roles/{role['id']}"
                )
            },
        }
        if names:
            user = self.store.get("user", a["user_id"]) or {}
            project = self.store.get("project", a["project_id"]) or {}
            row["role"]["name"] = role["name"]
            row["user"].update(
                {
                    "name": user.get("name"),
                    "domain": {"id": user.get("domain_id"), "name": "Default"},
                }
            )
            row["scope"]["project"].update(
                {
                    "name": project.get("name"),
                    "domain": {"id": project.get("domain_id"), "name": "Default"},
                }
            )
        return row

    # ---- domains, catalog admin --------------------------------------------------------------

    def domain_view(self, req: Request, domain: dict[str, Any]) -> dict[str, Any]:
        view = dict(domain)
        view["links"] = self._link(req, f"domains/{domain['id']}")
        return view

    def list_domains(self, req: Request) -> Response:
        domains = list(self.store.values("domain"))
        name = req.q("name")
        if name is not None:
            domains = [d for d in domains if d["name"] == name]
        if not req.token.is_admin:
            # Non-admins may look up their own domain only.
            user = self.store.get("user", req.token.user_id) or {}
            domains = [d for d in domains if d["id"] == user.get("domain_id")]
        return Response(
            200,
            {
                "domains": [self.domain_view(req, d) for d in domains],
                "links": self._link(req, "domains"),
            },
        )

    def get_domain(self, req: Request) -> Response:
        domain = self.store.get("domain", req.params["domain_id"])
        if domain is None:
            raise _not_found("domain", req.params["domain_id"])
        user = self.store.get("user", req.token.user_id) or {}
        if not req.token.is_admin and domain["id"] != user.get("domain_id"):
            raise _forbidden("get_domain")
        return Response(200, {"domain": self.domain_view(req, domain)})

    def get_security_compliance(self, req: Request) -> Response:
        """Keystone lets any token read the password rule, of the default domain only."""
        if req.params["domain_id"] != "default":
            raise keystone_error(
                403,
                "Invalid domain specific configuration: Reading security compliance information "
                "for any domain other than the default domain is not allowed or supported.",
            )
        return Response(200, {"config": {"security_compliance": self.security_compliance()}})

    def list_services(self, req: Request) -> Response:
        self.require_admin(req, "list_services")
        services = [
            {
                "id": e["id"],
                "type": e["type"],
                "name": e["name"],
                "enabled": True,
                "description": "",
                "links": self._link(req, f"services/{e['id']}"),
            }
            for e in self.catalog(req.base_url)
        ]
        return Response(200, {"services": services, "links": self._link(req, "services")})

    def list_endpoints(self, req: Request) -> Response:
        self.require_admin(req, "list_endpoints")
        endpoints = []
        for entry in self.catalog(req.base_url):
            for ep in entry["endpoints"]:
                endpoints.append(
                    {
                        **ep,
                        "service_id": entry["id"],
                        "enabled": True,
                        "links": self._link(req, f"endpoints/{ep['id']}"),
                    }
                )
        return Response(200, {"endpoints": endpoints, "links": self._link(req, "endpoints")})

    def list_regions(self, req: Request) -> Response:
        region = {
            "id": REGION,
            "description": "",
            "parent_region_id": None,
            "links": self._link(req, f"regions/{REGION}"),
        }
        return Response(200, {"regions": [region], "links": self._link(req, "regions")})
