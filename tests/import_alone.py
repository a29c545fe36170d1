"""Import each module named on the command line first, in a fresh child interpreter of its own.

Run by ``tests/unit/test_layering.py``. The parent loads Django (none of the portal), then forks
one child per module. The child lets Django load the apps and models, imports the module before
any app's ``ready()`` runs (so before the portal's wiring imports the rest), and exits: the module
is imported alone, in a fresh interpreter, with nothing of the portal but its models loaded.
Prints a JSON object: module -> error, for the ones that failed.
"""

import importlib
import json
import os
import sys
from collections.abc import Iterable

import django
from django.apps import AppConfig, apps
from django.conf import settings

# Third-party code every child needs, loaded once before forking (no portal module).
for _name in ("django.contrib.admin", "django.db.models", "django.forms", "requests"):
    importlib.import_module(_name)
assert not any(m == "portal" or m.startswith("portal.") for m in sys.modules), "portal preloaded"
settings.INSTALLED_APPS  # noqa: B018 (reads the settings module once, before forking)


def _child(module: str) -> str:
    get_app_configs = apps.get_app_configs

    def before_ready() -> Iterable[AppConfig]:
        # Phase three of apps.populate() asks for the configs to call their ready(): the models
        # are loaded and no ready() has run yet.
        if apps.models_ready:
            importlib.import_module(module)
            raise SystemExit(0)
        return get_app_configs()

    apps.get_app_configs = before_ready  # type: ignore[method-assign]
    try:
        django.setup()
    except SystemExit:
        return ""
    except BaseException as exc:
        return f"{type(exc).__name__}: {exc}"
    return "django.setup() finished without reaching the apps' ready()"


def main(modules: list[str]) -> dict[str, str]:
    failed: dict[str, str] = {}
    for module in modules:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            os.write(write, _child(module).encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as answer:
            error = answer.read().decode()
        _, status = os.waitpid(pid, 0)
        if error or status:
            failed[module] = error or f"child exited with status {status}"
    return failed


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
