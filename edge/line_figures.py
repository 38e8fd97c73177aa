"""Figures of one line-bench rate, computed from plain timings and stored events (no clocks, no station).

Kept apart from the run so that the arithmetic (percentiles, the steady window, backlog, late
parcels) can be read and checked on its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# A backlog growing by more than this share of the offered rate means the station is falling behind.
BACKLOG_GROWTH_SHARE = 0.05


@dataclass
class RateTimings:
    """What one run at one rate produced; times are time.monotonic() seconds."""

    rate: float
    due: list[float]
    # The scenario kind of each parcel (verified, blacklisted, no_read ...), in offering order.
    kinds: list[str] = field(default_factory=list)
    # Parcel index -> when its event came out on the station feed.
    decided_at: dict[int, float] = field(default_factory=dict)
    # Parcel index -> its stored event body (as JSON data).
    events: dict[int, dict[str, Any]] = field(default_factory=dict)
    # The id the sorter was sent (the parcel's sorter id; its tracking id before there was one) ->
    # when the sorter received its divert command.
    divert_at: dict[str, float] = field(default_factory=dict)
    # (time, parcel events in the store) samples taken during the run.
    recorded_samples: list[tuple[float, int]] = field(default_factory=list)
    # How late the driver thread was in calling on_read, per parcel (seconds).
    driver_lag: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    bare_cpu_ms_per_parcel: float | None = None
    bare_images_per_parcel: float = 0.0
    # The same, with images classified side by side on as many threads as the station uses.
    bare_parallel_cpu_ms_per_parcel: float | None = None
    drained_by: str = "polling"
    errors: int = 0


def _ms(values: Sequence[float], q: float) -> float | None:
    return round(float(np.percentile(np.asarray(values) * 1000.0, q)), 2) if values else None


def steady_window(due: Sequence[float]) -> tuple[float, float]:
    """From a warm-up (a fifth of the run, 1 s at least, half of it at most) to the last scheduled read."""
    start, end = due[0], due[-1]
    span = end - start
    warm = min(max(1.0, 0.2 * span), 0.5 * span)
    return start + warm, end


def is_late(event: dict[str, Any]) -> bool:
    """A LATE reason, or a hit whose divert did not go through (missed, timed out, refused, too late).

    Read by name and defensively: the reason codes and divert outcomes grow over time.
    """
    reasons = event.get("reasons") or []
    if any(str(r).upper().startswith("LATE") for r in reasons):
        return True
    divert = event.get("divert")
    if event.get("decision", "CLEAR") == "CLEAR" or not isinstance(divert, dict):
        return False
    outcome = divert.get("outcome")
    return outcome is not None and outcome != "DIVERTED"


def _backlog(t: RateTimings, window: tuple[float, float]) -> tuple[int | None, float | None]:
    """(parcels offered but not recorded at the last scheduled read, backlog growth per second)."""
    samples = [(ts, n) for ts, n in t.recorded_samples if window[0] <= ts <= window[1]]
    due = np.asarray(t.due)
    at_end = None
    if t.recorded_samples:
        ts, counts = zip(*t.recorded_samples, strict=True)
        recorded_end = float(np.interp(window[1], ts, counts))
        at_end = max(0, round(len(due) - recorded_end))
    if len(samples) < 3:
        return at_end, None
    xs = np.asarray([s[0] for s in samples])
    backlog = np.asarray([np.searchsorted(due, s[0], side="right") - s[1] for s in samples], dtype=float)
    slope = float(np.polyfit(xs - xs[0], backlog, 1)[0])
    return at_end, round(slope, 3)


def _sustained(t: RateTimings, window: tuple[float, float]) -> float | None:
    """Parcels recorded per second over the steady window (store samples; feed times when none)."""
    a, b = window
    if b <= a:
        return None
    if len(t.recorded_samples) >= 2:
        ts, counts = zip(*t.recorded_samples, strict=True)
        return round(float(np.interp(b, ts, counts) - np.interp(a, ts, counts)) / (b - a), 2)
    done = sum(1 for at in t.decided_at.values() if a <= at <= b)
    return round(done / (b - a), 2)


def _by_kind(t: RateTimings) -> dict[str, dict[str, int]]:
    """Decisions per scenario kind, to see that the mix was decided as the demo decides it."""
    out: dict[str, Counter[str]] = {}
    for i, ev in t.events.items():
        kind = t.kinds[i] if i < len(t.kinds) else "?"
        out.setdefault(kind, Counter())[str(ev.get("decision"))] += 1
    return {k: dict(v) for k, v in sorted(out.items())}


def rate_figures(t: RateTimings) -> dict[str, Any]:
    """One rate's figures, as quoted in the results file and the --json line."""
    decision = [t.decided_at[i] - t.due[i] for i in sorted(t.decided_at)]
    divert: list[float] = []
    for i, ev in t.events.items():
        at = t.divert_at.get(str(ev.get("sorter_id") or ev.get("tracking_id")))
        if at is not None:
            divert.append(at - t.due[i])
    window = steady_window(t.due)
    at_end, growth = _backlog(t, window)
    thirds = len(decision) // 3
    trend = None
    if thirds:
        trend = round((float(np.median(decision[-thirds:])) - float(np.median(decision[:thirds]))) * 1000, 1)
    recorded = len(t.events)
    late_reason = sum(
        1
        for ev in t.events.values()
        if any(str(r).upper().startswith("LATE") for r in ev.get("reasons") or [])
    )
    cpu_ms = round(t.cpu_s * 1000 / recorded, 2) if recorded else None
    bare = t.bare_cpu_ms_per_parcel
    par = t.bare_parallel_cpu_ms_per_parcel
    grew = bool((growth is not None and growth > BACKLOG_GROWTH_SHARE * t.rate) or len(t.due) > recorded)
    return {
        "offered_per_s": t.rate,
        "seconds": round(t.due[-1] - t.due[0] + 1 / t.rate, 2),
        "offered": len(t.due),
        "decided": len(t.decided_at),
        "recorded": recorded,
        "unrecorded": len(t.due) - recorded,
        "errors": t.errors,
        "sustained_per_s": _sustained(t, window),
        "steady_window_s": [round(window[0] - t.due[0], 2), round(window[1] - t.due[0], 2)],
        "backlog_at_end": at_end,
        "backlog_growth_per_s": growth,
        "decision_trend_ms": trend,
        "backlog_grew": grew,
        "decision_p50_ms": _ms(decision, 50),
        "decision_p90_ms": _ms(decision, 90),
        "decision_p99_ms": _ms(decision, 99),
        "decision_max_ms": _ms(decision, 100),
        "diverts": len(divert),
        "divert_p50_ms": _ms(divert, 50),
        "divert_p99_ms": _ms(divert, 99),
        "late": sum(1 for ev in t.events.values() if is_late(ev)),
        "late_reason": late_reason,
        "decisions": dict(Counter(str(ev.get("decision")) for ev in t.events.values())),
        "divert_outcomes": dict(
            Counter(
                str((ev.get("divert") or {}).get("outcome"))
                for ev in t.events.values()
                if isinstance(ev.get("divert"), dict)
            )
        ),
        "decisions_by_kind": _by_kind(t),
        "reasons": dict(Counter(str(r) for ev in t.events.values() for r in ev.get("reasons") or [])),
        "driver_lag_p99_ms": _ms(t.driver_lag, 99),
        "drained_by": t.drained_by,
        "cpu_s": round(t.cpu_s, 3),
        "cpu_ms_per_parcel": cpu_ms,
        "bare_cpu_ms_per_parcel": None if bare is None else round(bare, 2),
        "bare_images_per_parcel": round(t.bare_images_per_parcel, 2),
        "bare_parallel_cpu_ms_per_parcel": None if par is None else round(par, 2),
        "ratio_parallel": round(cpu_ms / par, 2) if cpu_ms is not None and par else None,
        "ratio": round(cpu_ms / bare, 2) if cpu_ms is not None and bare else None,
    }
