"""`parcelguard bench line`: a real station offered parcels open loop at fixed rates.

Method. For each rate a fresh station is built as in the demo (EdgeAgent, SQLite store in a
temporary folder, the shipped classifier with the committed demo head and gallery, one
onnxruntime thread), no server; its store is seeded with the registry of the demo scenario
(senders, manifests, blacklist) and its sorter link talks TCP to a simulated controller that
confirms each divert `--sorter-delay` seconds after the command. Parcels are prepared before any
timing: the demo's mix of kinds (verified, camera read, unverified, no real-name record, unknown
waybill, blacklisted, no-read, bad check digit, counterfeit), each with a label photo, an X-ray
image and a goods photo made by the demo's image generators. They are offered open loop: a
driver thread calls `agent.on_read(read)` at the scheduled times (`rate` parcels per second,
`read.at_monotonic` = the scheduled time) whatever the station does; when on_read blocks, the
reads due meanwhile go in at once when it returns, so a backlog shows up as latency, never as a
slower schedule. The station's sorter deadline is the demo's 2 s (`--deadline`).

Measured: scan-to-decision = when the parcel's event arrives on the station feed minus its
scheduled time; scan-to-divert = when the simulated controller received the divert command minus
the scheduled time; sustained rate = parcels recorded in the store per second over the steady
part of the run (after a warm-up of a fifth of it); backlog = parcels offered but not recorded
when the last read was due, and its growth per second; late = events with a LATE reason, or hits
whose divert outcome is not DIVERTED; CPU per parcel = process CPU time (every thread: station,
driver, feed reader, simulated controller) from the first read until every parcel is recorded,
divided by the parcels recorded; bare CPU per parcel = onnxruntime alone (decode, the model's
input preprocessing and session.run, no head or gallery) on the same parcels' classified images
(the first 200), measured right after, in the same process; ratio = CPU per parcel / bare CPU per parcel.

Results go to `--out` (default bench-results/line-<UTC time>.json) with the machine and this
method; `--json` prints one JSON object as the last line. Quote medians and ratios: shared
machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from edge.line_figures import RateTimings, rate_figures
from edge.line_parcels import BenchParcel, prepare_parcels
from edge.line_probes import FeedClock, StoreSampler, timed_sorter
from models.bench import machine
from scanner_drivers.types import ImageCapture

if TYPE_CHECKING:
    from edge.agent import EdgeAgent
    from edge.config import ClassifierConfig, EdgeConfig
    from edge.wire import RegistryChanges

SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

STATION = "BENCH-L1-XR1"
LEAD_S = 0.5  # from starting the station to the first scheduled read
BARE_SAMPLE = 200  # parcels whose images are timed bare (enough for a stable mean)
EVENTS_SQL = "SELECT body FROM events WHERE type = 'parcel'"
OUTCOMES_SQL = "SELECT body FROM events WHERE type = 'divert_outcome' ORDER BY seq"


@dataclass(frozen=True)
class LineBenchOptions:
    """What `parcelguard bench line` was asked for; see its --help for each field."""

    rates: tuple[float, ...] = (10.0,)
    seconds: float = 30.0
    sorter_delay_s: float = 0.8
    deadline_s: float = 2.0
    classifier: bool = True
    seed: int = 7
    drain_s: float = 60.0
    out: Path | None = None
    quiet: bool = False
    # The station's own knobs: parcels assessed at once, and images of one parcel classified at once.
    parcels_at_once: int = 2
    pool: int = 2

    def check(self) -> None:
        if not self.rates or any(r <= 0 for r in self.rates):
            raise ValueError("--rate must be positive")
        if self.seconds <= 0:
            raise ValueError("--seconds must be positive")
        if self.drain_s < 0 or self.sorter_delay_s < 0:
            raise ValueError("--drain-s and --sorter-delay must not be negative")
        if not 0 < self.deadline_s <= 30:
            raise ValueError("--deadline must be over 0 and at most 30 seconds (the station's limits)")
        if not 1 <= self.parcels_at_once <= 8 or not 1 <= self.pool <= 16:
            raise ValueError("--parcels-at-once must be 1 to 8 and --pool 1 to 16 (the station's limits)")


def station_config(
    work: Path, sorter_url: str, classifier: ClassifierConfig, deadline_s: float, confirm_wait_s: float = 0.0
) -> EdgeConfig:
    """The demo's station settings; the scanner is an empty replay, since the bench drives on_read."""
    from edge.config import DevicesConfig, EdgeConfig, SorterConfig, StationConfig

    replay = work / "no-reads.jsonl"
    replay.write_text("", encoding="utf-8")
    return EdgeConfig(
        station=StationConfig(id=STATION, site_id="BENCH", line_id="L1", data_dir=work / STATION),
        devices=DevicesConfig(scanner=f"fake://{replay}?speed=0"),
        # The controller confirms when the parcel reaches its chute: wait that long past the divert point.
        sorter=SorterConfig(url=sorter_url, deadline_s=deadline_s, confirm_wait_s=confirm_wait_s),
        classifier=classifier,
    )


