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
