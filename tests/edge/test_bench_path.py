"""The parcel-path benchmark runs end to end and writes its results file (figures not judged here)."""

from __future__ import annotations

import json
from pathlib import Path

from edge.bench_path import PathBenchOptions, run_path_bench, write_results


def test_bench_runs_and_writes_results(tmp_path: Path) -> None:
    result = run_path_bench(PathBenchOptions(parcels=6, interval_ms=1.0, confirm_s=0.05, budget_s=30.0))
    assert result["drained"] and result["parcels"] == 6
    assert result["diverted"] == 6 and result["late"] == 0 and result["divert_outcomes"] == {"DIVERTED": 6}
    assert set(result["read_to_divert_sent_ms"]) == {"p50", "p95", "max"}
    out = tmp_path / "r" / "bench.json"
    write_results(result, out)
    assert json.loads(out.read_text())["benchmark"] == "parcel-path"
