"""`parcelguard bench server` runs end to end at a tiny size and writes its results files."""

from __future__ import annotations

import json
from pathlib import Path

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