def offer(
    agent: EdgeAgent,
    parcels: Sequence[BenchParcel],
    due: Sequence[float],
    stop: threading.Event,
    lag: list[float],
) -> None:
    """Open loop: each read at its scheduled time, never waiting for the station's answer first."""
    for i, (parcel, at) in enumerate(zip(parcels, due, strict=True)):
        if stop.is_set():
            return
        wait = at - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        lag.append(max(0.0, time.monotonic() - at))
        agent.on_read(parcel.read(at, i + 1))


def wait_recorded(agent: EdgeAgent, sampler: StoreSampler, clock: FeedClock, n: int, deadline: float) -> str:
    """Until all `n` parcels are recorded (and seen on the feed) or the deadline passes."""
    how = "polling"
    drain = getattr(agent, "drain", None)
    if callable(drain):
        how = "drain"
        try:
            drain(max(0.1, deadline - time.monotonic()))
        except Exception as exc:  # a drain that gives up still leaves the rest to polling
            how = f"drain ({type(exc).__name__}), then polling"
    while time.monotonic() < deadline:
        # A parcel the station failed on is never recorded: it is counted, not waited for.
        expected = n - int(getattr(agent, "errors", 0))
        recorded = sampler.count()
        if (recorded is None or recorded >= expected) and len(clock.decided_at) >= expected:
            break
        time.sleep(0.05)
    return how


def stored_events(agent: EdgeAgent, keys: dict[str, int]) -> dict[int, dict[str, Any]]:
    """Each prepared parcel's stored event; a divert recorded as PENDING takes its follow-up outcome."""
    out: dict[int, dict[str, Any]] = {}
    for (body,) in agent.store.query(EVENTS_SQL):
        event = json.loads(body)
        for ref in event.get("images") or []:
            index = keys.get(str(ref.get("sha256")))
            if index is not None:
                out.setdefault(index, event)
    outcomes = {}
    for (body,) in agent.store.query(OUTCOMES_SQL):
        outcome = json.loads(body)
        outcomes[str(outcome.get("tracking_id"))] = outcome
    for event in out.values():
        divert, later = event.get("divert"), outcomes.get(str(event.get("tracking_id")))
        if isinstance(divert, dict) and later is not None:
            event["divert"] = {**divert, "outcome": later.get("outcome"), "detail": later.get("detail", "")}
    return out


def bare_cpu(
    parcels: Sequence[BenchParcel], classifier: ClassifierConfig, workers: int = 1
) -> tuple[float | None, float]:
    """(CPU ms per parcel, images per parcel) of decode + preprocessing + session.run on the same images.

    With `workers` > 1 the images run on that many threads at once, as the station runs them: two
    inferences side by side each cost more processor time than one alone (shared caches and memory).
    """
    from models.classifier import Classifier

    if classifier.manifest is None:
        return None, 0.0
    clf = Classifier.load(classifier.manifest, threads=classifier.threads)
    kinds = set(classifier.kinds)
    sample = list(parcels[:BARE_SAMPLE])
    images = [img for p in sample for img in p.images if img.kind in kinds]

    def one(img: ImageCapture) -> None:
        clf.run(clf.preprocess(img.data, img.kind))

    c0 = time.process_time()
    if workers <= 1:
        for img in images:
            one(img)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, images))
    c1 = time.process_time()
    return (c1 - c0) * 1000 / len(sample), len(images) / len(sample)


