"""CodeSquare Portal settings: one module, every value from the environment (see .env.example)."""

import ipaddress
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()
if env.bool("READ_DOT_ENV", default=True) and (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=False)

_DEV_SECRET_KEY = "django-insecure-codesquare-development-only-key-never-use-in-production"  # noqa: S105 -- DEBUG only
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off (see .env.example); "
            "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )
    SECRET_KEY = _DEV_SECRET_KEY

ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "portal.apps.ConsoleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_tasks_db",
    "axes",
    "portal",
]

MIDDLEWARE = [
    # First, so a request's time includes every other middleware's.
    "portal.middleware.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    # After the two above, so the probe carries their headers; before anything reads the host.
    # /metrics too: a scraper asks by address.
    "portal.middleware.HealthCheckMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, so it sees the outcome of the login views (lockouts become the lockout page).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "codesquare.urls"
WSGI_APPLICATION = "codesquare.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=0))
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A web server and a task worker share one SQLite file: wait for locks instead of failing,
    # and take the write lock up front so two writers never deadlock on an upgrade. In WAL mode
    # synchronous=NORMAL is still safe from corruption and spares an fsync per commit (a roster
    # import commits one task per operation it queues: 2,200 commits for 2,000 soldiers).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # Tests use a file too, so threads and worker processes share one database as they do live.
    DATABASES["default"].setdefault("TEST", {"NAME": str(VAR_DIR / "test-db.sqlite3")})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHE_URL = env.str("CACHE_URL", default=f"filecache://{VAR_DIR / 'cache'}")
CACHES = {
    "default": env.cache_url_config(CACHE_URL),
    # What the polls answer "unchanged" from (portal/pollcache.py) and the sessions: a cache every
    # web and worker process shares, since a worker's write must reach the web processes and a
    # logout on one web process every other one. The same cache unless POLL_CACHE_URL names one.
    "poll": env.cache_url_config(env.str("POLL_CACHE_URL", default=CACHE_URL)),
}
if CACHES["poll"]["BACKEND"].endswith("FileBasedCache"):
    # Django's file cache lists its whole directory at every write once past MAX_ENTRIES (300 by
    # default) and deletes a third: a company's sessions and cards alone are thousands of entries.
    CACHES["poll"].setdefault("OPTIONS", {}).setdefault("MAX_ENTRIES", 100_000)
# A poll that finds nothing new answers from that cache alone, and a session read is a read of it
# (the database is asked on a miss only); loading the session and the user from the database was
# a good half of each poll. A per-process cache cannot carry either: the database then.
POLL_FAST_PATH = env.bool(
    "POLL_FAST_PATH",
    default=not CACHES["poll"]["BACKEND"].endswith(("LocMemCache", "DummyCache")),
)
SESSION_ENGINE = "django.contrib.sessions.backends." + ("cached_db" if POLL_FAST_PATH else "db")
SESSION_CACHE_ALIAS = "poll"
# How long a poll's cached versions and session checks live at most: the safety net for a write
# no hook saw (every known write drops them at once). Each expiry costs the card a full render:
# a 500-soldier morning start made 2,078 full answers at 60 s, 1,419 at 300 s (load bench).
POLL_CACHE_SECONDS = env.float("POLL_CACHE_SECONDS", default=300.0)
# A soldier's card of a VM at rest still asks for news this often, so an open page shows a start
# or a stop made by staff or a schedule without a reload; under way it asks every 2 s.
CARD_IDLE_POLL_SECONDS = env.int("CARD_IDLE_POLL_SECONDS", default=20)

TASKS = {
    "default": {
        "BACKEND": env.str("TASKS_BACKEND", default="django_tasks_db.DatabaseBackend"),
        "QUEUES": ["default"],
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Every new cloud password (a soldier's change, a staff reset, a first password) passes these:
# portal/password_policy.py.
CLOUD_PASSWORD_VALIDATORS: list[dict[str, Any]] = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator",
        "OPTIONS": {"user_attributes": ["username"]},
    },
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": env.int("CLOUD_PASSWORD_MIN_LENGTH", default=12)},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Soldiers log in with their cloud (Keystone) account, staff with their Django account; django-axes
# comes first and refuses a locked-out username from this address before either is asked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "portal.selfservice.auth.KeystoneBackend",
    "portal.selfservice.auth.StaffBackend",
]
LOGIN_URL = "selfservice:login"
LOGIN_REDIRECT_URL = "selfservice:home"
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)
# Failed logins (and wrong current passwords on the password page) lock out one username from one
# address: a whole unit may sit behind one NAT address, so never the address alone.
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_USERNAME_CALLABLE = "portal.selfservice.auth.lockout_username"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "portal.selfservice.views.locked_out"
# Masked in the attempt records axes keeps (it always masks "password").
AXES_SENSITIVE_PARAMETERS = [
    "username",
    "ip_address",
    "original_password",
    "new_password",
    "confirm_password",
    "public_key",
]

LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="ko")
LANGUAGES = [("ko", _("Korean")), ("en", _("English"))]
# One Korean catalogue for the app and the project's templates (bin/messages refreshes it).
LOCALE_PATHS = [BASE_DIR / "portal" / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="Asia/Seoul")
USE_I18N = True
USE_TZ = env.bool("USE_TZ", default=True)

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# HTTPS hardening is on by default outside DEBUG; a plain-HTTP local run turns it off explicitly.
SECURE_HTTPS = env.bool("SECURE_HTTPS", default=not DEBUG)
SECURE_SSL_REDIRECT = SECURE_HTTPS
SESSION_COOKIE_SECURE = SECURE_HTTPS
CSRF_COOKIE_SECURE = SECURE_HTTPS
# The language switch's cookie too: no cookie of the portal's travels over plain HTTP.
LANGUAGE_COOKIE_SECURE = SECURE_HTTPS
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SAMESITE = "Lax"
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if SECURE_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HTTPS
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_TLS_PROXY", default=False) else None
)
if SECURE_PROXY_SSL_HEADER:
    # Behind the proxy every request comes from it: count failed logins by the client's address.
    AXES_IPWARE_PROXY_COUNT = 1
    AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"]
    # Axes reads the two above only through django-ipware (not installed): it asks this instead.
    AXES_CLIENT_IP_CALLABLE = "portal.clientaddress.client_address"
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
# Django's own Content-Security-Policy: scripts and styles from the portal's origin only (htmx is
# vendored), no inline script without the request's nonce, no framing, no foreign form targets.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "font-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

