"""Connection settings the way OpenStack users write them: clouds.yaml or OS_* variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from portal.openstack.errors import ConfigurationError

PASSWORD = "password"  # noqa: S105 -- an auth type name, not a secret
APPLICATION_CREDENTIAL = "v3applicationcredential"
_AUTH_TYPE_ALIASES = {
    "password": PASSWORD,
    "v3password": PASSWORD,
    "v3applicationcredential": APPLICATION_CREDENTIAL,
    "applicationcredential": APPLICATION_CREDENTIAL,
    "application_credential": APPLICATION_CREDENTIAL,
}
SERVICES = ("identity", "compute", "network", "image")


@dataclass(frozen=True)
class CloudConfig:
    """Everything needed to reach one cloud. Secrets are kept out of repr."""

    auth_url: str
    auth_type: str = PASSWORD
    username: str | None = None
    user_id: str | None = None
    password: str | None = field(default=None, repr=False)
    user_domain_name: str | None = None
    user_domain_id: str | None = None
    project_name: str | None = None
    project_id: str | None = None
    project_domain_name: str | None = None
    project_domain_id: str | None = None
    application_credential_id: str | None = None
    application_credential_name: str | None = None
    application_credential_secret: str | None = field(default=None, repr=False)
    region_name: str | None = None
    interface: str = "public"
    verify: bool | str = True
    timeout: float = 30.0
    # Per service type ("compute", ...): a URL used instead of the catalog's, for catalogs that
    # hold addresses the portal cannot reach.
    endpoint_overrides: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # Upper bound for the negotiated compute microversion; None means the client's own maximum.
    compute_max_microversion: str | None = None
    retries: int = 3
    backoff_cap: float = 4.0
    page_size: int | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if not self.auth_url:
            raise ConfigurationError("no auth_url: set OS_CLOUD or OS_AUTH_URL")
        if self.auth_type == PASSWORD:
            if not (self.username or self.user_id) or self.password is None:
                raise ConfigurationError(
                    "password auth needs a username (or user id) and a password"
                )
        elif self.auth_type == APPLICATION_CREDENTIAL:
            if not self.application_credential_secret or not (
                self.application_credential_id
                or (self.application_credential_name and (self.username or self.user_id))
            ):
                raise ConfigurationError(
                    "application credential auth needs an id (or a name and user) and a secret"
                )
        else:
            raise ConfigurationError(f"unsupported auth type {self.auth_type!r}")
        if self.timeout <= 0:
            raise ConfigurationError("timeout must be positive")

    def with_overrides(self, **changes: Any) -> CloudConfig:
        return replace(self, **changes)


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


def _verify_from(cloud: Mapping[str, Any]) -> bool | str:
    cacert = cloud.get("cacert")
    if cacert:
        return str(cacert)
    if "verify" in cloud:
        return _truthy(cloud["verify"])
    if "insecure" in cloud:
        return not _truthy(cloud["insecure"])
    return True


def clouds_yaml_paths(env: Mapping[str, str]) -> list[Path]:
    """Where OpenStack tools look for clouds.yaml, in their order."""
    paths = []
    if env.get("OS_CLIENT_CONFIG_FILE"):
        paths.append(Path(env["OS_CLIENT_CONFIG_FILE"]))
    paths += [
        Path.cwd() / "clouds.yaml",
        Path.home() / ".config" / "openstack" / "clouds.yaml",
        Path("/etc/openstack/clouds.yaml"),
    ]
    return paths


def _from_mapping(name: str, cloud: Mapping[str, Any], **extra: Any) -> CloudConfig:
    auth = dict(cloud.get("auth") or {})
    auth_type = _AUTH_TYPE_ALIASES.get(str(cloud.get("auth_type", "password")).lower())
    if auth_type is None:
        raise ConfigurationError(f"cloud {name!r}: unsupported auth_type {cloud.get('auth_type')}")
    overrides = {
        service: str(cloud[f"{service}_endpoint_override"])
        for service in SERVICES
        if cloud.get(f"{service}_endpoint_override")
    }
    # clouds.yaml lets a domain_* key stand for both the user's and the project's domain.
    domain_id = auth.get("domain_id")
    domain_name = auth.get("domain_name")
    values: dict[str, Any] = {
        "name": name,
        "auth_url": str(auth.get("auth_url") or ""),
        "auth_type": auth_type,
        "username": auth.get("username"),
        "user_id": auth.get("user_id"),
        "password": None if auth.get("password") is None else str(auth["password"]),
        "user_domain_name": auth.get("user_domain_name") or domain_name,
        "user_domain_id": auth.get("user_domain_id") or domain_id,
        "project_name": auth.get("project_name") or auth.get("tenant_name"),
        "project_id": auth.get("project_id") or auth.get("tenant_id"),
        "project_domain_name": auth.get("project_domain_name") or domain_name,
        "project_domain_id": auth.get("project_domain_id") or domain_id,
        "application_credential_id": auth.get("application_credential_id"),
        "application_credential_name": auth.get("application_credential_name"),
        "application_credential_secret": auth.get("application_credential_secret"),
        "region_name": cloud.get("region_name") or None,
        "interface": str(cloud.get("interface") or "public"),
        "verify": _verify_from(cloud),
        "endpoint_overrides": MappingProxyType(overrides),
    }
    if cloud.get("api_timeout"):
        values["timeout"] = float(cloud["api_timeout"])
    if cloud.get("compute_api_version"):
        values["compute_max_microversion"] = str(cloud["compute_api_version"])
    values.update({k: v for k, v in extra.items() if v is not None})
    return CloudConfig(**values)


def load_clouds_yaml(path: Path, cloud: str, **extra: Any) -> CloudConfig:
    """The named cloud of one clouds.yaml file."""
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from exc
    clouds = document.get("clouds") or {}
    if cloud not in clouds:
        raise ConfigurationError(f"cloud {cloud!r} is not in {path} (has: {sorted(clouds)})")
    return _from_mapping(cloud, clouds[cloud], **extra)


def _from_env(env: Mapping[str, str], **extra: Any) -> CloudConfig:
    def get(name: str) -> str | None:
        return env.get(name) or None

    cloud: dict[str, Any] = {
        "auth_type": get("OS_AUTH_TYPE")
        or ("v3applicationcredential" if get("OS_APPLICATION_CREDENTIAL_SECRET") else "password"),
        "region_name": get("OS_REGION_NAME"),
        "interface": get("OS_INTERFACE"),
        "auth": {
            "auth_url": get("OS_AUTH_URL"),
            "username": get("OS_USERNAME"),
            "user_id": get("OS_USER_ID"),
            "password": env.get("OS_PASSWORD"),
            "user_domain_name": get("OS_USER_DOMAIN_NAME"),
            "user_domain_id": get("OS_USER_DOMAIN_ID"),
            "project_name": get("OS_PROJECT_NAME") or get("OS_TENANT_NAME"),
            "project_id": get("OS_PROJECT_ID") or get("OS_TENANT_ID"),
            "project_domain_name": get("OS_PROJECT_DOMAIN_NAME"),
            "project_domain_id": get("OS_PROJECT_DOMAIN_ID"),
            "domain_name": get("OS_DOMAIN_NAME"),
            "domain_id": get("OS_DOMAIN_ID"),
            "application_credential_id": get("OS_APPLICATION_CREDENTIAL_ID"),
            "application_credential_name": get("OS_APPLICATION_CREDENTIAL_NAME"),
            "application_credential_secret": get("OS_APPLICATION_CREDENTIAL_SECRET"),
        },
    }
    if get("OS_CACERT"):
        cloud["cacert"] = get("OS_CACERT")
    if get("OS_INSECURE"):
        cloud["insecure"] = get("OS_INSECURE")
    if get("OS_COMPUTE_API_VERSION"):
        cloud["compute_api_version"] = get("OS_COMPUTE_API_VERSION")
    return _from_mapping("env", cloud, **extra)


def load_config(
    cloud: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    clouds_yaml: Path | None = None,
    **extra: Any,
) -> CloudConfig:
    """The cloud named by ``cloud`` or ``OS_CLOUD`` from clouds.yaml, else from OS_* variables.

    ``extra`` sets CloudConfig fields (timeout, region_name, interface, ...) where not None;
    ``OS_REGION_NAME``/``OS_INTERFACE`` given in the environment override clouds.yaml as they do
    for the openstack CLI.
    """
    env = os.environ if env is None else env
    name = cloud or env.get("OS_CLOUD") or None
    if name:
        candidates = [clouds_yaml] if clouds_yaml else clouds_yaml_paths(env)
        for path in candidates:
            if path.is_file():
                for key, var in (("region_name", "OS_REGION_NAME"), ("interface", "OS_INTERFACE")):
                    if env.get(var) and extra.get(key) is None:
                        extra[key] = env[var]
                return load_clouds_yaml(path, name, **extra)
        raise ConfigurationError(
            f"OS_CLOUD={name!r} but no clouds.yaml found (looked in: "
            + ", ".join(str(p) for p in candidates)
            + ")"
        )
    return _from_env(env, **extra)
