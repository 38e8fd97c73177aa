"""Import direction of DESIGN.md §3, checked on the source: who may import whom among our packages."""

from __future__ import annotations

import ast
from pathlib import Path

OURS = {"edge", "models", "scanner_drivers", "server"}
# The product's entry points compose every part, so they alone may reach across packages.
COMPOSITION_ROOTS = {"edge/cli.py", "edge/commands.py", "edge/demo.py"}
ALLOWED: dict[str, set[str]] = {
    "scanner_drivers": set(),
    "models": set(),
    "edge": {"scanner_drivers", "models"},
    "server": {"edge.wire"},
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", "") == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return found


def violations(root: Path) -> list[str]:
    bad: list[str] = []
    for package, allowed in ALLOWED.items():
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel in COMPOSITION_ROOTS:
                continue
            for name in sorted(imports_of(path)):
                top = name.split(".")[0]
                if top not in OURS or top == package:
                    continue
                if package == "server":
                    ok = name == "edge.wire" or name.startswith("edge.wire.")
                else:
                    ok = top in allowed
                if not ok:
                    bad.append(f"{rel} imports {name}")
    return bad


def test_import_direction(repo_root: Path) -> None:
    assert violations(repo_root) == []


def test_wire_contract_imports_only_pydantic(repo_root: Path) -> None:
    names = imports_of(repo_root / "edge" / "wire.py")
    assert {n.split(".")[0] for n in names} <= {"__future__", "datetime", "typing", "pydantic"}


def test_checker_catches_a_violation(tmp_path: Path) -> None:
    for pkg in ALLOWED:
        (tmp_path / pkg).mkdir()
    (tmp_path / "scanner_drivers" / "bad.py").write_text("from edge.pipeline import Pipeline\n")
    (tmp_path / "server" / "bad.py").write_text("import edge.store\nfrom edge.wire import SyncRequest\n")
    assert violations(tmp_path) == [
        "scanner_drivers/bad.py imports edge.pipeline",
        "scanner_drivers/bad.py imports edge.pipeline.Pipeline",
        "server/bad.py imports edge.store",
    ]


def test_every_module_has_a_docstring(repo_root: Path) -> None:
    missing = []
    for package in (*ALLOWED, "tests"):
        for path in (repo_root / package).rglob("*.py"):
            if ".venv" in path.parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            if path.stat().st_size and ast.get_docstring(tree) is None:
                missing.append(path.relative_to(repo_root).as_posix())
    assert missing == []
