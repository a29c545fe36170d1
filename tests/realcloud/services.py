"""The `full` mode beyond Keystone: Placement, Nova, Neutron and Glance, and their fixtures.

Nova, Placement and Neutron get MariaDB databases (Neutron's migrations cannot run on SQLite,
and Nova and Placement lock up on SQLite under concurrent boots); Glance keeps SQLite. Each
bring-up gets its own database names and RabbitMQ vhost, derived from a random tag, so two
clouds on one machine do not meet and `down` can drop exactly what `up` made.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devcloud.seed import HOSTS
from tests.realcloud import proc
from tests.realcloud.rest import Admin

if TYPE_CHECKING:
    from tests.realcloud.cloud import Build

SQL_HOST = "127.0.0.1"
RABBIT = "guest:guest@127.0.0.1:5672"
DATABASES = ("keystone", "placement", "nova_api", "nova_cell0", "nova", "neutron")
SERVICE_USERS = ("placement", "nova", "neutron", "glance")
# Two compute hosts named as in devcloud's seed, so a test may force either one.
COMPUTE_HOSTS = HOSTS


# --- backing services -------------------------------------------------------------------------


def _sql(statement: str) -> str:
    return proc.run(["mariadb", "-h", SQL_HOST, "-u", "root", "-N", "-B", "-e", statement])


def _rabbitmqctl(*args: str) -> str:
    return proc.run(["rabbitmqctl", "-q", *args], timeout=120)


def _answers(argv: list[str]) -> bool:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def ensure_backing() -> None:
    """MariaDB and RabbitMQ must answer; start the machine's own if they are installed but down.

    They are system services, shared with anything else on the machine, so `down` never stops
    them; what `down` removes is this cloud's databases and vhost.
    """
    checks = {
        "mariadb": ["mariadb", "-h", SQL_HOST, "-u", "root", "-e", "SELECT 1"],
        "rabbitmq-server": ["rabbitmqctl", "-q", "status"],
    }
    for service, check in checks.items():
        if _answers(check):
            continue
        if shutil.which("service"):
            subprocess.run(["service", service, "start"], capture_output=True, check=False)
        deadline = time.monotonic() + 60
        while not _answers(check):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{service} does not answer and could not be started; install it "
                    f"(apt-get install {service.replace('mariadb', 'mariadb-server')}) "
                    "or run tests/realcloud/ci.sh, which does"
                )
            time.sleep(1)


def drop_backing(state: dict[str, Any]) -> None:
    tag = state.get("tag")
    if not tag:
        return
    with contextlib.suppress(RuntimeError, OSError, subprocess.TimeoutExpired):
        _sql("; ".join(f"DROP DATABASE IF EXISTS {tag}_{db}" for db in DATABASES))
    if state.get("vhost_created"):
        with contextlib.suppress(RuntimeError, OSError, subprocess.TimeoutExpired):
            _rabbitmqctl("delete_vhost", tag)


# --- configuration ----------------------------------------------------------------------------


def _authtoken(build: Build, user: str) -> str:
    auth = build.state["auth_url"]
    return f"""
[keystone_authtoken]
www_authenticate_uri = {auth}
auth_url = {auth}
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = {user}
password = {build.state["service_password"]}
region_name = {build.region}
"""


def _client_section(build: Build, section: str, user: str) -> str:
    """Credentials one service uses to call another (Nova to Neutron, Neutron to Nova, ...)."""
    return f"""
[{section}]
auth_type = password
auth_url = {build.state["auth_url"]}
project_domain_name = Default
user_domain_name = Default
project_name = service
username = {user}
password = {build.state["service_password"]}
region_name = {build.region}
valid_interfaces = internal,public
"""


def _transport(build: Build) -> str:
    return f"rabbit://{RABBIT}/{build.state['tag']}"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _configure(build: Build) -> dict[str, Path]:
    etc, data = build.dir / "etc", build.dir / "data"
    shipped = build.venv / "etc"
    for sub in ("placement", "nova", "neutron", "glance"):
        (data / sub).mkdir(parents=True, exist_ok=True)

    placement = _write(
        etc / "placement" / "placement.conf",
        f"""[DEFAULT]
