"""Connection settings from clouds.yaml or OS_* variables, as OpenStack tools read them."""

from __future__ import annotations

from pathlib import Path

import pytest

from portal.openstack import ConfigurationError, load_config
from portal.openstack.config import APPLICATION_CREDENTIAL, PASSWORD
from portal.openstack.transport import build_auth_plugin, normalise_endpoint

CLOUDS = """
clouds:
  codesquare:
    auth:
      auth_url: https://cloud.example/identity
      username: codesquare-portal
      password: "p@ss: word"
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionTwo
    interface: internal
    api_timeout: 12
    compute_endpoint_override: https://nova.example/v2.1
  appcred:
    auth_type: v3applicationcredential
    auth:
      auth_url: https://cloud.example/identity/v3
      application_credential_id: 21dced0f
      application_credential_secret: cred-secret
"""


@pytest.fixture
def clouds(tmp_path: Path) -> Path:
    path = tmp_path / "clouds.yaml"
    path.write_text(CLOUDS)
    return path


def test_os_cloud_names_a_cloud_in_os_client_config_file(clouds: Path) -> None:
    config = load_config(env={"OS_CLOUD": "codesquare", "OS_CLIENT_CONFIG_FILE": str(clouds)})
    assert config.auth_type == PASSWORD
    assert config.username == "codesquare-portal"
    assert config.password == "p@ss: word"
    assert (config.region_name, config.interface, config.timeout) == ("RegionTwo", "internal", 12)
    assert config.endpoint_overrides["compute"] == "https://nova.example/v2.1"
    assert "p@ss" not in repr(config)


def test_environment_region_and_interface_override_clouds_yaml(clouds: Path) -> None:
    env = {
        "OS_CLOUD": "codesquare",
        "OS_CLIENT_CONFIG_FILE": str(clouds),
        "OS_REGION_NAME": "RegionOne",
        "OS_INTERFACE": "public",
    }
    config = load_config(env=env)
    assert (config.region_name, config.interface) == ("RegionOne", "public")


def test_application_credential_from_clouds_yaml(clouds: Path) -> None:
    config = load_config("appcred", env={}, clouds_yaml=clouds)
    assert config.auth_type == APPLICATION_CREDENTIAL
    assert "cred-secret" not in repr(config)
    plugin = build_auth_plugin(config)
    assert type(plugin).__name__ == "ApplicationCredential"
    with pytest.raises(ConfigurationError, match="cannot be re-scoped"):
        build_auth_plugin(config, project_id="other")


def test_standard_os_variables() -> None:
    env = {
        "OS_AUTH_URL": "http://127.0.0.1:5000/v3",
        "OS_USERNAME": "admin",
        "OS_PASSWORD": "pw",
        "OS_PROJECT_NAME": "admin",
        "OS_USER_DOMAIN_NAME": "Default",
        "OS_PROJECT_DOMAIN_ID": "default",
        "OS_REGION_NAME": "RegionOne",
    }
    config = load_config(env=env, timeout=5.0)
    assert config.auth_type == PASSWORD
    assert (config.project_name, config.project_domain_id) == ("admin", "default")
    assert config.interface == "public"
    assert config.timeout == 5.0


def test_application_credential_from_os_variables() -> None:
    env = {
        "OS_AUTH_URL": "http://127.0.0.1:5000",
        "OS_APPLICATION_CREDENTIAL_ID": "abc",
        "OS_APPLICATION_CREDENTIAL_SECRET": "s",
    }
    config = load_config(env=env)
    assert config.auth_type == APPLICATION_CREDENTIAL


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "no auth_url"),
        ({"OS_AUTH_URL": "http://k/v3", "OS_USERNAME": "u"}, "needs a username"),
        ({"OS_AUTH_URL": "http://k/v3", "OS_AUTH_TYPE": "token", "OS_TOKEN": "x"}, "unsupported"),
        ({"OS_CLOUD": "nowhere", "OS_CLIENT_CONFIG_FILE": "/nonexistent/clouds.yaml"}, "no clouds"),
    ],
)
def test_incomplete_settings_are_refused(
    env: dict[str, str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray ./clouds.yaml
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ConfigurationError, match=message):
        load_config(env=env)


def test_unknown_cloud_name(clouds: Path) -> None:
    with pytest.raises(ConfigurationError, match="'other' is not in"):
        load_config("other", env={}, clouds_yaml=clouds)


@pytest.mark.parametrize(
    ("service", "url", "expected"),
    [
        ("identity", "http://h/identity", "http://h/identity/v3"),
        ("identity", "http://h:5000/v3/", "http://h:5000/v3"),
        ("compute", "http://h/compute/v2.1", "http://h/compute/v2.1"),
        ("compute", "http://h:8774/v2.1/6f70656e", "http://h:8774/v2.1/6f70656e"),
        ("network", "http://h:9696", "http://h:9696/v2.0"),
        ("network", "http://h/networking/", "http://h/networking/v2.0"),
        ("image", "http://h/image", "http://h/image/v2"),
    ],
)
def test_catalog_urls_are_versioned(service: str, url: str, expected: str) -> None:
    assert normalise_endpoint(service, url) == expected
