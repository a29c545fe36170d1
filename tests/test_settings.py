"""Settings come from the environment and refuse to start insecurely."""

import json
import re
from pathlib import Path

from tests.conftest import ROOT, clean_env, run_manage

_DUMP = (
    "import json; from django.conf import settings as s; print(json.dumps({"
    "'engine': s.DATABASES['default']['ENGINE'], 'name': str(s.DATABASES['default']['NAME']),"
    "'tz': s.TIME_ZONE, 'lang': s.LANGUAGE_CODE, 'langs': [c for c, _ in s.LANGUAGES],"
    "'tasks': s.TASKS['default']['BACKEND'], 'mw': s.MIDDLEWARE, 'debug': s.DEBUG,"
    "'ssl': s.SECURE_SSL_REDIRECT, 'cache': s.CACHES['default']['BACKEND'],"
    "'hosts': s.ALLOWED_HOSTS, 'use_tz': s.USE_TZ}))"
)


def dump_settings(env: dict[str, str]) -> dict:
    result = run_manage("shell", "-c", _DUMP, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_refuses_to_start_without_secret_key(tmp_path: Path) -> None:
    result = run_manage("check", env=clean_env(VAR_DIR=str(tmp_path), DEBUG="false"))

    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_debug_mode_starts_without_secret_key(tmp_path: Path) -> None:
    result = run_manage("check", env=clean_env(VAR_DIR=str(tmp_path), DEBUG="true"))

    assert result.returncode == 0, result.stderr


def test_defaults_are_the_embedded_korean_portal(child_env: dict[str, str]) -> None:
    values = dump_settings(child_env)

    assert values["engine"] == "django.db.backends.sqlite3"
    assert values["name"] == str(Path(child_env["VAR_DIR"]) / "db.sqlite3")
    assert values["tz"] == "Asia/Seoul"
    assert values["lang"] == "ko"
    assert values["langs"] == ["ko", "en"]
    assert values["use_tz"] is True
    assert values["tasks"] == "django_tasks_db.DatabaseBackend"
    assert "django_htmx.middleware.HtmxMiddleware" in values["mw"]
    assert "whitenoise.middleware.WhiteNoiseMiddleware" in values["mw"]
    assert values["cache"] == "django.core.cache.backends.filebased.FileBasedCache"
    assert values["debug"] is False
    assert values["ssl"] is True


def test_database_and_cache_come_from_urls(child_env: dict[str, str]) -> None:
    child_env["DATABASE_URL"] = "postgres://portal:secret@db.internal:5432/codesquare"
    child_env["CACHE_URL"] = "redis://127.0.0.1:6379/1"
    child_env["ALLOWED_HOSTS"] = "a.example,b.example"

    values = dump_settings(child_env)

    assert values["engine"] == "django.db.backends.postgresql"
    assert values["name"] == "codesquare"
    assert values["cache"] == "django.core.cache.backends.redis.RedisCache"
    # Its client library is installed: making the client connects to nothing yet.
    made = run_manage(
        "shell",
        "-c",
        "from django.core.cache import caches; print(caches['default']._cache)",
        env=child_env,
    )
    assert made.returncode == 0, made.stderr
    assert values["hosts"] == ["a.example", "b.example"]


def test_every_variable_the_settings_read_is_documented_in_env_example() -> None:
    source = (ROOT / "codesquare" / "settings.py").read_text()
    read = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z_]+)"', source))
    read |= set(re.findall(r'Env\(\)\.\w+\("([A-Z_]+)"', source))
    documented = set(re.findall(r"^([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))

    assert len(read) > 15
    assert read - documented == set()


def test_behind_the_proxy_lockouts_and_metrics_read_the_address_the_proxy_appended(
    child_env: dict[str, str],
) -> None:
    # What tests/selfservice/test_login.py sets by hand for its proxy test, and why it must be set.
    child_env["BEHIND_TLS_PROXY"] = "true"
    dump = (
        "import json; from django.conf import settings as s; print(json.dumps(["
        "s.AXES_IPWARE_PROXY_COUNT, s.AXES_IPWARE_META_PRECEDENCE_ORDER, "
        "s.AXES_CLIENT_IP_CALLABLE]))"
    )
    result = run_manage("shell", "-c", dump, env=child_env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [
        1,
        ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"],
        "portal.clientaddress.client_address",
    ]


_POLL = (
    "from django.conf import settings as s; "
    "print(s.POLL_FAST_PATH, s.POLL_CACHE_SECONDS, s.SESSION_ENGINE.rsplit('.', 1)[-1])"
)


def test_polls_answer_from_the_cache_only_when_every_process_shares_it(
    child_env: dict[str, str],
) -> None:
    def poll_settings(**env: str) -> str:
        result = run_manage("shell", "-c", _POLL, env={**child_env, **env})
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().splitlines()[-1]

    assert poll_settings() == "True 300.0 cached_db"  # the file cache: one machine's processes
    # A per-process cache can carry neither a worker's writes nor a logout: the database.
    assert poll_settings(CACHE_URL="locmemcache://") == "False 300.0 db"
    assert poll_settings(CACHE_URL="redis://127.0.0.1:6379/1") == "True 300.0 cached_db"
    assert poll_settings(POLL_CACHE_URL="locmemcache://") == "False 300.0 db"
    assert poll_settings(POLL_FAST_PATH="false", POLL_CACHE_SECONDS="5") == "False 5.0 db"