use_stderr = true
[api]
auth_strategy = keystone
[placement_database]
connection = {db_url(build, "placement")}
"""
        + _authtoken(build, "placement"),
    )

    nova_dir = etc / "nova"
    nova_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(shipped / "nova" / "api-paste.ini", nova_dir / "api-paste.ini")
    nova = _write(
        nova_dir / "nova.conf",
        f"""[DEFAULT]
use_stderr = true
transport_url = {_transport(build)}
compute_driver = fake.FakeDriver
my_ip = 127.0.0.1
state_path = {data / "nova"}
instances_path = {data / "nova" / "instances"}
# oslo.service waits 60 s by default for a graceful stop; nothing here needs more than a few.
graceful_shutdown_timeout = 5
[api]
auth_strategy = keystone
[wsgi]
api_paste_config = {nova_dir / "api-paste.ini"}
[api_database]
connection = {db_url(build, "nova_api")}
[database]
connection = {db_url(build, "nova")}
[scheduler]
# The scheduler maps new compute hosts to cell1 on its own; the bring-up also asks once.
discover_hosts_in_cells_interval = 2
[oslo_concurrency]
lock_path = {data / "nova" / "lock"}
[oslo_messaging_notifications]
driver = noop
"""
        + _authtoken(build, "nova")
        + _client_section(build, "placement", "placement")
        + _client_section(build, "neutron", "neutron")
        + _client_section(build, "glance", "glance")
        + _client_section(build, "service_user", "nova").replace(
            "[service_user]", "[service_user]\nsend_service_user_token = true"
        ),
    )

    neutron_dir = etc / "neutron"
    neutron_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(shipped / "neutron" / "api-paste.ini", neutron_dir / "api-paste.ini")
    neutron = _write(
        neutron_dir / "neutron.conf",
        f"""[DEFAULT]
use_stderr = true
core_plugin = ml2
service_plugins = router
auth_strategy = keystone
transport_url = {_transport(build)}
api_paste_config = {neutron_dir / "api-paste.ini"}
state_path = {data / "neutron"}
notify_nova_on_port_status_changes = true
notify_nova_on_port_data_changes = true
[database]
connection = {db_url(build, "neutron")}
[oslo_concurrency]
lock_path = {data / "neutron" / "lock"}
[oslo_messaging_notifications]
driver = noop
"""
        + _authtoken(build, "neutron")
        + _client_section(build, "nova", "nova"),
    )
    ml2 = _write(
        neutron_dir / "ml2_conf.ini",
        """[ml2]
type_drivers = flat,vxlan
tenant_network_types = vxlan
# Binds every port: the cloud runs no agents (see tests/realcloud/bindall).
mechanism_drivers = codesquare_bindall
extension_drivers = port_security
[ml2_type_flat]
flat_networks = public
[ml2_type_vxlan]
vni_ranges = 1:1000
""",
    )

    glance_dir = etc / "glance"
    glance_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(shipped / "glance" / "glance-api-paste.ini", glance_dir / "glance-api-paste.ini")
    glance = _write(
        glance_dir / "glance-api.conf",
        f"""[DEFAULT]
