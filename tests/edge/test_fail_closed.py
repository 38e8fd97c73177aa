"""Fail closed: a failure at any stage holds the parcel, records why, alerts, counts; a full disk waits."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edge.recorder import Recorder
from scanner_drivers.sorter.sim import SimulatedSorter
from tests.edge.conftest import W_BLACK, W_GOOD
from tests.edge.station_kit import alerts, make_agent, outcomes, parcels, scan


class InjectedFault(RuntimeError):
    """Raised by a stage on purpose."""


def _boom(*_args: Any, **_kw: Any) -> Any:
    raise InjectedFault("injected")


STAGES = ("identify", "lookup", "classify", "decide", "record")


@pytest.mark.parametrize("stage", STAGES)
def test_a_failure_at_any_stage_holds_and_records_the_parcel(
    tmp_path: Path,
    seed_registry: Callable[..., None],
    sim: SimulatedSorter,
    monkeypatch: pytest.MonkeyPatch,
    stage: str,
) -> None:
    agent = make_agent(tmp_path, seed_registry, sim.url, divert_budget_s=30)
    feed = agent.feed.subscribe()
    if stage == "identify":
        monkeypatch.setattr(agent.pipeline.matcher, "identify", _boom)
    elif stage == "lookup":
        monkeypatch.setattr(agent.store, "manifest", _boom)
    elif stage == "classify":
        monkeypatch.setattr(agent.classifier, "run", _boom)
    elif stage == "decide":
        monkeypatch.setattr("edge.pipeline.decide", _boom)
    else:
        real = agent.store.append_events
        calls = {"n": 0}

        def first_parcel_write_fails(events: Any, *args: Any, **kw: Any) -> None:
            evs = list(events)
            if any(e.type == "parcel" for e in evs) and not calls["n"]:
                calls["n"] += 1
                raise InjectedFault("record")
            real(evs, *args, **kw)

        monkeypatch.setattr(agent.store, "append_events", first_parcel_write_fails)
    agent.start()
    agent.on_read(scan(W_GOOD))  # a parcel that would have been cleared
    assert agent.drain(20)
    (ev,) = parcels(agent)
    assert (ev.decision, ev.reasons, ev.error) == ("HOLD", ["PROCESSING_ERROR"], "InjectedFault")
    assert (ev.codes, ev.sorter_id, ev.waybill) == ([W_GOOD], W_GOOD, None)
    # Physically held: diverted to the hold chute, and the outcome recorded.
    (out,) = outcomes(agent)
    assert (out.tracking_id, out.outcome, out.chute) == (ev.tracking_id, "DIVERTED", "H1")
    assert sim.tracking_ids == [ev.sorter_id]
    got = [(a["kind"], a.get("error")) for a in alerts(feed)]
    assert got == [("processing_error", "InjectedFault")]
    tiles = {d["name"]: d for d in agent.health.snapshot(0)["devices"]}
    assert agent.errors == 1 and not tiles["pipeline"]["up"]
    agent.stop()


def test_a_failing_divert_is_recorded_and_alerted(
    tmp_path: Path, seed_registry: Callable[..., None], sim: SimulatedSorter, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = make_agent(tmp_path, seed_registry, sim.url, divert_budget_s=30)
    assert agent.sorter is not None
    monkeypatch.setattr(agent.sorter, "divert", _boom)
    feed = agent.feed.subscribe()
    agent.start()
    agent.on_read(scan(W_BLACK))
    assert agent.drain(20)
    (ev,) = parcels(agent)
    (out,) = outcomes(agent)
    assert ev.decision == "PULL" and out.outcome == "NOT_SENT"
    assert out.detail == "PROCESSING_ERROR: InjectedFault"
    assert [(a["kind"], a["divert"]) for a in alerts(feed)] == [
        ("pull", "PENDING"),
        ("divert_failed", "NOT_SENT"),
    ]
    assert agent.store.open_intents() == []
    agent.stop()


def test_disk_full_records_are_retried_then_flushed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edge.errors import StoreError
    from edge.feed import StationFeed
    from edge.health import HealthBoard
    from edge.recorder import Record
    from edge.store import EdgeStore
    from edge.wire import DeviceStatusEvent

    store = EdgeStore(tmp_path / "s.db")
    feed = StationFeed()
    recorder = Recorder(store, feed, HealthBoard(), retry_s=0.01)
    real = store.append_events
    full = {"on": True}

    def disk(*args: Any, **kw: Any) -> None:  # the disk is the hardware edge
        if full["on"]:
            raise StoreError("database or disk is full")
        real(*args, **kw)

    monkeypatch.setattr(store, "append_events", disk)

    def event(n: int) -> DeviceStatusEvent:
        return DeviceStatusEvent(**store.stamp("S1", "b1", datetime.now(UTC)), device=f"d{n}", up=True)

    assert not recorder.record(Record((event(1),)))
    assert not recorder.record(Record((event(2),)))
    assert recorder.unsaved == 2 and store.events(10) == []
    recorder.start()
    full["on"] = False  # space freed: the timer writes them without a new parcel coming
    deadline = time.monotonic() + 10
    while recorder.unsaved and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [e.device for e in store.events(10)] == ["d1", "d2"]  # type: ignore[union-attr]
    full["on"] = True
    recorder.record(Record((event(3),)))
    recorder.stop()  # still full at shutdown: lost, loudly
    assert recorder.lost == 1
    assert [i["kind"] for i in feed.recent("alert")][-1] == "store_lost"
    store.close()


def test_with_the_disk_full_the_parcel_is_still_diverted_and_its_records_keep_their_order(
    tmp_path: Path, seed_registry: Callable[..., None], sim: SimulatedSorter, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edge.errors import StoreError

    agent = make_agent(tmp_path, seed_registry, sim.url, divert_budget_s=30)
    real = agent.store.append_events
    full = {"on": True}

    def disk(*args: Any, **kw: Any) -> None:  # the disk is the hardware edge
        if full["on"]:
            raise StoreError("database or disk is full")
        real(*args, **kw)

    monkeypatch.setattr(agent.store, "append_events", disk)
    agent.start()
    agent.on_read(scan(W_BLACK))
    assert agent.drain(20)
    # Pulled all the same; the intent and then its outcome wait in memory, in that order.
    assert sim.tracking_ids == [W_BLACK]
    # (with the scanner's own status records, which no longer stop it when they cannot be written)
    assert agent.pipeline.recorder.unsaved >= 2 and parcels(agent) == []
    full["on"] = False
    assert agent.pipeline.recorder.retry()
    (ev,) = parcels(agent)
    (out,) = outcomes(agent)
    assert (ev.decision, out.tracking_id, out.outcome) == ("PULL", ev.tracking_id, "DIVERTED")
    assert agent.store.open_intents() == []
    agent.stop()
