"""Start a devcloud for a test or benchmark, and drive its control endpoint.

    running = start_devcloud(tmp_path, build_seconds=0.05)
    try:
        running.faults.add(method="POST", path="/compute/v2.1/servers$", status=503, count=1)
        ...
        calls = [r for r in running.faults.requests() if r["service"] == "compute"]
    finally:
        running.stop()

Request log entries (one per HTTP request to /identity, /compute, /networking, /image or
/placement; control calls are not logged) are dicts with:

- ``seq``: increasing number; ``time``: when it arrived (epoch seconds)
- ``service``: "identity" | "compute" | "network" | "image" | "placement"
- ``method``: "GET", "POST", ...
- ``path``: the path below the service prefix, e.g. "/v2.1/servers/detail" for
  "/compute/v2.1/servers/detail", "/v2.0/ports" for "/networking/v2.0/ports", "/v3/users"
  for "/identity/v3/users", and "/" for the service root (version discovery)
- ``full_path``: the path as requested; ``query``: the raw query string ("" if none)
- ``status``: the status the client received, or None if an injected fault dropped the
  connection or let it time out
- ``request_id``, ``project_id`` and ``user_id`` of the token (None when there was no valid token),
  and ``fault_id`` if an injected fault matched
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DevcloudError(RuntimeError):
    """A control call failed, or devcloud did not start."""


class FaultControl:
    """Client of the admin-only /_devcloud control endpoint, authenticated as the admin."""

    def __init__(self, url: str, admin_password: str) -> None:
        self._url = url
        self._password = admin_password
        self._token: str | None = None

    def _authenticate(self) -> str:
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": "admin",
                            "domain": {"id": "default"},
                            "password": self._password,
                        }
                    },
                },
                "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
            }
        }
        request = urllib.request.Request(
            f"{self._url}/identity/v3/auth/tokens?nocatalog",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return str(response.headers["X-Subject-Token"])

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        for attempt in (1, 2):
            if self._token is None:
                self._token = self._authenticate()
            data = None if body is None else json.dumps(body).encode()
            request = urllib.request.Request(
                f"{self._url}/_devcloud{path}",
                data=data,
                headers={"X-Auth-Token": self._token, "Content-Type": "application/json"},
                method=method,
            )
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    raw = response.read()
                    return json.loads(raw) if raw else None
            except urllib.error.HTTPError as exc:
                # Our own token dies with revoke_tokens() or --token-ttl: log in again once.
                if exc.code == 401 and attempt == 1:
                    self._token = None
                    continue
                detail = exc.read().decode(errors="replace")
                raise DevcloudError(f"{method} /_devcloud{path}: {exc.code} {detail}") from exc
        raise DevcloudError(f"{method} /_devcloud{path}: unauthorized")

    def add(
        self,
        *,
        method: str = "*",
        path: str = ".*",
        status: int | None = 503,
        fraction: float = 1.0,
        count: int | None = None,
        latency: float = 0.0,
        action: str = "error",
        message: str | None = None,
        after: bool = False,
        defer: float = 0.0,
        skip: int = 0,
    ) -> str:
        """Add a fault rule; returns its id.

        `path` is a regular expression searched in the full request path, e.g.
        r"^/compute/v2.1/servers$". `action` is "error" (answer `status`; None means latency
        only), "drop" (close the connection unanswered) or "timeout" (hold the request, then
        close it). `count` limits the rule to the next N matching calls; `fraction` makes it
        hit that share of them; `after=True` carries the request out before failing it, and
        `defer` (with `after`) carries it out that many seconds after the client's answer;
        `skip` lets the first N matching calls through untouched.
        """
        payload = {
            "method": method,
            "path": path,
            "status": status,
            "fraction": fraction,
            "count": count,
            "latency": latency,
            "action": action,
            "message": message,
            "after": after,
            "defer": defer,
            "skip": skip,
        }
        return str(self._call("POST", "/faults", payload)["fault"]["id"])

    def remove(self, fault_id: str) -> None:
        self._call("DELETE", f"/faults/{fault_id}")

    def list_faults(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/faults")["faults"])

    def fail_builds(
        self, count: int = 1, message: str = "Build of instance aborted: devcloud injected failure"
    ) -> str:
        """The next `count` servers created end in ERROR with this fault message."""
        self._call("POST", "/build-failures", {"count": count, "message": message})
        return message

    def settings(self, **changes: Any) -> dict[str, Any]:
        """Change devcloud settings at run time (``reclaim_instance_interval``); all of them."""
        if changes:
            return dict(self._call("PATCH", "/settings", changes)["settings"])
        return dict(self._call("GET", "/settings")["settings"])

    def password_rule(self, regex: str | None, description: str | None = None) -> None:
        """Keystone's ``[security_compliance] password_regex`` (None: no rule, the default)."""
        self._call(
            "PUT",
            "/security-compliance",
            {"password_regex": regex, "password_regex_description": description},
        )

    def revoke_tokens(self) -> None:
        self._call("POST", "/revoke-tokens", {})

    def secrets(self) -> set[str]:
        """Every password, application credential secret and token the cloud has seen."""
        return set(self._call("GET", "/secrets")["secrets"])

    def reset(self) -> None:
        """Remove every fault and pending build failure, and put the settings back."""
        self._call("DELETE", "/faults")
        self._call("PATCH", "/settings", {"reclaim_instance_interval": 0})

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/requests?since={since}")["requests"])

    def clear_requests(self) -> None:
        self._call("DELETE", "/requests")

    def bulk_servers(self, *, project_id: str, count: int, **options: Any) -> list[str]:
        """Create `count` ACTIVE servers with ports in one call (see devcloud.control)."""
        body = {"project_id": project_id, "count": count, **options}
        return list(self._call("POST", "/bulk-servers", body)["servers"])


