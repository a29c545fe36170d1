"""The real cloud's own virtualenv: built once, pinned by constraints.txt, reused after that.

It is not the project's .venv: OpenStack's services pin their own SQLAlchemy, eventlet and
oslo.* releases, which must not meet the portal's dependencies.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CONSTRAINTS = HERE / "constraints.txt"
BINDALL = HERE / "bindall"

# What each mode installs. The full set includes the keystone set, so a venv built for `full`
# serves `keystone` too.
PACKAGES: dict[str, list[str]] = {
    "keystone": ["keystone", "gunicorn"],
    "full": [
        "keystone",
        "gunicorn",
        "openstack-placement",
        "nova",
        "neutron",
        "glance",
        "PyMySQL",
        "codesquare-realcloud-bindall",  # from BINDALL, see _bindall_sources()
    ],
}

# The OpenStack releases pinned in constraints.txt list 3.10-3.13 as tested; 3.12 is what they
# were measured with here, 3.13 the fallback.
_PYTHON_CANDIDATES = ("3.12", "3.13")


def venv_dir() -> Path:
    return Path(os.environ.get("CODESQUARE_REALCLOUD_VENV", ROOT / ".realcloud" / "venv"))


def find_python() -> str:
    chosen = os.environ.get("CODESQUARE_REALCLOUD_PYTHON")
    if chosen:
        return chosen
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    for version in _PYTHON_CANDIDATES:
        for candidate in sorted((pyenv_root / "versions").glob(f"{version}.*"), reverse=True):
            exe = candidate / "bin" / "python3"
            if exe.is_file():
                return str(exe)
        found = shutil.which(f"python{version}")
        if found:
            return found
    raise RuntimeError(
        "the real cloud needs Python 3.12 or 3.13 (set CODESQUARE_REALCLOUD_PYTHON to one)"
    )


def _bindall_sources() -> list[Path]:
    return [BINDALL / "pyproject.toml", *sorted((BINDALL / "codesquare_bindall").glob("*.py"))]


def _fingerprint(mode: str, python: str) -> str:
    digest = hashlib.sha256()
    digest.update(CONSTRAINTS.read_bytes())
    digest.update(python.encode())
    digest.update("\n".join(PACKAGES[mode]).encode())
    if mode == "full":
        for path in _bindall_sources():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _installed(venv: Path, mode: str) -> bool:
    """Whether the venv's stamp says ``mode`` is installed with today's pins (no lock taken:
    the stamp is written only after an install completed)."""
    try:
        stamps = json.loads((venv / ".realcloud-installed.json").read_text())
        python = find_python()
    except (OSError, ValueError, RuntimeError):
        return False
    return stamps.get(mode) == _fingerprint(mode, python) or (
        mode == "keystone" and stamps.get("full") == _fingerprint("full", python)
    )


def ensure_venv(mode: str, *, log: Path) -> tuple[Path, float]:
    """Make sure the venv holds what `mode` needs; returns its path and the seconds spent."""
    venv = venv_dir()
    venv.parent.mkdir(parents=True, exist_ok=True)
    begun = time.monotonic()
    # Already there: no need to wait for the lock, which an install of the full set (CI starts
    # one in the background) may hold for minutes.
    if _installed(venv, mode):
        return venv, time.monotonic() - begun
    # Two test sessions may ask at once: the second waits for the first's install.
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        python = find_python()
        stamp_file = venv / ".realcloud-installed.json"
        stamps: dict[str, str] = {}
        if stamp_file.is_file():
            stamps = json.loads(stamp_file.read_text())
        wanted = {m: _fingerprint(m, python) for m in ("keystone", "full")}
        # A full install also satisfies keystone mode.
        if stamps.get(mode) == wanted[mode] or (
            mode == "keystone" and stamps.get("full") == wanted["full"]
        ):
            return venv, time.monotonic() - begun
        if not (venv / "bin" / "python").is_file():
            subprocess.run([python, "-m", "venv", str(venv)], check=True)
        pip = [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-c",
            str(CONSTRAINTS),
        ]
        log.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as scratch, open(log, "ab") as out:
            wanted_packages = list(PACKAGES[mode])
            if "codesquare-realcloud-bindall" in wanted_packages:
                # Built from a copy: a build in place would leave build/ and *.egg-info in the
                # project's tree.
                copy = Path(scratch) / "bindall"
                for source in _bindall_sources():
                    target = copy / source.relative_to(BINDALL)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(source, target)
                wanted_packages[wanted_packages.index("codesquare-realcloud-bindall")] = str(copy)
            done = subprocess.run(
                [*pip, *wanted_packages], stdout=out, stderr=subprocess.STDOUT, check=False
            )
        if done.returncode != 0:
            raise RuntimeError(f"pip install for the real cloud failed; see {log}")
        stamps[mode] = wanted[mode]
        stamp_file.write_text(json.dumps(stamps))
        return venv, time.monotonic() - begun
