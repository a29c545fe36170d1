"""The services speak the client's typed statuses and read each setting's one default."""

import ast
from pathlib import Path

from django.conf import settings

from portal.models import SERVER_STATUS_CHOICES, Instance
from portal.openstack.types import ServerStatus, VmState
from portal.services import engine

SERVICES = Path(__file__).resolve().parents[2] / "portal" / "services"
RAW = {s.value for s in ServerStatus} | {v.value for v in VmState}


def _string_constants(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_no_service_compares_novas_raw_status_strings() -> None:
    found = [
        f"{path.name}:{line} {value!r}"
        for path in sorted(SERVICES.glob("*.py"))
        for line, value in _string_constants(path)
        if value in RAW
    ]
    assert found == []


def test_the_mirrors_status_takes_its_choices_from_the_clients_enum() -> None:
    field = Instance._meta.get_field("status")
    assert field.choices == SERVER_STATUS_CHOICES
    assert {value for value, _ in SERVER_STATUS_CHOICES} == {s.value for s in ServerStatus}


def test_the_engine_has_no_defaults_of_its_own_for_settings() -> None:
    source = (SERVICES / "engine.py").read_text() + (SERVICES / "scheduler.py").read_text()
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
