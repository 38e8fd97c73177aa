"""`parcelguard server run` for real: several worker processes on PostgreSQL, refused on SQLite; logs."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from edge.cli import main as cli_main
from server.logformat import JsonFormatter, redact
from server.settings import generate_key

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for name in ("SECRET_KEY", "HMAC_KEY", "ENCRYPTION_KEY"):
        env[f"PARCELGUARD_{name}"] = generate_key()
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_version_comes_from_the_installed_distribution(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as done:
        cli_main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"parcelguard {version('parcelguard')}"


@pytest.mark.slow
def test_several_workers_need_postgresql(db_url: str, tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    config.write_text(f"[server]\ndatabase_url = '{db_url}'\n")
    port = _free_port()
    cmd = [sys.executable, "-m", "edge.cli", "server", "run", "--config", str(config)]
    cmd += ["--workers", "2", "--port", str(port), "--log-format", "json"]
    if db_url.startswith("sqlite"):
        done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=60)
        assert done.returncode != 0
        lines = done.stderr.strip().splitlines()
        assert lines == ["parcelguard: error: --workers 2 needs PostgreSQL; this server's database is SQLite"]
        return
    proc = subprocess.Popen(cmd, env=_env(), stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        ready = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)  # waiting for the processes to listen, not moving time
        assert ready is not None and ready.status_code == 200, ready
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records)
    started = {m for r in records if (m := re.match(r"Started server process \[(\d+)\]", r["message"]))}
    assert len({m.group(1) for m in started}) == 2, [r["message"] for r in records]


def test_json_lines_carry_no_secrets() -> None:
    record = logging.LogRecord(
        "server.db", logging.ERROR, __file__, 1, "cannot reach %s", ("postgresql://pg:hunter2@db/x",), None
    )
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "cannot reach postgresql://pg:***@db/x"
    assert line["level"] == "ERROR" and line["logger"] == "server.db" and line["time"].endswith("+00:00")
    assert redact("Authorization: Bearer abc.DEF-123") == "Authorization: Bearer ***"
