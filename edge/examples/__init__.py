"""Copies of the example configuration files and hardware.md, shipped in the wheel.

An installed station or server has no source tree: `parcelguard` users copy these to start their own
configuration. The originals live in config/ and hardware.md at the top of the repository; a test keeps
the copies byte for byte equal (run `make examples` after changing an original).
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
FILES = ("edge.example.toml", "server.example.toml", "line.example.toml", "hardware.md")


def path(name: str) -> Path:
    """The installed copy of one of FILES."""
    if name not in FILES:
        raise ValueError(f"{name}: not an example file (one of {', '.join(FILES)})")
    return HERE / name
