"""`parcelguard bench parcel-path`: a station at line speed against a sorter that confirms late.

Parcels are read every `interval_ms` by a replaying scanner; the simulated controller confirms
each divert `confirm_s` after it was sent (the parcel travelling to its chute). The figures say
whether the station keeps up: how long the scanner's thread was held per read, how long from a
read until its divert was on record and handed to the sorter, and how many parcels were LATE.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.agent import EdgeAgent
from edge.config import DevicesConfig, EdgeConfig, SorterConfig, StationConfig
from edge.demo import demo_classifier
from edge.pipeline import Prepared
from edge.scenario import build_scenario, write_replay
from edge.wire import ParcelEvent
from scanner_drivers.sorter.sim import SimulatedSorter
from scanner_drivers.types import ScanRead


@dataclass(frozen=True)
class PathBenchOptions:
    parcels: int = 200
    interval_ms: float = 30.0
    confirm_s: float = 0.8
    budget_s: float = 1.5
    classifier: bool = False
    seed: int = 3


def _ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered) * 1000, 3),
        "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000, 3),
        "max": round(ordered[-1] * 1000, 3),
    }


def run_path_bench(opts: PathBenchOptions) -> dict[str, Any]:
    sim = SimulatedSorter(result_delay_s=opts.confirm_s)
    url = sim.start()
    held: list[float] = []
    to_intent: list[float] = []
    lock = threading.Lock()
    try:
        with tempfile.TemporaryDirectory(prefix="parcelguard-bench-") as tmp:
            work = Path(tmp)
            scenario = build_scenario(opts.parcels, seed=opts.seed)
            replay = work / "reads.jsonl"
            # Unknown waybills: every parcel is held, so every one needs a divert.
            write_replay(scenario.parcels, replay, delay=opts.interval_ms / 1000, images=opts.classifier)
            cfg = EdgeConfig(
                station=StationConfig(id="BENCH-L1", site_id="BENCH", line_id="L1", data_dir=work / "edge"),
                devices=DevicesConfig(scanner=f"fake://{replay}?speed=1"),
                # The simulated controller confirms on arrival at the chute, `confirm_s` after the command.
                sorter=SorterConfig(url=url, divert_budget_s=opts.budget_s, confirm_wait_s=opts.confirm_s),
                classifier=demo_classifier(opts.classifier),
            )
            agent = EdgeAgent(cfg)
            commit = agent.pipeline.commit

            def timed_commit(read: ScanRead, prep: Prepared) -> ParcelEvent:
                event = commit(read, prep)
                with lock:
                    to_intent.append(time.monotonic() - read.at_monotonic)
                return event

            def timed_read(read: ScanRead) -> None:
                start = time.monotonic()
                # The replaying scanner stamps a read before its pause; a real one at the trigger.
                agent.on_read(dataclasses.replace(read, at_monotonic=start))
                with lock:
                    held.append(time.monotonic() - start)

            agent.pipeline.commit = timed_commit  # type: ignore[method-assign]
            agent.start(scanner=False)
            started = time.monotonic()
            agent.intake.start()
            agent.scanner.start(timed_read, agent.on_status)
            agent.scanner.join(opts.parcels * opts.interval_ms / 1000 + 60)
            drained = agent.drain(120)
            wall = time.monotonic() - started
            outcomes = agent.store.divert_outcomes()
            events = [e for e in agent.store.events(1_000_000) if isinstance(e, ParcelEvent)]
            agent.stop()
    finally:
        sim.stop()
    diverted = sum(1 for o in outcomes.values() if o == "DIVERTED")
    by_outcome = collections.Counter(outcomes.values())
    late = sum(1 for e in events if "LATE" in e.reasons or (e.divert and e.divert.outcome == "LATE"))
    return {
        "benchmark": "parcel-path",
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "method": (
            f"{opts.parcels} reads replayed every {opts.interval_ms} ms through a real station (store, "
            f"pipeline, TCP sorter link) to a simulated controller confirming each divert after "
            f"{opts.confirm_s} s; budget {opts.budget_s} s from read to divert point; classifier "
            f"{'on (shipped model, label/X-ray/goods images)' if opts.classifier else 'off'}"
        ),
        "parcels": len(events),
        "drained": drained,
        "wall_s": round(wall, 3),
        "diverted": diverted,
        "divert_outcomes": dict(sorted(by_outcome.items())),
        "late": late,
        "scanner_thread_held_ms": _ms(held),
        "read_to_divert_sent_ms": _ms(to_intent),
        "comparison": {
            # A path that waits for each confirmation before the next read needs at least this long.
            "blocking_divert_min_wall_s": round(diverted * opts.confirm_s, 3),
        },
        "seed": opts.seed,
    }


def write_results(result: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
