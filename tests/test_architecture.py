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
# The one named exception: the image gate is a pure shared piece (it imports nothing of ours outside the
# device library), so the classifier and the server check images with the very code the devices use.
# Only the module itself, and names taken from it, are allowed; every other scanner_drivers import from
# models or server stays forbidden.
SHARED_GATE = "scanner_drivers.image_gate"
GATE_USERS = {"models", "server"}


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
                if package in GATE_USERS and (name == SHARED_GATE or name.startswith(SHARED_GATE + ".")):
                    ok = name.count(".") <= SHARED_GATE.count(".") + 1
                elif package == "server":
                    ok = name == "edge.wire" or name.startswith("edge.wire.")
                else:
                    ok = top in allowed
                if not ok:
                    bad.append(f"{rel} imports {name}")
    return bad


def test_import_direction(repo_root: Path) -> None:
    assert violations(repo_root) == []


def module_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Which of `package`'s modules each module imports, at the top or inside a function alike."""
    paths = {
        ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): path
        for path in sorted((root / package).rglob("*.py"))
    }
    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        targets = set()
        for name in imports_of(path):
            # `from a.b import c` names a.b and a.b.c: keep whichever is a module of ours.
            while name and name not in paths:
                name = name.rpartition(".")[0]
            if name and name != module and name != package:
                targets.add(name)
        graph[module] = targets
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first walk, each as the modules along it."""
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def walk(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt) :], nxt])
            elif nxt not in state:
                walk(nxt, [*trail, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            walk(start, [start])
    return cycles


def test_device_library_has_no_import_cycles(repo_root: Path) -> None:
    assert import_cycles(module_graph(repo_root, "scanner_drivers")) == []


def test_cycle_checker_finds_a_cycle(tmp_path: Path) -> None:
    (tmp_path / "scanner_drivers" / "sorter").mkdir(parents=True)
    (tmp_path / "scanner_drivers" / "sorter" / "a.py").write_text("from scanner_drivers.sorter import b\n")
    (tmp_path / "scanner_drivers" / "sorter" / "b.py").write_text(
        "def f() -> None:\n    from scanner_drivers.sorter.a import X\n"
    )
    assert import_cycles(module_graph(tmp_path, "scanner_drivers")) == [
        ["scanner_drivers.sorter.a", "scanner_drivers.sorter.b", "scanner_drivers.sorter.a"]
    ]


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


def test_checker_allows_only_the_image_gate_across(tmp_path: Path) -> None:
    for pkg in ALLOWED:
        (tmp_path / pkg).mkdir()
    (tmp_path / "models" / "ok.py").write_text("from scanner_drivers.image_gate import ImageRefused\n")
    (tmp_path / "server" / "ok.py").write_text("import scanner_drivers.image_gate\n")
    (tmp_path / "server" / "bad.py").write_text(
        "from scanner_drivers.image_headers import read_png\n"
        "from scanner_drivers import image_gate\n"
        "import scanner_drivers.xray.hotfolder\n"
    )
    (tmp_path / "models" / "bad.py").write_text("from scanner_drivers.barcodes.image import decode_image\n")
    assert violations(tmp_path) == [
        "models/bad.py imports scanner_drivers.barcodes.image",
        "models/bad.py imports scanner_drivers.barcodes.image.decode_image",
        "server/bad.py imports scanner_drivers",  # the package itself, named by `from scanner_drivers import`
        "server/bad.py imports scanner_drivers.image_headers",
        "server/bad.py imports scanner_drivers.image_headers.read_png",
        "server/bad.py imports scanner_drivers.xray.hotfolder",
    ]


def test_image_gate_imports_nothing_of_ours_outside_the_device_library(repo_root: Path) -> None:
    for module in ("image_gate", "image_headers", "image_dicom"):
        names = imports_of(repo_root / "scanner_drivers" / f"{module}.py")
        assert {n.split(".")[0] for n in names} & OURS <= {"scanner_drivers"}, module


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
