"""`parcelguard bench server` runs end to end at a tiny size and writes its results files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.cli import main


def test_bench_server_smoke(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = ["bench", "server", "--batches", "1", "--orders", "2", "--events", "2000", "--out", str(out)]
    assert main(args) == 0
    results = json.loads(out.read_text())
    sqlite = results["engines"]["sqlite"]
    assert sqlite["ingest"]["batches"] == 1 and sqlite["report"]["events"] == 2000
    assert sqlite["fanout"]["deliveries"] == sqlite["fanout"]["expected_deliveries"] == 40
    assert "| sqlite |" in out.with_suffix(".md").read_text()
    assert main(["bench", "server", "--parts", "nonsense", "--out", str(out)]) == 2


def test_bench_server_http_prints_one_json_line_per_engine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "http.json"
    args = ["bench", "server", "--http", "--json", "--batches", "1", "--backlog-events", "1000"]
    assert main([*args, "--report-events", "3000", "--out", str(out)]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["engine"] == "sqlite" and last["report_events"] == 3000 and last["backlog_events"] == 1000
    for key in ("ingest_events_per_s", "bare_events_per_s", "fanout_p99_ms", "backlog_drain_s", "report_ms"):
        assert last[key] > 0, key
    assert last["fanout_deliveries"] == last["fanout_expected_deliveries"] > 0
    assert json.loads(out.read_text())["engines"] == [last]
