"""Every setting's default is declared once, in codesquare/settings.py (and .env.example).

Code reads ``settings.X``; a ``getattr(settings, "X", default)`` would keep a second default that
silently disagrees with the first the day one of them changes.
"""

import ast
import re
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("portal", "codesquare")
SETTINGS_MODULE = ROOT / "codesquare" / "settings.py"


def _is_settings(node: ast.expr) -> bool:
    name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", "")
    return name.endswith("settings")


def second_defaults(path: Path, root: Path = ROOT) -> list[str]:
    """``getattr(settings, name, default)`` and ``hasattr(settings, name)`` calls in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        if not node.args or not _is_settings(node.args[0]):
            continue
        if (node.func.id == "getattr" and len(node.args) + len(node.keywords) >= 3) or (
            node.func.id == "hasattr"
        ):
            found.append(f"{path.relative_to(root)}:{node.lineno} {ast.unparse(node)}")
    return found


def _sources() -> list[Path]:
    return [
        path
        for folder in SCANNED
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path != SETTINGS_MODULE and "migrations" not in path.parts
    ]


def test_no_code_declares_a_second_default_for_a_setting() -> None:
    found = [line for path in _sources() for line in second_defaults(path)]
    assert found == []


def test_the_scan_sees_a_second_default_and_nothing_else(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from django.conf import settings\n"
        'A = getattr(settings, "A", 1)\n'
        'B = settings.B if hasattr(settings, "B") else 2\n'
        'C = getattr(settings, "C")\n'  # no default: the engine's setting() reads this way
        "D = settings.D\n"
    )
    assert second_defaults(sample, tmp_path) == [
        "sample.py:2 getattr(settings, 'A', 1)",
        "sample.py:3 hasattr(settings, 'B')",
    ]


def test_the_settings_the_portal_reads_are_declared() -> None:
    for name in (
        "SELFSERVICE_LIVE_VM_LIMIT",
        "SELFSERVICE_SOLDIER_DELETE",
        "OPENSTACK_RESERVED_USERNAMES",
        "OPENSTACK_ALLOWED_ZONES",
        "STATUS_BUILD_SLOW_SECONDS",
        "METRICS_ALLOWED_NETWORKS",
        "METRICS_TOKEN",
        "PROMETHEUS_MULTIPROC_DIR",
    ):
        assert hasattr(settings, name), name
        assert re.search(rf"^{name}=", (ROOT / ".env.example").read_text(), re.MULTILINE), name