use_stderr = true
enabled_backends = local:file
[database]
connection = sqlite:///{data / "glance" / "glance.db"}
[paste_deploy]
flavor = keystone
[glance_store]
default_backend = local
[local]
filesystem_store_datadir = {data / "glance" / "images"}
[os_glance_staging_store]
filesystem_store_datadir = {data / "glance" / "staging"}
[os_glance_tasks_store]
filesystem_store_datadir = {data / "glance" / "tasks"}
[oslo_concurrency]
lock_path = {data / "glance" / "lock"}
"""
        + _authtoken(build, "glance"),
    )
    return {"placement": placement, "nova": nova, "neutron": neutron, "ml2": ml2, "glance": glance}


# --- keystone registrations -------------------------------------------------------------------


def _register(build: Build, ports: dict[str, int]) -> None:
    """Service users (admin and service roles in project `service`), services and endpoints."""
    admin = Admin(build.state["auth_url"], build.admin_password)
    ks = admin.identity
    project = admin.find_or_create(
        ks("/projects"), "project", "service", {"name": "service", "domain_id": "default"}
    )
    roles = {
        name: admin.find_or_create(ks("/roles"), "role", name, {"name": name})["id"]
        for name in ("admin", "service")
    }
    for user in SERVICE_USERS:
        created = admin.find_or_create(
            ks("/users"),
            "user",
            user,
            {"name": user, "domain_id": "default", "password": build.state["service_password"]},
        )
        for role_id in roles.values():
            admin.call(
                "PUT", ks(f"/projects/{project['id']}/users/{created['id']}/roles/{role_id}")
            )
    catalog = {
        "placement": ("placement", f"http://127.0.0.1:{ports['placement']}"),
        "compute": ("nova", f"http://127.0.0.1:{ports['nova-api']}/v2.1"),
        "network": ("neutron", f"http://127.0.0.1:{ports['neutron']}"),
        "image": ("glance", f"http://127.0.0.1:{ports['glance']}"),
    }
    for kind, (name, url) in catalog.items():
        service = admin.find_or_create(
            ks("/services"), "service", name, {"name": name, "type": kind}, type=kind
        )
        for interface in ("public", "internal", "admin"):
            admin.call(
                "POST",
                ks("/endpoints"),
                json={
                    "endpoint": {
                        "service_id": service["id"],
                        "interface": interface,
                        "url": url,
                        "region_id": build.region,
                    }
                },
            )


# --- bring-up ---------------------------------------------------------------------------------


def _parallel(jobs: dict[str, Callable[[], object]]) -> None:
    """Run independent setup chains side by side; the first failure is raised."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {pool.submit(job): name for name, job in jobs.items()}
        for future in concurrent.futures.as_completed(futures):
            try:
                future.result()
            except Exception as err:
                raise RuntimeError(f"{futures[future]}: {err}") from err


def prepare(build: Build) -> None:
    """Databases and the message-bus vhost; before Keystone, which uses MariaDB here too."""
    tag = "rc" + secrets.token_hex(4)
    build.state["tag"] = tag
    build.state["service_password"] = secrets.token_urlsafe(18)
    build.save()
    with build.step("mariadb + rabbitmq ready"):
        ensure_backing()
        _sql("; ".join(f"CREATE DATABASE {tag}_{db} CHARACTER SET utf8" for db in DATABASES))
        _rabbitmqctl("add_vhost", tag)
        build.state["vhost_created"] = True
        _rabbitmqctl("set_permissions", "-p", tag, "guest", ".*", ".*", ".*")


def db_url(build: Build, name: str) -> str:
    return f"mysql+pymysql://root@{SQL_HOST}/{build.state['tag']}_{name}?charset=utf8"