# --- OpenStack ---------------------------------------------------------------------------
# The connection itself follows OpenStack conventions and is read by portal.openstack:
# OS_CLOUD (+ OS_CLIENT_CONFIG_FILE / clouds.yaml) or the standard OS_* variables.
OPENSTACK_CLOUD = env.str("OS_CLOUD", default="")
OPENSTACK_INTERFACE = env.str("OS_INTERFACE", default="public")
OPENSTACK_REGION = env.str("OS_REGION_NAME", default="")
OPENSTACK_TIMEOUT = env.float("OPENSTACK_TIMEOUT", default=30.0)
# A soldier's login waits at most this long for Keystone, and at most this many logins of one
# process wait at once; past that a login answers "try again shortly" at once, so a slow Keystone
# cannot tie up every web thread (the console and /healthz stay up).
LOGIN_KEYSTONE_TIMEOUT = env.float("LOGIN_KEYSTONE_TIMEOUT", default=5.0)
# One less than gunicorn's threads per worker (4): a thread stays free for everything else.
LOGIN_KEYSTONE_CONCURRENCY = env.int("LOGIN_KEYSTONE_CONCURRENCY", default=3)
# How long a login waits for a free slot before it is told to try again shortly.
LOGIN_KEYSTONE_QUEUE_SECONDS = env.float("LOGIN_KEYSTONE_QUEUE_SECONDS", default=0.5)
OPENSTACK_EXTERNAL_NETWORK = env.str("OPENSTACK_EXTERNAL_NETWORK", default="public")
# "project": each soldier project gets its own network, subnet and router (portal-owned);
# "shared": every VM uses OPENSTACK_SHARED_NETWORK.
OPENSTACK_NETWORK_MODE = env.str("OPENSTACK_NETWORK_MODE", default="project")
OPENSTACK_SHARED_NETWORK = env.str("OPENSTACK_SHARED_NETWORK", default="")
OPENSTACK_PROJECT_CIDR = env.str("OPENSTACK_PROJECT_CIDR", default="10.20.0.0/24")
OPENSTACK_DNS_NAMESERVERS = env.list("OPENSTACK_DNS_NAMESERVERS", default=[])
OPENSTACK_MEMBER_ROLE = env.str("OPENSTACK_MEMBER_ROLE", default="member")
OPENSTACK_SERVICE_ROLE = env.str("OPENSTACK_SERVICE_ROLE", default="admin")
OPENSTACK_DOMAIN = env.str("OPENSTACK_DOMAIN", default="default")
OPENSTACK_PROJECT_PREFIX = env.str("OPENSTACK_PROJECT_PREFIX", default="cs-")
# Availability zones templates and forced hosts may use (empty: any zone).
OPENSTACK_ALLOWED_ZONES = env.list("OPENSTACK_ALLOWED_ZONES", default=["nova"])
DISCHARGE_WARNING_DAYS = env.int("DISCHARGE_WARNING_DAYS", default=14)
# Past this, a VM still building is shown as "taking longer than usual".
STATUS_BUILD_SLOW_SECONDS = env.float("STATUS_BUILD_SLOW_SECONDS", default=300)
# Durable operations (portal.services): how long a worker's claim lasts without progress, how
# often a wait re-checks the cloud, how often and how patiently transient failures are retried,
# and how often the scheduler (manage.py cloud_schedule) reconciles.
OPERATION_LEASE_SECONDS = env.float("OPERATION_LEASE_SECONDS", default=300)
OPERATION_POLL_SECONDS = env.float("OPERATION_POLL_SECONDS", default=2)
OPERATION_MAX_RETRIES = env.int("OPERATION_MAX_RETRIES", default=4)
OPERATION_RETRY_BASE_SECONDS = env.float("OPERATION_RETRY_BASE_SECONDS", default=2)
OPERATION_LAUNCH_TIMEOUT_SECONDS = env.float("OPERATION_LAUNCH_TIMEOUT_SECONDS", default=900)
OPERATION_DELETE_TIMEOUT_SECONDS = env.float("OPERATION_DELETE_TIMEOUT_SECONDS", default=600)
OPERATION_POWER_TIMEOUT_SECONDS = env.float("OPERATION_POWER_TIMEOUT_SECONDS", default=300)
OPERATION_DISCHARGE_TIMEOUT_SECONDS = env.float("OPERATION_DISCHARGE_TIMEOUT_SECONDS", default=1800)
OPERATION_RETRY_MAX_SECONDS = env.float("OPERATION_RETRY_MAX_SECONDS", default=60)
OPERATION_STALE_GRACE_SECONDS = env.float("OPERATION_STALE_GRACE_SECONDS", default=60)
# A create whose answer was lost (timeout, dropped connection) is looked for this long (and at
# least twice OPENSTACK_TIMEOUT) before it is tried again.
OPERATION_UNKNOWN_OUTCOME_SECONDS = env.float("OPERATION_UNKNOWN_OUTCOME_SECONDS", default=60)
# A discharge that fails is retried by the scheduler after this long, doubling each time.
DISCHARGE_RETRY_BASE_SECONDS = env.float("DISCHARGE_RETRY_BASE_SECONDS", default=300)
DISCHARGE_RETRY_MAX_SECONDS = env.float("DISCHARGE_RETRY_MAX_SECONDS", default=86_400)
RECONCILE_INTERVAL_SECONDS = env.float("RECONCILE_INTERVAL_SECONDS", default=300)
# Usernames no soldier may take, besides the cloud's own (admin, nova, neutron, glance, ...) and
# the portal's cloud user, which portal.validation always refuses.
OPENSTACK_RESERVED_USERNAMES = env.list("OPENSTACK_RESERVED_USERNAMES", default=[])
# Roster import (Soldier admin): the largest file and the most rows one import takes, and how
# long an uploaded file waits for its confirmation.
ROSTER_MAX_UPLOAD_BYTES = env.int("ROSTER_MAX_UPLOAD_BYTES", default=5 * 1024 * 1024)
ROSTER_MAX_ROWS = env.int("ROSTER_MAX_ROWS", default=5000)
ROSTER_UPLOAD_TTL_SECONDS = env.int("ROSTER_UPLOAD_TTL_SECONDS", default=3600)

