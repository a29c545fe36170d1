"""The portal's modules import each other in one direction, with no cycle anywhere.

The layers, bottom up (a module may import only from its own layer's rules and below):

- ``portal.openstack``: the cloud's HTTP API; imports nothing else from ``portal``.
- ``portal.models``, ``portal.status``, ``portal.errors``, ... : the portal's data and rules.
- ``portal.operations`` (engine, registry, errors, kinds): runs operations; never imports a use-case
  (``portal.services``), an interface or a kind module.
- ``portal.services``: the use-cases; never import an interface (admin, self-service, views,
  sites, tasks, management commands) nor a kind module.
- the kind modules (``portal.operations.<kind>``): declare a kind with the step functions of its
  workflow in ``portal.services``; only the registry loads them, from ``KIND_MODULES``.
- the interfaces: ``portal.admin``, ``portal.selfservice``, views, ``portal.tasks``, commands.

The graph is read from the source (imports at module level and inside functions alike), so a
cycle hidden behind a function-level import is still a cycle here; imports under
``if TYPE_CHECKING:`` never run and are left out. Edges go to the module an
import names (``from portal.services import drift`` is an edge to ``portal.services.drift``).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from portal.models import Operation
from portal.operations import registry
from portal.operations.engine import SYNCHRONOUS_KINDS
from portal.operations.kinds import KIND_MODULES
from tests.conftest import clean_env
from tests.testenv import TEST_ENV

ROOT = Path(__file__).resolve().parents[2]
PORTAL = ROOT / "portal"

Graph = dict[str, set[str]]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def portal_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PORTAL.rglob("*.py"))}


def _imported(node: ast.AST, modules: Iterable[str]) -> set[str]:
    """The portal modules one import statement names."""
    known = set(modules)
    found: set[str] = set()
    if isinstance(node, ast.Import):
        for alias in node.names:
            name = alias.name
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        for alias in node.names:
            if f"{node.module}.{alias.name}" in known:
                found.add(f"{node.module}.{alias.name}")
            elif node.module in known:
                found.add(node.module)
    return found


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node but those under ``if TYPE_CHECKING:`` (imports for annotations never run)."""
    found: list[ast.AST] = []
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        found.append(node)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                pending.extend(child.orelse)
                continue
            pending.append(child)
    return found


def import_graph(sources: dict[str, str]) -> Graph:
    """Module → the portal modules it imports anywhere in its body (functions included)."""
    graph: Graph = {}
    for name, text in sources.items():
        edges: set[str] = set()
        for node in _runtime_nodes(ast.parse(text)):
            edges |= _imported(node, sources)
        edges.discard(name)
        graph[name] = edges
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph) + 100))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def portal_graph() -> Graph:
    return import_graph({name: path.read_text() for name, path in portal_modules().items()})


def _under(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


INTERFACES = (
    "portal.admin",
    "portal.selfservice",
    "portal.views",
    "portal.sites",
    "portal.tasks",
    "portal.management",
    "portal.apps",
)
ENGINE = (
    "portal.operations",
    "portal.operations.engine",
    "portal.operations.registry",
    "portal.operations.errors",
    "portal.operations.kinds",
)


def layering_violations(graph: Graph) -> list[str]:
    kinds = set(KIND_MODULES)
    broken: list[str] = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            rule = ""
            if _under(module, "portal.openstack") and not _under(target, "portal.openstack"):
                rule = "portal.openstack imports nothing else from portal"
            elif module in ENGINE and (
                _under(target, "portal.services", *INTERFACES) or target in kinds
            ):
                rule = "the engine imports no use-case, interface or kind module"
            elif _under(module, "portal.services") and (
                _under(target, *INTERFACES) or target in kinds
            ):
                rule = "a service imports no interface and no kind module"
            elif module == "portal.models" and _under(
                target, "portal.services", "portal.operations", *INTERFACES
            ):
                rule = "the models import no use-case, engine or interface"
            elif target in kinds:
                rule = "only the registry loads a kind module (from KIND_MODULES)"
            if rule:
                broken.append(f"{module} -> {target}: {rule}")
    return broken


# --- the rules hold --------------------------------------------------------------------------


def test_no_import_cycle_anywhere_in_the_portal() -> None:
    assert cycles(portal_graph()) == []


def test_every_import_follows_the_layers() -> None:
    assert layering_violations(portal_graph()) == []


def private_imports(sources: dict[str, str]) -> list[str]:
    """``from portal.x import _y`` anywhere: a module's private names are its own."""
    found: list[str] = []
    for name, text in sorted(sources.items()):
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("portal"):
                found += [
                    f"{name}: from {node.module} import {alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_")
                ]
    return found


def test_no_module_imports_another_modules_private_names() -> None:
    sources = {name: path.read_text() for name, path in portal_modules().items()}
    assert private_imports(sources) == []
    assert private_imports({"portal.a": "def f():\n    from portal.b import _c\n"}) == [
        "portal.a: from portal.b import _c"
    ]


def test_every_kind_module_is_listed_and_every_queued_kind_is_declared() -> None:
    declaring = {
        name
        for name, path in portal_modules().items()
        if _under(name, "portal.operations") and "\nKIND = OperationKind(" in path.read_text()
    }
    assert declaring == set(KIND_MODULES)
    declared = {kind.kind for kind in registry.declared_kinds()}
    # An SSH key import is recorded as an operation but done in the request, like a password.
    done_in_the_request = {*SYNCHRONOUS_KINDS, Operation.Kind.SSH_KEY}
    assert declared.isdisjoint(done_in_the_request)
    assert declared | done_in_the_request == set(Operation.Kind)


def _import_each_alone(modules: list[str]) -> dict[str, str]:
    env = clean_env(**TEST_ENV)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "import_alone.py"), *modules],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    failed: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return failed


def test_every_portal_module_imports_alone_in_a_fresh_interpreter() -> None:
    modules = sorted(portal_modules())
    workers = max(1, min(4, os.cpu_count() or 1))
    chunks = [modules[n::workers] for n in range(workers)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        failed = {
            k: v for answer in pool.map(_import_each_alone, chunks) for k, v in answer.items()
        }
    assert failed == {}


# --- and the checks can fail -----------------------------------------------------------------


def test_a_cycle_through_a_function_level_import_is_found() -> None:
    graph = import_graph(
        {
            "portal.a": "from portal import b\n",
            "portal.b": "def later():\n    from portal.c import thing\n",
            "portal.c": "import portal.a\nthing = 1\n",
            "portal.d": "from portal.a import b\n",
            "portal.e": "import typing\nif typing.TYPE_CHECKING:\n    import portal.a\n",
        }
    )
    assert graph["portal.e"] == set()
    assert graph["portal.b"] == {"portal.c"}
    assert cycles(graph) == [["portal.a", "portal.b", "portal.c"]]


@pytest.mark.parametrize(
    ("module", "imports"),
    [
        ("portal.openstack.client", "portal.models"),
        ("portal.operations.engine", "portal.services.instances"),
        ("portal.operations.engine", "portal.tasks"),
        ("portal.services.instances", "portal.selfservice.views"),
        ("portal.services.instances", "portal.operations.launch"),
        ("portal.admin.instances", "portal.operations.power"),
    ],
)
def test_a_wrong_way_import_is_refused(module: str, imports: str) -> None:
    graph = portal_graph()
    graph[module] = {*graph[module], imports}
    assert layering_violations(graph) != []