def run_rate(
    rate: float, parcels: Sequence[BenchParcel], registry: RegistryChanges, opts: LineBenchOptions
) -> RateTimings:
    """One fresh station offered `parcels` at `rate`; returns the raw timings and stored events."""
    from edge.agent import EdgeAgent
    from edge.demo import demo_classifier

    classifier = demo_classifier(opts.classifier).model_copy(
        update={"parcels": opts.parcels_at_once, "pool": opts.pool}
    )
    keys = {p.key: i for i, p in enumerate(parcels)}
    with tempfile.TemporaryDirectory(prefix="parcelguard-line-bench-") as tmp:
        sorter = timed_sorter(opts.sorter_delay_s)
        url = sorter.start()
        try:
            confirm_wait_s = min(30.0, opts.sorter_delay_s + 0.5)
            agent = EdgeAgent(station_config(Path(tmp), url, classifier, opts.deadline_s, confirm_wait_s))
            try:
                agent.store.apply_registry(registry)
                clock = FeedClock(agent, keys)
                sampler = StoreSampler(agent)
                agent.start()
                t0 = time.monotonic() + LEAD_S
                timings = RateTimings(
                    rate=rate,
                    due=[t0 + i / rate for i in range(len(parcels))],
                    kinds=[p.kind for p in parcels],
                )
                stop = threading.Event()
                driver = threading.Thread(
                    target=offer,
                    args=(agent, parcels, timings.due, stop, timings.driver_lag),
                    name="bench-driver",
                    daemon=True,
                )
                cpu0 = time.process_time()
                sampler.start()
                driver.start()
                deadline = timings.due[-1] + opts.drain_s
                driver.join(max(0.1, deadline - time.monotonic()))
                stop.set()
                timings.drained_by = wait_recorded(agent, sampler, clock, len(parcels), deadline)
                timings.cpu_s = time.process_time() - cpu0
                sampler.stop()
                clock.stop()
                timings.recorded_samples = list(sampler.samples)
                timings.decided_at = dict(clock.decided_at)
                timings.events = stored_events(agent, keys)
                timings.errors = int(getattr(agent, "errors", 0))
            finally:
                agent.stop()
            timings.divert_at = dict(sorter.received_at)
        finally:
            sorter.stop()
    bare_classifier = classifier if classifier.enabled else demo_classifier(True)
    timings.bare_cpu_ms_per_parcel, timings.bare_images_per_parcel = bare_cpu(parcels, bare_classifier)
    # As many at once as the station classifies at most, capped by the cores that can run them.
    side_by_side = min(os.cpu_count() or 1, opts.parcels_at_once * opts.pool)
    timings.bare_parallel_cpu_ms_per_parcel, _ = bare_cpu(parcels, bare_classifier, side_by_side)
    return timings


METHOD = " ".join(__doc__.split("Method.", 1)[1].split("Results go to", 1)[0].split()) if __doc__ else ""


