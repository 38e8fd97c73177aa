"""The parcel path off the drivers' threads: enqueue only, deadlines from the read, in-flight diverts."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edge.agent import EdgeAgent
from edge.config import ClassifierConfig, DevicesConfig, EdgeConfig, SorterConfig, StationConfig
from edge.dispatch import DivertDispatcher
from edge.store import DivertIntent
from scanner_drivers.sorter.sim import SimulatedSorter
from tests.edge.conftest import W_BLACK, W_GOOD
from tests.edge.station_kit import alerts, make_agent, outcomes, parcels, scan


def test_on_read_only_enqueues(
    tmp_path: Path, seed_registry: Callable[..., None], sim: SimulatedSorter
) -> None:
    agent = make_agent(tmp_path, seed_registry, sim.url, divert_budget_s=30)
    # Before the worker runs, reads are taken and nothing is processed on the caller's thread.
    for _ in range(3):
        agent.on_read(scan(W_BLACK))
    assert parcels(agent) == [] and sim.diverts_received == 0
    agent.start()
    assert agent.drain(20)
    assert [p.decision for p in parcels(agent)] == ["PULL"] * 3
    assert [o.outcome for o in outcomes(agent)] == ["DIVERTED"] * 3
    agent.stop()


def test_diverts_are_in_flight_together(tmp_path: Path, seed_registry: Callable[..., None]) -> None:
    # The controller confirms each divert when its parcel reaches the chute, seconds later.
    slow = SimulatedSorter(result_delay_s=3.0)
    slow.start()
    agent = make_agent(tmp_path, seed_registry, slow.url, divert_budget_s=30)
    agent.start()
    for _ in range(5):
        agent.on_read(scan(W_BLACK))
    deadline = time.monotonic() + 10
    while slow.diverts_received < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    # All five reached the controller while the first was still unconfirmed, each already on record.
    assert slow.diverts_received == 5
    assert outcomes(agent) == []
    assert [p.divert.outcome if p.divert else None for p in parcels(agent)] == ["PENDING"] * 5
    assert len(agent.store.open_intents()) == 5
    assert agent.drain(30)
    assert [o.outcome for o in outcomes(agent)] == ["DIVERTED"] * 5
    assert agent.store.open_intents() == []
    agent.stop()
    slow.stop()


def test_a_parcel_past_its_divert_point_is_held_late(
    tmp_path: Path, seed_registry: Callable[..., None], sim: SimulatedSorter
) -> None:
    agent = make_agent(tmp_path, seed_registry, sim.url, scan_to_divert_m=3.0, belt_speed_m_s=2.0)
    assert agent.cfg.sorter.budget_s == 1.5
    feed = agent.feed.subscribe()
    agent.start()
    agent.on_read(scan(W_GOOD, ago_s=5.0))  # the queue behind made it late: never cleared unseen
    agent.on_read(scan(W_BLACK, ago_s=5.0))
    agent.on_read(scan(W_GOOD))  # in time
    agent.on_read(scan(W_BLACK, ago_s=-3600))  # stamped in the future: given the budget from now
    assert agent.drain(20)
    late_good, late_black, fresh, future = parcels(agent)
    assert future.decision == "PULL" and future.divert is not None and future.divert.outcome == "PENDING"
    assert (late_good.decision, late_good.reasons) == ("HOLD", ["LATE"])
    assert (late_black.decision, late_black.reasons) == ("PULL", ["SENDER_BLACKLISTED", "LATE"])
    for ev in (late_good, late_black):
        assert ev.divert is not None and ev.divert.outcome == "LATE"
    assert fresh.decision == "CLEAR"
    # A divert that cannot reach its point is not sent; the operator is told to pull by hand.
    assert sim.tracking_ids == [W_BLACK]
    got = [(a["kind"], a["tracking_id"], a["divert"]) for a in alerts(feed)]
    assert got == [
        ("divert_failed", late_good.tracking_id, "LATE"),
        ("divert_failed", late_black.tracking_id, "LATE"),
        ("pull", future.tracking_id, "PENDING"),
    ]
    agent.stop()


def test_dispatcher_does_not_send_a_divert_that_is_too_late(tmp_path: Path, sim: SimulatedSorter) -> None:
    agent = make_agent(tmp_path, lambda _s: None, sim.url)
    now = {"t": 100.0}
    pipe = agent.pipeline
    dispatcher = DivertDispatcher(
        agent.cfg.sorter,
        agent.sorter,
        agent.store,
        pipe.recorder,
        agent.feed,
        agent.health,
        pipe._stamp,
        agent.clock,
        lambda: now["t"],
    )
    intent = DivertIntent("t-1", "k-1", W_GOOD, W_GOOD, "HOLD", "H1")
    agent.store.append_events([], intents=[intent])
    dispatcher.submit(intent, deadline_at=100.04)  # less than the 50 ms a command needs
    assert dispatcher.drain(10)
    (ev,) = outcomes(agent)
    assert (ev.tracking_id, ev.outcome) == ("t-1", "LATE")
    assert sim.diverts_received == 0 and agent.store.open_intents() == []
    dispatcher.stop()
    agent.stop()


def test_sorter_gets_the_controllers_id_then_the_waybill(
    tmp_path: Path, seed_registry: Callable[..., None], sim: SimulatedSorter
) -> None:
    agent = make_agent(tmp_path, seed_registry, sim.url, divert_budget_s=30)
    agent.start()
    agent.on_read(scan(W_BLACK, carrier_id="PLC-0042"))
    agent.on_read(scan(W_BLACK))
    agent.on_read(scan("NOT-A-WAYBILL"))
    agent.on_read(scan())
    assert agent.drain(20)
    evs = parcels(agent)
    assert [e.sorter_id for e in evs[:3]] == ["PLC-0042", W_BLACK, "NOT-A-WAYBILL"]
    # Nothing read at all: only then the station's own tracking id.
    assert evs[3].sorter_id == evs[3].tracking_id
    assert sorted(sim.tracking_ids) == sorted(e.sorter_id or "" for e in evs)
    agent.stop()


@pytest.mark.parametrize(("protocol", "code"), [("tcp", "X" * 80), ("modbus", "X" * 21)])
def test_an_id_the_link_refuses_is_a_recorded_divert_failure(
    tmp_path: Path, seed_registry: Callable[..., None], protocol: str, code: str
) -> None:
    # A telegram field carries 64 characters, a Modbus mailbox 20.
    sim = SimulatedSorter(protocol)
    sim.start()
    # Modbus chutes are numbers; a telegram link takes them too.
    agent = make_agent(tmp_path, seed_registry, sim.url, divert_budget_s=30, hold_chute="2", pull_chute="1")
    feed = agent.feed.subscribe()
    agent.start()
    agent.on_read(scan(code))
    agent.on_read(scan(code[:20]))  # fits both
    assert agent.drain(20)
    refused, fits = parcels(agent)
    by_id = {o.tracking_id: o for o in outcomes(agent)}
    out = by_id[refused.tracking_id]
    assert refused.decision == "HOLD" and out.outcome == "NOT_SENT" and "link refused" in out.detail
    assert by_id[fits.tracking_id].outcome == "DIVERTED"
    assert sim.tracking_ids == [code[:20]]
    assert [(a["kind"], a["divert"]) for a in alerts(feed)] == [("divert_failed", "NOT_SENT")]
    agent.stop()
    sim.stop()


def test_open_intents_become_unknown_at_restart(
    tmp_path: Path, seed_registry: Callable[..., None], sim: SimulatedSorter
) -> None:
    first = make_agent(tmp_path, seed_registry, sim.url)
    # As a kill between the intent and the outcome leaves it: the intent is recorded, nothing after.
    first.store.append_events(
        [], intents=[DivertIntent("t-9", "k-9", W_BLACK, W_BLACK, "PULL", "P1", ("o1",))]
    )
    first.store.close()
    again = make_agent(tmp_path, seed_registry, sim.url)
    feed = again.feed.subscribe()
    again.start(scanner=False)
    (ev,) = outcomes(again)
    assert (ev.tracking_id, ev.outcome, ev.decision) == ("t-9", "UNKNOWN", "PULL")
    statuses = [e for e in again.store.events(100) if e.type == "order_status"]
    assert [(s.order_id, s.state) for s in statuses] == [("o1", "missed")]
    assert [(a["kind"], a["divert"]) for a in alerts(feed)] == [("divert_failed", "UNKNOWN")]
    assert again.store.open_intents() == []
    again.stop()


def test_terminal_list_shows_the_divert_outcome_not_the_intent(
    tmp_path: Path, seed_registry: Callable[..., None], sim: SimulatedSorter
) -> None:
    from edge.web.views import recent_parcels

    agent = make_agent(tmp_path, seed_registry, sim.url, divert_budget_s=30)
    agent.start()
    agent.on_read(scan(W_BLACK))
    agent.on_read(scan("NOT-A-WAYBILL", ago_s=60))  # late: the operator must pull it by hand
    assert agent.drain(20)
    late, pulled = recent_parcels(agent.store, 10, datetime.now(UTC))
    assert (pulled["divert"], pulled["chute"], pulled["alert"]) == ("DIVERTED", "P1", True)
    assert (late["decision"], late["divert"], late["alert"]) == ("HOLD", "LATE", True)
    agent.stop()


def test_parcels_assessed_together_are_recorded_in_read_order(
    tmp_path: Path, seed_registry: Callable[..., None], sim: SimulatedSorter
) -> None:
    agent = make_agent(tmp_path, seed_registry, sim.url, ClassifierConfig(parcels=3), divert_budget_s=30)
    agent.start()
    codes = [f"K-{i}" if i % 3 else (W_BLACK if i % 2 else W_GOOD) for i in range(30)]
    for code in codes:
        agent.on_read(scan(code))
    assert agent.drain(30)
    evs = parcels(agent)
    assert [e.codes[0] for e in evs] == codes
    assert [e.seq for e in evs] == sorted(e.seq for e in evs)
    assert len(outcomes(agent)) == sum(e.decision != "CLEAR" for e in evs)
    agent.stop()


def test_camera_frame_is_taken_off_the_scanners_thread(
    tmp_path: Path, seed_registry: Callable[..., None], sim: SimulatedSorter
) -> None:
    """A no-read whose label the camera saw: the frame is added on the intake's thread, then decoded."""
    import threading

    from edge.demo_images import parcel_photo

    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "0001.jpg").write_bytes(parcel_photo(W_GOOD, seed=1))
    replay = tmp_path / "none.jsonl"
    replay.write_text("", encoding="utf-8")
    cfg = EdgeConfig(
        station=StationConfig(id="S1", site_id="SITE", line_id="L1", data_dir=tmp_path / "edge"),
        devices=DevicesConfig(scanner=f"fake://{replay}?speed=0", camera=f"images://{frames}?encode=png"),
        sorter=SorterConfig(url=sim.url, divert_budget_s=30),
    )
    agent = EdgeAgent(cfg)
    seed_registry(agent.store)
    capturing: list[str] = []
    assert agent.intake.camera is not None
    capture = agent.intake.camera.capture

    def watched(timeout_s: float = 1.0, at_monotonic: float | None = None) -> Any:  # the hardware edge
        capturing.append(threading.current_thread().name)
        return capture(timeout_s, at_monotonic)

    agent.intake.camera.capture = watched  # type: ignore[method-assign]
    agent.start()
    agent.on_read(scan())
    assert agent.drain(20)
    (ev,) = parcels(agent)
    assert (ev.waybill, ev.decision, [i.kind for i in ev.images]) == (W_GOOD, "CLEAR", ["label"])
    assert capturing and threading.current_thread().name not in capturing
    agent.stop()


