"""The services speak the client's typed statuses and read each setting's one default."""

import ast
from pathlib import Path

from django.conf import settings

from portal.models import SERVER_STATUS_CHOICES, Instance
from portal.openstack.types import ServerStatus, VmState
from portal.operations import engine

SERVICES = Path(__file__).resolve().parents[2] / "portal" / "services"
OPERATIONS = SERVICES.parent / "operations"
UPPER = {s.value for s in ServerStatus}
LOWER = {v.value for v in VmState}
FIELDS = {"status", "vm_state"}


def _raw_status_literals(path: Path) -> list[tuple[int, str]]:
    """String literals naming a Nova status or VM state where a service compares or filters.

    Nova's upper-case statuses are flagged anywhere; the lower-case VM states only in a
    comparison or a ``status=``/``vm_state=`` argument (``"error"`` is also a common word).
    """
    tree = ast.parse(path.read_text())
    found: list[tuple[int, str]] = []

    def constants(node: ast.AST) -> list[ast.Constant]:
        return [
            n for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
        ]

    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value in UPPER:
            found.append((node.lineno, str(node.value)))
        elif isinstance(node, ast.Compare):
            found += [(c.lineno, str(c.value)) for c in constants(node) if c.value in LOWER]
        elif isinstance(node, ast.keyword) and node.arg and node.arg.split("__")[0] in FIELDS:
            found += [(c.lineno, str(c.value)) for c in constants(node.value) if c.value in LOWER]
    return found


def test_no_service_compares_novas_raw_status_strings() -> None:
    found = [
        f"{path.name}:{line} {value!r}"
        for path in sorted([*SERVICES.glob("*.py"), *OPERATIONS.glob("*.py")])
        for line, value in _raw_status_literals(path)
    ]
    assert found == []


def test_the_mirrors_status_takes_its_choices_from_the_clients_enum() -> None:
    field = Instance._meta.get_field("status")
    assert field.choices == SERVER_STATUS_CHOICES
    assert {value for value, _ in SERVER_STATUS_CHOICES} == {s.value for s in ServerStatus}


def test_the_engine_has_no_defaults_of_its_own_for_settings() -> None:
    source = (OPERATIONS / "engine.py").read_text() + (SERVICES / "scheduler.py").read_text()
    calls = [
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setting"
    ]
    assert calls
    for call in calls:
        assert len(call.args) == 1, ast.unparse(call)
        assert not call.keywords, ast.unparse(call)
        (name,) = call.args
        if isinstance(name, ast.Constant):
            assert hasattr(settings, str(name.value)), name.value
    assert engine.setting("OPERATION_LEASE_SECONDS") == settings.OPERATION_LEASE_SECONDS