# --- Soldier self-service (portal.selfservice) --------------------------------------------
# How many VMs a soldier may have at once (not deleted); requests over it are refused.
SELFSERVICE_LIVE_VM_LIMIT = env.int("SELFSERVICE_LIVE_VM_LIMIT", default=1)
# Whether soldiers may delete their own VM (through the leak-proof delete); staff always can.
SELFSERVICE_SOLDIER_DELETE = env.bool("SELFSERVICE_SOLDIER_DELETE", default=False)
# `manage.py demo_data` makes logins whose passwords are published in the repository: only
# bin/run turns this on, and only for the devcloud it started itself.
DEMO_DATA = env.bool("CODESQUARE_DEMO_DATA", default=False)
# The login name shown in the SSH command when the image's name does not tell (ubuntu, ...).
SELFSERVICE_SSH_USER = env.str("SELFSERVICE_SSH_USER", default="ubuntu")

# --- Metrics (portal.metrics; README "Metrics") -------------------------------------------
# Every process (web, task worker, scheduler) writes its counts here and a scrape adds them up:
# one directory per installation, emptied before the processes start (bin/run does).
# prometheus-client reads it from the environment, so it is put there for the whole process.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default=str(VAR_DIR / "metrics"))
os.environ["PROMETHEUS_MULTIPROC_DIR"] = PROMETHEUS_MULTIPROC_DIR
# /metrics answers clients from these networks (behind BEHIND_TLS_PROXY: the address the proxy
# saw), or any client that sends "Authorization: Bearer <METRICS_TOKEN>"; others get a 404.
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=["127.0.0.0/8", "::1/128"])
for _network in METRICS_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(f"METRICS_ALLOWED_NETWORKS: {_exc}") from None
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # keystoneauth logs request bodies at DEBUG; keep it quiet, our client logs one line a call.
        "keystoneauth": {"level": "WARNING"},
    },
}