def start(build: Build) -> None:
    """Everything after Keystone: registrations, migrations, the APIs, Nova's services."""
    ports = {name: build.port(name) for name in ("placement", "nova-api", "neutron", "glance")}
    conf = _configure(build)
    bin_ = build.venv / "bin"
    nova_manage = [str(bin_ / "nova-manage"), "--config-file", str(conf["nova"])]

    def nova_dbs() -> None:
        proc.run([*nova_manage, "api_db", "sync"])
        proc.run(
            [
                *nova_manage,
                "cell_v2",
                "map_cell0",
                "--database_connection",
                db_url(build, "nova_cell0"),
            ]
        )
        proc.run([*nova_manage, "cell_v2", "create_cell", "--name", "cell1"])
        proc.run([*nova_manage, "db", "sync"])

    with build.step("migrations + keystone registrations"):
        _parallel(
            {
                "keystone registrations": lambda: _register(build, ports),
                "placement db": lambda: proc.run(
                    [
                        str(bin_ / "placement-manage"),
                        "--config-file",
                        str(conf["placement"]),
                        "db",
                        "sync",
                    ]
                ),
                "nova dbs": nova_dbs,
                "neutron db": lambda: proc.run(
                    [
                        str(bin_ / "neutron-db-manage"),
                        "--config-file",
                        str(conf["neutron"]),
                        "--config-file",
                        str(conf["ml2"]),
                        "upgrade",
                        "heads",
                    ]
                ),
                "glance db": lambda: proc.run(
                    [str(bin_ / "glance-manage"), "--config-file", str(conf["glance"]), "db_sync"]
                ),
            }
        )

    etc = build.dir / "etc"
    with build.step("APIs serving"):
        apis = {
            "placement": (
                "placement.wsgi.api",
                {"OS_PLACEMENT_CONFIG_DIR": str(etc / "placement")},
            ),
            "neutron": (
                "neutron.wsgi.api",
                {
                    "OS_NEUTRON_CONFIG_DIR": str(etc / "neutron"),
                    "OS_NEUTRON_CONFIG_FILES": "neutron.conf;ml2_conf.ini",
                },
            ),
            "glance": ("glance.wsgi.api", {"OS_GLANCE_CONFIG_DIR": str(etc / "glance")}),
            "nova-api": (
                "nova.wsgi.osapi_compute",
                {"OS_NOVA_CONFIG_DIR": str(etc / "nova")},
            ),
        }
        _parallel(
            {
                name: functools.partial(
                    build.serve_wsgi,
                    name,
                    module,
                    ports[name],
                    env,
                    health=f"http://127.0.0.1:{ports[name]}/",
                )
                for name, (module, env) in apis.items()
            }
        )
        build.state["endpoints"] = {
            name: f"http://127.0.0.1:{port}" for name, port in ports.items()
        }

    with build.step("nova services started"):
        for binary in ("nova-conductor", "nova-scheduler"):
            build.spawn(binary, [str(bin_ / binary), "--config-file", str(conf["nova"])], {})
        for index, host in enumerate(COMPUTE_HOSTS, start=1):
            # A later --config-file overrides an earlier one: same nova.conf, its own host name.
            own = _write(
                build.dir / "etc" / "nova" / f"compute{index}.conf", f"[DEFAULT]\nhost = {host}\n"
            )
            argv = [
                str(bin_ / "nova-compute"),
                "--config-file",
                str(conf["nova"]),
                "--config-file",
                str(own),
            ]
            build.spawn(f"nova-compute{index}", argv, {})


def wait_for_compute_hosts(build: Build, admin: Admin, timeout: float = 180) -> None:
    """Wait until every compute host is mapped to cell1 and has a resource provider.

    Until both are true the scheduler finds no host and a boot ends in ERROR ("No valid host").
    """
    tag = build.state["tag"]  # made by start() from hex digits: safe inside SQL
    nova_manage = [
        str(build.venv / "bin" / "nova-manage"),
        "--config-file",
        str(build.dir / "etc" / "nova" / "nova.conf"),
    ]
    placement = build.state["endpoints"]["placement"]
    wanted = set(COMPUTE_HOSTS)
    deadline = time.monotonic() + timeout
    asked: set[str] = set()
    while time.monotonic() < deadline:
        mapped = set(_sql(f"SELECT host FROM {tag}_nova_api.host_mappings").split())  # noqa: S608
        providers = {
            p["name"]
            for p in admin.call("GET", f"{placement}/resource_providers").json()[
                "resource_providers"
            ]
        }
        if wanted <= mapped and wanted <= providers:
            return
        registered = set(
            _sql(
                f"SELECT host FROM {tag}_nova.services WHERE `binary` = 'nova-compute'"  # noqa: S608
            ).split()
        )
        if registered - asked - mapped:
            # The scheduler's periodic discovery would map them too; asking saves seconds.
            proc.run([*nova_manage, "cell_v2", "discover_hosts"])
            asked |= registered
        for item in build.state["procs"]:
            started = proc.Proc.from_json(item)
            if started.name.startswith("nova-") and not started.running():
                raise RuntimeError(f"{started.name} died:\n{proc.log_tail(started)}")
        time.sleep(1)
    raise RuntimeError(f"compute hosts {sorted(wanted)} were not all discovered in {timeout:.0f}s")