def run_line_bench(opts: LineBenchOptions) -> dict[str, Any]:
    """Every rate in turn, lowest first, on the same prepared parcels; writes and returns the results."""
    opts.check()
    rates = sorted(set(opts.rates))
    n_max = max(1, round(max(rates) * opts.seconds))
    parcels, registry = prepare_parcels(n_max, seed=opts.seed, progress=not opts.quiet)
    figures: list[dict[str, Any]] = []
    for rate in rates:
        n = max(1, round(rate * opts.seconds))
        if not opts.quiet:
            print(f"rate {rate:g}/s: {n} parcels ...", file=sys.stderr, flush=True)
        figures.append(rate_figures(run_rate(rate, parcels[:n], registry, opts)))
    kinds: dict[str, int] = {}
    for p in parcels:
        kinds[p.kind] = kinds.get(p.kind, 0) + 1
    results = {
        "benchmark": "line",
        "when_utc": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "machine": machine(),
        "method": METHOD,
        "settings": {
            "rates": rates,
            "seconds": opts.seconds,
            "sorter_delay_s": opts.sorter_delay_s,
            "deadline_s": opts.deadline_s,
            "parcels_at_once": opts.parcels_at_once,
            "pool": opts.pool,
            "classifier": "on" if opts.classifier else "off",
            "seed": opts.seed,
            "drain_s": opts.drain_s,
        },
        "parcel_kinds": kinds,
        "rates": figures,
    }
    out: Path = opts.out or Path("bench-results") / f"line-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    results["results_file"] = str(out)
    return results


def summary_line(results: dict[str, Any]) -> dict[str, Any]:
    """The --json object: the highest rate's figures at the top, every rate in `rates`."""
    top = results["rates"][-1]
    return {**top, "rates": results["rates"], "results_file": results.get("results_file")}


def format_table(results: dict[str, Any]) -> str:
    head = "rate/s  sustained/s  decision p50/p99 ms  divert p50/p99 ms  late  backlog  cpu/bare ms  ratio"
    rows = [head]
    for f in results["rates"]:
        rows.append(
            f"{f['offered_per_s']:>6g}  {f['sustained_per_s']!s:>11}  "
            f"{f['decision_p50_ms']!s:>9}/{f['decision_p99_ms']!s:<9}  "
            f"{f['divert_p50_ms']!s:>8}/{f['divert_p99_ms']!s:<8}  {f['late']:>4}  "
            f"{'grew' if f['backlog_grew'] else 'flat':>7}  "
            f"{f['cpu_ms_per_parcel']!s:>5}/{f['bare_cpu_ms_per_parcel']!s:<5}  {f['ratio']!s:>5}"
        )
    rows.append(f"results: {results.get('results_file')}")
    return "\n".join(rows)


def cmd_bench_line(args: argparse.Namespace) -> int:
    opts = LineBenchOptions(
        rates=tuple(args.rate or (10.0,)),
        seconds=args.seconds,
        sorter_delay_s=args.sorter_delay,
        deadline_s=args.deadline,
        classifier=args.classifier == "on",
        seed=args.seed,
        drain_s=args.drain_s,
        out=args.out,
        quiet=args.json,
        parcels_at_once=args.parcels_at_once,
        pool=args.pool,
    )
    results = run_line_bench(opts)
    if args.json:
        print(json.dumps(summary_line(results), ensure_ascii=False))
    else:
        print(format_table(results))
    return 0


def register(commands: SubParsers, bench: SubParsers) -> None:
    del commands  # a benchmark only
    p = bench.add_parser(
        "line",
        help="a real station offered parcels open loop: decision and divert latency, sustained rate, CPU",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--rate", type=float, action="append", help="parcels/s offered; repeat for several rates")
    p.add_argument("--seconds", type=float, default=30.0, help="seconds of parcels at each rate")
    p.add_argument(
        "--sorter-delay",
        type=float,
        default=0.8,
        help="seconds the simulated controller takes to confirm a divert",
    )
    p.add_argument("--deadline", type=float, default=2.0, help="sorter deadline_s of the station (demo: 2.0)")
    p.add_argument("--classifier", choices=("on", "off"), default="on")
    p.add_argument("--parcels-at-once", type=int, default=2, help="station's classifier.parcels")
    p.add_argument("--pool", type=int, default=2, help="station's classifier.pool")
    p.add_argument("--seed", type=int, default=7, help="scenario seed (the demo's is 7)")
    p.add_argument(
        "--drain-s",
        type=float,
        default=60.0,
        help="longest wait after the last read for every parcel to be recorded",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results file (JSON); default bench-results/line-<UTC time>.json",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_bench_line)
