"""Bring the real cloud up, report on it, and take it down again.

Everything a bring-up makes is recorded in DIR/state.json as soon as it exists (processes with
their start times, databases, the RabbitMQ vhost), so `down` can undo a bring-up that failed
half-way, or one made by another process, and touches nothing else.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.realcloud import fixtures, installer, keystone, proc, services

MODES = ("keystone", "full")
CLOUD_NAMES = {"keystone": "realkeystone", "full": "realcloud"}
SERVICES = {
    "keystone": frozenset({"identity"}),
    "full": frozenset({"identity", "compute", "network", "image", "placement"}),
}
SHIM_DIR = Path(__file__).resolve().parent / "venvside"


@dataclass(frozen=True)
class RunningCloud:
    """What a test needs to talk to a cloud that `up` started."""

    dir: Path
    mode: str
    cloud_name: str
    clouds_yaml: Path
    auth_url: str
    admin_password: str
    region: str
    services: frozenset[str]
    timings: dict[str, float]


class Build:
    """The bring-up in progress: allocates ports, starts processes and records them."""

    def __init__(self, cloud_dir: Path, mode: str, venv: Path) -> None:
        self.dir = cloud_dir
        self.mode = mode
        self.venv = venv
        self.region = "RegionOne"
        self.admin_password = secrets.token_urlsafe(18)
        self.state: dict[str, Any] = {
            "mode": mode,
            "region": self.region,
            "admin_password": self.admin_password,
            "venv": str(venv),
            "ports": {},
            "health": {},
            "procs": [],
            "timings": {},
        }
        # Services are started from several threads at once; each records itself here.
        self._lock = threading.RLock()

    def save(self) -> None:
        with self._lock:
            target = self.dir / "state.json"
            scratch = target.with_suffix(".tmp")
            scratch.write_text(json.dumps(self.state, indent=2))
            scratch.replace(target)

    def port(self, name: str) -> int:
        number = proc.free_port()
        self.state["ports"][name] = number
        return number

    @contextlib.contextmanager
    def step(self, label: str) -> Iterator[None]:
        begun = time.monotonic()
        yield
        self.state["timings"][label] = round(time.monotonic() - begun, 2)
        self.save()

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> proc.Proc:
        full_env = {
            "PATH": f"{self.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.dir),
            "LANG": "C.UTF-8",
            **env,
        }
        with self._lock:
            started = proc.spawn(name, argv, env=full_env, cwd=self.dir, log_dir=self.dir / "log")
            self.state["procs"].append(started.to_json())
            self.save()
        return started

    def serve_wsgi(
        self,
        name: str,
        module: str,
        port: int,
        env: dict[str, str],
        *,
        health: str,
        workers: int = 2,
    ) -> proc.Proc:
        argv = [
            str(self.venv / "bin" / "gunicorn"),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--timeout",
            "180",
            "--graceful-timeout",
            "5",
            # gunicorn 27 puts every server's control socket at one default path; the servers
            # would fight over it, and nothing here uses it.
            "--no-control-socket",
            "--pythonpath",
            str(SHIM_DIR),
            "--name",
            f"realcloud-{name}",
            "wsgi_shim:application",
        ]
        started = self.spawn(name, argv, {**env, "REALCLOUD_WSGI_MODULE": module})
        with self._lock:
            self.state["health"][name] = health
            self.save()
        proc.wait_http(health, started)
        return started


def _state(cloud_dir: Path) -> dict[str, Any] | None:
    path = cloud_dir / "state.json"
    if not path.is_file():
        return None
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def _procs(state: dict[str, Any]) -> list[proc.Proc]:
    return [proc.Proc.from_json(item) for item in state.get("procs", [])]


def write_clouds_yaml(cloud_dir: Path, state: dict[str, Any]) -> Path:
    name = CLOUD_NAMES[state["mode"]]
    entry = {
        "auth": {
            "auth_url": state["auth_url"],
            "username": "admin",
            "password": state["admin_password"],
            "project_name": "admin",
            "user_domain_name": "Default",
            "project_domain_name": "Default",
        },
        "region_name": state["region"],
        "interface": "public",
        "identity_api_version": 3,
    }
    path = cloud_dir / "clouds.yaml"
    path.write_text(yaml.safe_dump({"clouds": {name: entry}}, sort_keys=False))
    return path


def load(cloud_dir: Path) -> RunningCloud:
    """The cloud recorded in `cloud_dir`, if `up` finished there; raises otherwise."""
    state = _state(cloud_dir)
    if state is None or not state.get("ready"):
        raise RuntimeError(f"no real cloud was brought up in {cloud_dir}")
    return RunningCloud(
        dir=cloud_dir,
        mode=state["mode"],
        cloud_name=CLOUD_NAMES[state["mode"]],
        clouds_yaml=cloud_dir / "clouds.yaml",
        auth_url=state["auth_url"],
        admin_password=state["admin_password"],
        region=state["region"],
        services=SERVICES[state["mode"]],
        timings=dict(state["timings"]),
    )


def up(cloud_dir: Path, mode: str) -> RunningCloud:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    cloud_dir = cloud_dir.resolve()
    cloud_dir.mkdir(parents=True, exist_ok=True)
    previous = _state(cloud_dir)
    if previous is not None:
        if any(p.running() for p in _procs(previous)):
            raise RuntimeError(f"a real cloud is already up in {cloud_dir}; run `down` first")
        down(cloud_dir)  # leftovers of a run that died: databases, vhost, files
    begun = time.monotonic()
    venv, install_seconds = installer.ensure_venv(mode, log=cloud_dir / "log" / "pip.log")
    build = Build(cloud_dir, mode, venv)
    build.state["timings"]["install"] = round(install_seconds, 2)
    build.save()
    try:
        if mode == "full":
            services.prepare(build)
        keystone.start(build)
        if mode == "full":
            services.start(build)
        with build.step("fixtures"):
            fixtures.create(build)
        build.state["timings"]["up_total"] = round(time.monotonic() - begun, 2)
        build.state["ready"] = True
        build.save()
        write_clouds_yaml(cloud_dir, build.state)
    except BaseException:
        down(cloud_dir)
        raise
    return load(cloud_dir)


def down(cloud_dir: Path) -> float:
    """Stop every process `up` started and drop what it created; returns the seconds taken."""
    begun = time.monotonic()
    cloud_dir = cloud_dir.resolve()
    state = _state(cloud_dir)
    if state is None:
        return 0.0
    proc.stop_all(_procs(state))
    if state.get("mode") == "full":
        services.drop_backing(state)
    for sub in ("etc", "data", "clouds.yaml", "state.json"):
        path = cloud_dir / sub
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    return time.monotonic() - begun


def status(cloud_dir: Path) -> tuple[bool, list[str]]:
    """Whether every recorded process runs and every API answers, with one line per item."""
    state = _state(cloud_dir.resolve())
    if state is None:
        return False, [f"nothing recorded in {cloud_dir}"]
    lines = [f"mode {state['mode']}, ready {bool(state.get('ready'))}"]
    healthy = bool(state.get("ready"))
    for item in _procs(state):
        running = item.running()
        healthy = healthy and running
        lines.append(f"  {item.name:<16} pid {item.pid:<8} {'running' if running else 'GONE'}")
    for name, url in state.get("health", {}).items():
        code = proc.http_status(url)
        answered = code is not None and code < 500
        healthy = healthy and answered
        lines.append(f"  {name:<16} {url} -> {code if code is not None else 'no answer'}")
    return healthy, lines