def test_the_waybill_is_read_from_the_label_photo_not_from_the_goods_photo(
    tmp_path: Path, seed_registry: Callable[..., None], sim: SimulatedSorter
) -> None:
    from edge.demo_images import parcel_photo
    from scanner_drivers.types import ImageCapture

    def photo(kind: Any, waybill: str) -> ImageCapture:
        return ImageCapture(kind, parcel_photo(waybill, seed=3), f"{kind}.jpg", "", "image/jpeg")

    agent = make_agent(tmp_path, seed_registry, sim.url, divert_budget_s=30)
    agent.start()
    # The scanner read nothing; the label says W_GOOD, a code on the goods says W_BLACK (a product
    # or another parcel's code): only the label counts, so there is no conflict and no wrong pull.
    both = scan()
    agent.on_read(dataclasses.replace(both, images=(photo("label", W_GOOD), photo("camera", W_BLACK))))
    # A station with a package camera only: its photo is read, as it may show the label.
    agent.on_read(dataclasses.replace(scan(), images=(photo("camera", W_GOOD),)))
    assert agent.drain(30)
    first, second = parcels(agent)
    assert (first.waybill, first.decision) == (W_GOOD, "CLEAR")
    assert (second.waybill, second.decision) == (W_GOOD, "CLEAR")
    agent.stop()
