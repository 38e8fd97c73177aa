"""`parcelguard edge run --log-format json`: every line the station writes is one JSON object."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from server.logformat import redact

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_station_writes_json_lines(tmp_path: Path) -> None:
    reads = tmp_path / "reads.jsonl"
    reads.write_text('{"codes": ["EE123456785CN"]}\n', encoding="utf-8")
    config = tmp_path / "edge.toml"
    config.write_text(
        f"""[station]
id = "S1"
site_id = "SITE1"
line_id = "L1"
data_dir = "{tmp_path / "edge"}"

[devices]
scanner = "fake://{reads}?speed=0"

[terminal]
enabled = false
""",
        encoding="utf-8",
    )
    cmd = [sys.executable, "-m", "edge.cli", "edge", "run", "--config", str(config), "--log-format", "json"]
    proc = subprocess.Popen(
        cmd, env=dict(os.environ, PYTHONPATH=str(ROOT)), stderr=subprocess.PIPE, text=True, cwd=tmp_path
    )
    assert proc.stderr is not None
    lines = []
    deadline = time.monotonic() + 60
    try:
        # Read until the station says it runs (a process edge: its own clock, not a test's sleep).
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            if "running" in line:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
    lines += (rest or "").splitlines(keepends=True)
    records = [json.loads(line) for line in lines if line.strip()]
    assert any(r["message"].startswith("station S1 running") for r in records), lines
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)


def test_masks_passwords_and_tokens() -> None:
    assert redact("https://u:pw@host/x and Bearer abc123") == "https://u:***@host/x and Bearer ***"
