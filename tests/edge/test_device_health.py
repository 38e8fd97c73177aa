"""The station's board: the sorter is probed (red at once when nothing listens), and each device's
changes, not every report, become device_status events for the server."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from pathlib import Path

from edge.health import HealthBoard
from edge.sorter_watch import SorterWatch
from edge.wire import DeviceStatusEvent
from scanner_drivers.sorter.open import open_sorter
from scanner_drivers.sorter.sim import SimulatedSorter
from tests.edge.station_kit import make_agent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tile(board: HealthBoard, name: str) -> dict[str, object]:
    return next(d for d in board.snapshot(0)["devices"] if d["name"] == name)


def test_board_tells_listeners_changes_only() -> None:
    board = HealthBoard(clock=lambda: 0.0)
    board.register("disk", up=True)
    heard: list[tuple[str, bool, str]] = []
    board.listen(lambda *change: heard.append(change), replay=True)
    assert heard == [("disk", True, "not started")]
    board.report("camera", False, "no such device")  # first word of a device: heard
    board.report("camera", False, "no such device")  # the same again: not
    board.report("camera", False, "still no device")  # another detail, still down: not
    board.report("camera", True, "streaming")
    board.seen("camera")  # already up: not
    board.report("disk", False, "disk full")
    board.seen("disk")  # a device heard from again is up again
    assert heard[1:] == [
        ("camera", False, "no such device"),
        ("camera", True, "streaming"),
        ("disk", False, "disk full"),
        ("disk", True, "disk full"),
    ]


def test_watch_turns_the_sorter_tile_red_and_green_with_the_simulator() -> None:
    port = free_port()
    board = HealthBoard()
    link = open_sorter(f"tcp://127.0.0.1:{port}?connect_timeout=0.5")
    watch = SorterWatch(link, board, timeout_s=0.5)
    try:
        assert watch.check_once() is False
        assert tile(board, "sorter")["up"] is False
        sim = SimulatedSorter("tcp", port=port)
        sim.start()
        try:
            assert watch.check_once() is True
            assert tile(board, "sorter") | {"seconds_since_seen": 0} == {
                "name": "sorter",
                "up": True,
                "detail": "connected",
                "seconds_since_seen": 0,
            }
        finally:
            sim.stop()
        assert any(not watch.check_once() for _ in range(100))
        assert tile(board, "sorter")["up"] is False
    finally:
        link.close()


class Exploding:
    url = "tcp://nowhere:1"

    def probe(self, timeout_s: float) -> tuple[bool, str]:
        raise RuntimeError("bug in a driver")


def test_a_probe_that_raises_shows_red_and_does_not_stop_the_watch() -> None:
    board = HealthBoard()
    watch = SorterWatch(Exploding(), board)  # type: ignore[arg-type]
    assert watch.check_once() is False
    assert "RuntimeError" in str(tile(board, "sorter")["detail"])


def test_station_with_an_unreachable_sorter_is_red_from_the_start_and_tells_the_server(
    tmp_path: Path, seed_registry: Callable[..., None]
) -> None:
    agent = make_agent(tmp_path, seed_registry, f"tcp://127.0.0.1:{free_port()}?connect_timeout=0.5")
    try:
        # Before any probe or divert: not green.
        assert tile(agent.health, "sorter") | {"seconds_since_seen": 0} == {
            "name": "sorter",
            "up": False,
            "detail": "checking the connection",
            "seconds_since_seen": 0,
        }
        assert agent.sorter_watch is not None
        agent.sorter_watch.check_once()
        agent.sorter_watch.check_once()  # down twice: one event, not two
    finally:
        agent.stop()
    states = [(e.device, e.up) for e in agent.store.events(1000) if isinstance(e, DeviceStatusEvent)]
    assert ("sorter", False) in states
    assert states.count(("sorter", False)) == 1
    assert {"disk", "scanner", "model", "sorter"} <= {d for d, _ in states}


class Counting:
    url = "tcp://counting:1"

    def __init__(self) -> None:
        self.calls = 0
        self.twice = threading.Event()

    def probe(self, timeout_s: float) -> tuple[bool, str]:
        self.calls += 1
        if self.calls >= 2:
            self.twice.set()
        return self.calls >= 2, "connected" if self.calls >= 2 else "sorter unreachable: timed out"


def test_the_watch_thread_probes_at_once_and_then_again_until_stopped() -> None:
    board = HealthBoard()
    link = Counting()
    watch = SorterWatch(link, board, interval_s=0.01)  # type: ignore[arg-type]
    watch.start()
    try:
        assert link.twice.wait(5.0)
    finally:
        watch.stop()
    calls = link.calls
    assert tile(board, "sorter")["up"] is True
    assert watch._thread is not None and not watch._thread.is_alive()
    assert link.calls == calls  # stopped means no more probes


def test_request_mode_probe_reads_the_destination_links_state() -> None:
    from edge.destination import AnsweringLink
    from scanner_drivers.sorter.open import open_destination_link
    from scanner_drivers.sorter.request_sim import SimulatedRequestSorter

    sim = SimulatedRequestSorter()
    url = sim.start()
    link = AnsweringLink(open_destination_link(url))
    try:
        # Not started: nothing connected yet, so not up (and the probe connects nothing itself).
        assert link.probe(0.5) == (False, "controller unreachable: not connected")
        connected = threading.Event()
        link.link.start(lambda _r: None, lambda _d, up, _t: connected.set() if up else None)
        assert connected.wait(5.0)
        assert link.probe(0.5) == (True, "connected")
    finally:
        link.close()
        sim.stop()
