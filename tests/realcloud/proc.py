"""Starting, finding and stopping the real cloud's processes.

Every service runs in a session (process group) of its own, so stopping it stops its workers
too. A process is identified by its pid *and* its start time as the kernel reports it: a pid
recorded by an earlier `up` may have been reused by an unrelated process since, and that one
must never be signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses; the rest follows the last ")".
    return raw[raw.rindex(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if it is gone."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def _alive_in_group(pgid: int) -> list[int]:
    """Pids of the group's processes that have not exited (zombies do not count)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields and int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


@dataclass(frozen=True)
class Proc:
    name: str
    pid: int
    started: int  # kernel start time of pid, to tell it from a later process with the same pid
    log: str

    def is_ours(self) -> bool:
        return start_time(self.pid) == self.started

    def running(self) -> bool:
        fields = _stat_fields(self.pid)
        return self.is_ours() and fields is not None and fields[0] != "Z"

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "pid": self.pid, "started": self.started, "log": self.log}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Proc:
        return cls(
            name=str(data["name"]),
            pid=int(str(data["pid"])),
            started=int(str(data["started"])),
            log=str(data["log"]),
        )


def spawn(
    name: str, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, log_dir: Path
) -> Proc:
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    with open(log, "ab") as out:
        popen = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started = start_time(popen.pid)
    if started is None:
        popen.wait()
        raise RuntimeError(f"{name} exited at once; see {log}")
    # The Popen object is dropped: `down` may run in another process, so it works from the pid.
    # Popen's __del__ would warn about a child still running; keep it from being collected.
    _CHILDREN.append(popen)
    return Proc(name=name, pid=popen.pid, started=started, log=str(log))


_CHILDREN: list[subprocess.Popen[bytes]] = []


def _reap() -> None:
    for child in list(_CHILDREN):
        if child.poll() is not None:
            _CHILDREN.remove(child)


def stop_all(procs: Sequence[Proc], *, grace: float = 10.0) -> None:
    """Stop the processes and their whole groups: SIGTERM to all, SIGKILL after `grace` s.

    All at once, since each may spend seconds on a graceful shutdown and they do not depend on
    each other once the cloud is going away.
    """
    groups = {p.pid: p for p in procs if p.is_ours()}  # start_new_session: pid == group id
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap()
            groups = {pgid: p for pgid, p in groups.items() if _alive_in_group(pgid)}
            if not groups:
                return
            time.sleep(0.1)
    names = ", ".join(f"{p.name} (pid {p.pid})" for p in groups.values())
    raise RuntimeError(f"survived SIGKILL: {names}")


def log_tail(proc: Proc, lines: int = 30) -> str:
    try:
        text = Path(proc.log).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def http_status(url: str, *, timeout: float = 5.0) -> int | None:
    """The HTTP status a GET of `url` answers, or None if nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except (OSError, ValueError):
        return None


def wait_http(url: str, proc: Proc, *, timeout: float = 90.0) -> None:
    """Wait until `url` answers any HTTP status below 500; fail early if `proc` dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = http_status(url, timeout=2.0)
        if status is not None and status < 500:
            return
        if not proc.running():
            raise RuntimeError(f"{proc.name} died while starting:\n{log_tail(proc)}")
        time.sleep(0.2)
    raise RuntimeError(f"{proc.name} did not answer {url} within {timeout:.0f}s:\n{log_tail(proc)}")


def run(argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 300) -> str:
    """Run a setup command to completion; its output is returned, or raised with the error."""
    done = subprocess.run(
        list(argv),
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv[:3])} … failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    return done.stdout
