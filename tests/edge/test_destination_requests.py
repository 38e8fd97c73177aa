"""A station whose sorter controller asks for destinations: requests are reads, decisions the answers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from edge.agent import EdgeAgent
from edge.config import DevicesConfig, EdgeConfig, SorterConfig, StationConfig
from edge.wire import DivertOutcomeEvent, ParcelEvent
from scanner_drivers.sorter.request_sim import SimulatedRequestSorter
from tests.edge.conftest import W_BLACK, W_GOOD


def request_station(tmp_path: Path, seed: Callable[..., None], url: str, **sorter: object) -> EdgeAgent:
    cfg = EdgeConfig(
        station=StationConfig(id="SZX-HUB1-L3-XR1", site_id="SITE", line_id="L3", data_dir=tmp_path / "edge"),
        devices=DevicesConfig(),
        sorter=SorterConfig(url=url, pull_chute="P1", hold_chute="H1", **sorter),
    )
    agent = EdgeAgent(cfg)
    seed(agent.store)
    return agent


def test_every_request_is_answered_with_the_decision_under_the_controllers_id(
    tmp_path: Path, seed_registry: Callable[..., None]
) -> None:
    sim = SimulatedRequestSorter("tcp", deadline_s=5.0, chutes={"P1", "H1"})
    url = sim.start()
    agent = request_station(tmp_path, seed_registry, url, divert_budget_s=10)
    agent.start()
    try:
        assert sim.wait_connected(10)
        pulled = sim.ask((W_BLACK,))
        cleared = sim.ask((W_GOOD,))
        held = sim.ask(())  # the controller's scanner read nothing
        assert sim.wait_settled(3, 20)
        assert agent.drain(20)
        got = {c: (o.status, o.chute) for c, o in sim.outcomes.items()}
        assert got == {pulled: ("ANSWERED", "P1"), cleared: ("ANSWERED", None), held: ("ANSWERED", "H1")}
        events = [e for e in agent.store.events(100) if isinstance(e, ParcelEvent)]
        by_carrier = {e.sorter_id: e.decision for e in events}
        assert by_carrier == {pulled: "PULL", cleared: "CLEAR", held: "HOLD"}
        stored = agent.store.events(100)
        diverts = {e.sorter_id: e.outcome for e in stored if isinstance(e, DivertOutcomeEvent)}
        assert diverts == {pulled: "DIVERTED", held: "DIVERTED"}
    finally:
        agent.stop()
        sim.stop()


def test_a_parcel_decided_after_the_controllers_deadline_is_held_late(
    tmp_path: Path, seed_registry: Callable[..., None]
) -> None:
    # The controller waits 50 ms at most: with the station's own budget of 10 s the request's
    # deadline still rules, and a parcel that cannot be answered in time is recorded as LATE.
    sim = SimulatedRequestSorter("tcp", deadline_s=0.05, chutes={"P1", "H1"})
    url = sim.start()
    agent = request_station(tmp_path, seed_registry, url, divert_budget_s=10, send_margin_s=0.2)
    agent.start()
    try:
        assert sim.wait_connected(10)
        carrier = sim.ask((W_BLACK,))
        assert sim.wait_settled(1, 20)
        assert agent.drain(20)
        assert sim.outcomes[carrier].status == "DEFAULTED"
        (event,) = [e for e in agent.store.events(100) if isinstance(e, ParcelEvent)]
        assert event.sorter_id == carrier and event.divert is not None and event.divert.outcome == "LATE"
    finally:
        agent.stop()
        sim.stop()


def test_request_mode_and_a_scanner_are_one_source_each(tmp_path: Path) -> None:
    station = StationConfig(id="S1", site_id="SITE", line_id="L1", data_dir=tmp_path)
    with pytest.raises(ValueError, match=r"leave devices\.scanner unset"):
        EdgeConfig(
            station=station,
            devices=DevicesConfig(scanner="socket://127.0.0.1:7000"),
            sorter=SorterConfig(url="tcp://127.0.0.1:9000?mode=request"),
        )
    with pytest.raises(ValueError, match=r"devices\.scanner is required"):
        EdgeConfig(station=station, devices=DevicesConfig(), sorter=SorterConfig(url="tcp://127.0.0.1:9000"))
