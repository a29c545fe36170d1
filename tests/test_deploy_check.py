"""A production-like environment passes Django's deployment checklist without a warning."""

from tests.conftest import run_manage


def test_check_deploy_reports_no_issues(child_env: dict[str, str]) -> None:
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=child_env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_catches_a_weak_key(child_env: dict[str, str]) -> None:
    child_env["SECRET_KEY"] = "short"

    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=child_env)

    assert result.returncode != 0
    assert "security.W009" in result.stdout + result.stderr


def test_check_deploy_is_clean_behind_a_tls_proxy_too(child_env: dict[str, str]) -> None:
    child_env["BEHIND_TLS_PROXY"] = "true"

    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=child_env)

    assert result.returncode == 0, result.stdout + result.stderr


def test_check_deploy_names_every_https_protection_a_plain_http_run_turns_off(
    child_env: dict[str, str],
) -> None:
    child_env["SECURE_HTTPS"] = "false"

    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=child_env)

    assert result.returncode != 0
    # HSTS, the redirect to HTTPS, the session cookie and the CSRF cookie.
    for check in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert check in result.stdout + result.stderr, check