@dataclass
class RunningDevcloud:
    url: str
    auth_url: str
    data_dir: Path
    clouds_yaml: Path
    admin_password: str
    faults: FaultControl
    process: subprocess.Popen[bytes] = field(repr=False)
    log_path: Path = field(repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)

    def stop(self) -> None:
        """SIGTERM, wait for a clean exit (SIGKILL after 10 s); no process is left behind."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/identity/v3", timeout=1) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def start_devcloud(
    data_dir: Path,
    *,
    port: int | None = None,
    build_seconds: float = 0.2,
    token_ttl: int = 3600,
    admin_password: str = "devcloud-admin",
    reset: bool = False,
    extra_args: Sequence[str] = (),
) -> RunningDevcloud:
    """Start `python -m devcloud` on a free loopback port and wait until it answers."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    last_error = ""
    for _attempt in range(3):
        chosen = port or _free_port()
        url = f"http://127.0.0.1:{chosen}"
        argv = [
            sys.executable, "-m", "devcloud",
            "--host", "127.0.0.1",
            "--port", str(chosen),
            "--data-dir", str(data_dir),
            "--admin-password", admin_password,
            "--build-seconds", str(build_seconds),
            "--token-ttl", str(token_ttl),
            *(["--reset"] if reset else []),
            *extra_args,
        ]  # fmt: skip
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        log_path = data_dir / "devcloud.log"
        log = log_path.open("ab")
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and process.poll() is None:
            if (data_dir / "clouds.yaml").exists() and _answers(url):
                return RunningDevcloud(
                    url=url,
                    auth_url=f"{url}/identity/v3",
                    data_dir=data_dir,
                    clouds_yaml=data_dir / "clouds.yaml",
                    admin_password=admin_password,
                    faults=FaultControl(url, admin_password),
                    process=process,
                    log_path=log_path,
                    _log=log,
                )
            time.sleep(0.05)
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        log.close()
        last_error = log_path.read_text(errors="replace")[-2000:]
        reset = False  # never wipe state twice
        if port is not None:
            break
    raise DevcloudError(f"devcloud did not start:\n{last_error}")
