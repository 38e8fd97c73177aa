"""What ships: the example configurations and hardware.md inside the wheel, and nothing stray beside them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from edge import examples

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"edge", "models", "scanner_drivers", "server"}


def original(name: str) -> Path:
    return ROOT / name if name == "hardware.md" else ROOT / "config" / name


@pytest.mark.parametrize("name", examples.FILES)
def test_shipped_examples_are_the_originals(name: str) -> None:
    assert examples.path(name).read_bytes() == original(name).read_bytes(), f"run `make examples` ({name})"


def test_every_example_config_is_shipped() -> None:
    shipped = set(examples.FILES)
    assert {p.name for p in (ROOT / "config").glob("*.example.toml")} <= shipped
    with pytest.raises(ValueError, match="not an example"):
        examples.path("../pyproject.toml")


@pytest.mark.slow
def test_wheel_holds_our_packages_and_the_examples(tmp_path: Path) -> None:
    # A clean copy: setuptools leaves build/ in the tree, and a stale one would add removed files.
    src = tmp_path / "src"
    # Compiled catalogs are left out too: the package build makes its own from the .po files.
    junk = shutil.ignore_patterns(".*", "build", "dist", "*.egg-info", "__pycache__", "var", "*.mo")
    shutil.copytree(ROOT, src, ignore=junk)
    # The build uses this environment's setuptools: no network is needed.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(src),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("parcelguard-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == PACKAGES
    for name in examples.FILES:
        assert f"edge/examples/{name}" in names
    assert not [n for n in names if n.startswith("tests/") or "/tests/" in n or "__pycache__" in n]
    assert "server/migrations/env.py" in names and "edge/web/templates/terminal.html" in names
    for mo in ("server/web/locale/zh_CN/LC_MESSAGES/server.mo", "edge/web/locale/en/LC_MESSAGES/terminal.mo"):
        assert mo in names, mo
