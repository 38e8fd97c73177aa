"""`parcelguard bench line`: a short run at a low rate is decided, recorded and adds up; figures by table.

Nothing here asserts on speed: the run checks that the figures exist and agree with each other.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edge.cli import build_parser, main
from edge.line_bench import cmd_bench_line, summary_line
from edge.line_figures import RateTimings, is_late, rate_figures, steady_window

KEYS = (
    "offered_per_s",
    "sustained_per_s",
    "decision_p50_ms",
    "decision_p99_ms",
    "divert_p99_ms",
    "late",
    "cpu_ms_per_parcel",
    "bare_cpu_ms_per_parcel",
    "ratio",
)


@pytest.mark.slow
def test_short_run_is_decided_recorded_and_consistent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "line.json"
    args = ["bench", "line", "--rate", "3", "--seconds", "2", "--sorter-delay", "0.05"]
    assert main([*args, "--classifier", "on", "--out", str(out), "--json"]) == 0
    line: dict[str, Any] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in KEYS:
        assert key in line, key
    assert [r["offered_per_s"] for r in line["rates"]] == [3.0]
    assert line["offered"] == 6
    assert line["decided"] == line["recorded"] == line["offered"]
    assert line["unrecorded"] == 0 and line["errors"] == 0
    decisions = line["decisions"]
    assert sum(decisions.values()) == line["recorded"]
    assert sum(sum(d.values()) for d in line["decisions_by_kind"].values()) == line["recorded"]
    hits = decisions.get("HOLD", 0) + decisions.get("PULL", 0)
    assert hits > 0, "the demo's mix always holds some parcels"
    # Every hit sent one divert command, and the simulated controller saw each one.
    assert line["diverts"] == hits == sum(line["divert_outcomes"].values())
    assert line["divert_p99_ms"] >= line["divert_p50_ms"] > 0
    assert line["decision_p99_ms"] >= line["decision_p50_ms"] > 0
    assert 0 <= line["late_reason"] <= line["late"] <= line["recorded"]
    assert line["cpu_ms_per_parcel"] > 0 and line["bare_cpu_ms_per_parcel"] > 0
    assert line["bare_images_per_parcel"] == 2.0  # the X-ray and the goods photo; labels are only read
    assert line["ratio"] == pytest.approx(line["cpu_ms_per_parcel"] / line["bare_cpu_ms_per_parcel"], 0.02)
    saved = json.loads(out.read_text(encoding="utf-8"))
    assert saved["benchmark"] == "line" and "open loop" in saved["method"]
    assert {"cpu", "cores", "python", "onnxruntime"} <= set(saved["machine"])
    assert saved["rates"][0]["recorded"] == line["recorded"]


@pytest.mark.parametrize(
    ("event", "late"),
    [
        ({"decision": "CLEAR", "reasons": [], "divert": None}, False),
        ({"decision": "PULL", "reasons": ["BLACKLISTED"], "divert": {"outcome": "DIVERTED"}}, False),
        ({"decision": "HOLD", "reasons": ["NO_READ"], "divert": None}, False),
        ({"decision": "PULL", "reasons": ["BLACKLISTED"], "divert": {"outcome": "TIMEOUT"}}, True),
        ({"decision": "HOLD", "reasons": ["NO_READ"], "divert": {"outcome": "MISSED"}}, True),
        ({"decision": "HOLD", "reasons": ["LATE"], "divert": None}, True),
        ({"decision": "CLEAR", "reasons": ["LATE"]}, True),
        ({"decision": "CLEAR", "divert": {"outcome": "TIMEOUT"}}, False),
        ({}, False),
    ],
)
def test_late_parcels(event: dict[str, Any], late: bool) -> None:
    assert is_late(event) is late


def test_steady_window_skips_the_warm_up() -> None:
    assert steady_window([0.0 + i / 10 for i in range(301)]) == (6.0, 30.0)
    assert steady_window([0.0, 0.5, 1.0]) == (0.5, 1.0)


def _timings(recorded_per_s: float, rate: float = 10.0, seconds: int = 10) -> RateTimings:
    due = [i / rate for i in range(int(rate * seconds))]
    t = RateTimings(rate=rate, due=due, kinds=["verified"] * len(due))
    samples = [(s / 10, int(min(len(due), recorded_per_s * s / 10))) for s in range(0, seconds * 10 + 1)]
    t.recorded_samples = samples
    done = min(len(due), int(recorded_per_s * seconds))
    for i in range(done):
        t.decided_at[i] = due[i] + 0.05 + i * 0.001
        t.events[i] = {"tracking_id": f"T{i}", "decision": "CLEAR", "reasons": []}
    t.cpu_s, t.bare_cpu_ms_per_parcel = done * 0.04, 20.0
    return t


def test_a_station_that_keeps_up_shows_no_backlog() -> None:
    f = rate_figures(_timings(10.0))
    assert f["sustained_per_s"] == pytest.approx(10.0, abs=0.2)
    assert f["backlog_grew"] is False and f["backlog_at_end"] <= 1
    assert f["recorded"] == f["offered"] == 100
    assert f["cpu_ms_per_parcel"] == pytest.approx(40.0) and f["ratio"] == pytest.approx(2.0)
    assert f["decisions_by_kind"] == {"verified": {"CLEAR": 100}}


def test_a_station_at_half_the_rate_shows_its_backlog_growing() -> None:
    f = rate_figures(_timings(5.0))
    assert f["sustained_per_s"] == pytest.approx(5.0, abs=0.2)
    assert f["backlog_grew"] is True
    assert f["backlog_growth_per_s"] == pytest.approx(5.0, abs=0.5)
    assert f["unrecorded"] == 50 and f["backlog_at_end"] >= 40


def test_several_rates_give_one_object_led_by_the_highest() -> None:
    args = build_parser().parse_args(["bench", "line", "--rate", "10", "--rate", "35", "--rate", "20"])
    assert args.rate == [10.0, 35.0, 20.0] and args.func is cmd_bench_line
    low, high = rate_figures(_timings(10.0)), rate_figures(_timings(5.0, rate=20.0))
    line = summary_line({"rates": [low, high], "results_file": "line.json"})
    assert line["offered_per_s"] == 20.0 and line["sustained_per_s"] == high["sustained_per_s"]
    assert [r["offered_per_s"] for r in line["rates"]] == [10.0, 20.0]
    assert json.loads(json.dumps(line)) == line


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--rate", "0"], "--rate"),
        (["--seconds", "0"], "--seconds"),
        (["--sorter-delay", "-1"], "--sorter-delay"),
        (["--deadline", "31"], "--deadline"),
    ],
)
def test_bad_options_are_refused_before_any_work(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "line", *flags, "--json"]) == 2
    assert message in capsys.readouterr().err
