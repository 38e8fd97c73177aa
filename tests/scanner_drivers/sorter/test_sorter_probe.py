"""A divert link's probe: red when nothing listens, green once the controller is there, red again
when it goes away; it never sends a divert."""

from __future__ import annotations

import socket
import threading

from scanner_drivers.sorter.open import open_sorter
from scanner_drivers.sorter.sim import SimulatedSorter

# Upper bound on the real socket events the test waits for (reader noticing a close): not a clock.
SETTLE_TRIES = 100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def probe_until(link_probe: object, want: bool) -> tuple[bool, str]:
    """Probe until the link shows `want`, waiting for the link's own threads between tries."""
    assert callable(link_probe)
    got: tuple[bool, str] = (not want, "")
    pause = threading.Event()
    for _ in range(SETTLE_TRIES):
        got = link_probe(0.5)
        if got[0] == want:
            return got
        pause.wait(0.02)
    return got


def test_telegram_probe_follows_the_controller() -> None:
    port = free_port()
    link = open_sorter(f"tcp://127.0.0.1:{port}?connect_timeout=0.5")
    try:
        up, detail = link.probe(0.5)
        assert not up
        assert "unreachable" in detail and "refused" in detail.lower()
        sim = SimulatedSorter("tcp", port=port)
        sim.start()
        try:
            assert link.probe(0.5) == (True, "connected")
            # A second probe reuses the connection (and its heartbeat is ignored by the controller).
            assert link.probe(0.5) == (True, "connected")
            assert sim.diverts_received == 0
        finally:
            sim.stop()
        up, detail = probe_until(link.probe, False)
        assert not up and "unreachable" in detail
        # Back again at the same address: green without a divert.
        sim = SimulatedSorter("tcp", port=port)
        sim.start()
        try:
            assert probe_until(link.probe, True) == (True, "connected")
            assert link.divert("EA1", 2.0).outcome == "DIVERTED"
        finally:
            sim.stop()
    finally:
        link.close()


def test_modbus_probe_reads_without_diverting() -> None:
    sim = SimulatedSorter("modbus")
    sim.start()
    link = open_sorter(sim.url + "&ack_timeout=0.5")
    try:
        assert link.probe(1.0) == (True, "connected")
        assert sim.diverts_received == 0
    finally:
        sim.stop()
    try:
        up, detail = probe_until(link.probe, False)
        assert not up and "unreachable" in detail
    finally:
        link.close()


def test_probe_of_a_closed_link_is_down() -> None:
    link = open_sorter(f"tcp://127.0.0.1:{free_port()}")
    link.close()
    assert link.probe(0.5) == (False, "link is closed")
