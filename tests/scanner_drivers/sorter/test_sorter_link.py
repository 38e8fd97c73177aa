"""Sorter link over TCP and a serial pty against the simulated controller and a hand-written fake one."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from scanner_drivers.sorter import telegram
from scanner_drivers.sorter.link import DivertResult
from scanner_drivers.sorter.open import open_sorter
from scanner_drivers.sorter.sim import SimulatedSorter
from scanner_drivers.types import DeviceUrlError

# Generous bound: proves "returns around its deadline, never hangs", not a performance figure.
HANG_MARGIN_S = 2.0


@pytest.fixture(params=["tcp", "serial"])
def protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sim(protocol: str) -> Iterator[SimulatedSorter]:
    s = SimulatedSorter(protocol, miss=lambda tid: tid.startswith("MISS"), chutes={"R1", "R2", "REJECT"})
    s.start()
    yield s
    s.stop()


def test_divert_confirmed_and_missed(sim: SimulatedSorter) -> None:
    link = open_sorter(sim.url)
    try:
        ok = link.divert("EA123456785CN", 2.0)
        assert ok == DivertResult("DIVERTED", "REJECT", "confirmed by the controller")
        assert link.divert("EA123456785CN", 2.0, chute="R2").chute == "R2"
        missed = link.divert("MISS-1", 2.0)
        assert missed.outcome == "MISSED"
        assert "not seen" in missed.detail
    finally:
        link.close()
    assert (sim.diverts_received, sim.diverts_acknowledged, sim.missed) == (3, 3, 1)
    assert sim.tracking_ids == ["EA123456785CN", "EA123456785CN", "MISS-1"]


def test_default_chute_from_url_and_nak_is_missed(sim: SimulatedSorter) -> None:
    link = open_sorter(sim.url + ("&" if "?" in sim.url else "?") + "chute=R1")
    try:
        assert link.divert("T1", 2.0).chute == "R1"
        refused = link.divert("T2", 2.0, chute="NOPE")
        assert refused.outcome == "MISSED"
        assert "NAK" in refused.detail and "unknown chute" in refused.detail
    finally:
        link.close()
    assert sim.diverts_received == 1


def test_concurrent_diverts_are_matched_by_sequence(protocol: str) -> None:
    sim = SimulatedSorter(protocol, miss=lambda tid: int(tid[1:]) % 5 == 0, result_delay_s=0.05)
    url = sim.start()
    link = open_sorter(url)
    results: dict[str, DivertResult] = {}

    def one(i: int) -> None:
        results[f"P{i}"] = link.divert(f"P{i}", 5.0)

    try:
        threads = [threading.Thread(target=one, args=(i,)) for i in range(1, 31)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        link.close()
        sim.stop()
    for i in range(1, 31):
        assert results[f"P{i}"].outcome == ("MISSED" if i % 5 == 0 else "DIVERTED"), i
    assert (sim.diverts_received, sim.missed) == (30, 6)


def test_reconnects_after_the_controller_drops_the_connection() -> None:
    sim = SimulatedSorter("tcp")
    link = open_sorter(sim.start())
    try:
        assert link.divert("A", 2.0).outcome == "DIVERTED"
        sim.disconnect_clients()
        # The first divert after the drop may find the dead socket; it must reconnect by itself.
        assert link.divert("B", 2.0).outcome == "DIVERTED"
        assert link.divert("C", 2.0).outcome == "DIVERTED"
    finally:
        link.close()
        sim.stop()
    assert sim.diverts_received == 3


def test_no_ack_times_out_within_the_deadline(protocol: str) -> None:
    sim = SimulatedSorter(protocol, drop=lambda tid: tid == "SILENT")
    link = open_sorter(sim.start() + ("&" if protocol == "serial" else "?") + "ack_timeout=0.2")
    try:
        start = time.monotonic()
        res = link.divert("SILENT", 1.0)
        assert time.monotonic() - start < 1.0 + HANG_MARGIN_S
        assert res.outcome == "TIMEOUT"
        assert "no ACK" in res.detail
        # The link drops the unresponsive connection and works again on the next divert.
        assert link.divert("LOUD", 2.0).outcome == "DIVERTED"
    finally:
        link.close()
        sim.stop()


def test_acknowledged_but_no_result_before_deadline() -> None:
    sim = SimulatedSorter("tcp", result_delay_s=3.0)
    link = open_sorter(sim.start())
    try:
        start = time.monotonic()
        res = link.divert("SLOW", 0.3)
        assert time.monotonic() - start < 0.3 + HANG_MARGIN_S
        assert res == DivertResult("TIMEOUT", None, "acknowledged, but no result before the deadline")
    finally:
        link.close()
        sim.stop()


def test_device_down_returns_timeout_without_raising() -> None:
    # Bind and close a socket so the port is known to be free (connection refused).
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    link = open_sorter(f"tcp://127.0.0.1:{port}?connect_timeout=0.2")
    for _ in range(3):
        res = link.divert("X1", 0.5)
        assert res.outcome == "TIMEOUT"
        assert res.detail.startswith("sorter unreachable")
    link.close()
    assert link.divert("X1", 0.5) == DivertResult("TIMEOUT", None, "link is closed")


def test_missing_serial_device_returns_timeout() -> None:
    link = open_sorter("serial:///dev/does-not-exist-sorter?baudrate=19200")
    res = link.divert("X1", 0.5)
    assert res.outcome == "TIMEOUT" and "unreachable" in res.detail


def test_zero_deadline_is_a_timeout_not_a_hang() -> None:
    sim = SimulatedSorter("tcp")
    link = open_sorter(sim.start())
    try:
        assert link.divert("LATE", 0.0).outcome == "TIMEOUT"
        assert link.divert("LATE", -5.0).outcome == "TIMEOUT"
    finally:
        link.close()
        sim.stop()


class _FlakyController:
    """Closes the first connection right after reading a DIV; answers later ones with noise first."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(4)
        self.received: list[bytes] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.server.getsockname()[1]}"

    def _run(self) -> None:
        first, _ = self.server.accept()
        self.received.append(first.recv(1024))
        first.close()
        conn, _ = self.server.accept()
        data = conn.recv(1024)
        self.received.append(data)
        seq = telegram.decode(data[1:-1]).seq
        noise = b"\xff\xfe garbage \x00" + telegram.encode("HB", None) + b"\x02BOGUS|1\x03"
        conn.sendall(noise + telegram.encode("ACK", seq)[:3])
        conn.sendall(telegram.encode("ACK", seq)[3:] + telegram.encode("RES", seq, "DIVERTED", "R9"))
        conn.recv(1024)
        conn.close()


def test_resends_once_with_the_same_sequence_after_a_lost_connection() -> None:
    ctl = _FlakyController()
    link = open_sorter(ctl.url)
    try:
        res = link.divert("EA1", 3.0)
    finally:
        link.close()
    assert res == DivertResult("DIVERTED", "R9", "confirmed by the controller")
    first, second = (telegram.decode(r[1:-1]) for r in ctl.received)
    assert (first.seq, first.fields[:2]) == (second.seq, second.fields[:2])
    # The resend carries what is left of the deadline, never more.
    assert int(second.fields[2]) <= int(first.fields[2])


@pytest.mark.parametrize(
    "url",
    [
        "tcp://",
        "tcp://127.0.0.1",
        "tcp://127.0.0.1:99999",
        "tcp://127.0.0.1:0",
        "tcp://127.0.0.1:5000?ack_timeout=abc",
        "tcp://127.0.0.1:5000?ack_timeout=0",
        "tcp://127.0.0.1:5000?bogus=1",
        "tcp://127.0.0.1:5000?ack_timeout=1&ack_timeout=2",
        "tcp://127.0.0.1:5000/path",
        "tcp://127.0.0.1:5000?chute=A|B",
        "serial://dev/ttyS0",
        "serial:///dev/ttyS0?baudrate=fast",
        "ftp://127.0.0.1:21",
        "127.0.0.1:5000",
    ],
)
def test_malformed_urls_raise(url: str) -> None:
    with pytest.raises(DeviceUrlError):
        open_sorter(url)


@pytest.mark.parametrize("tid", ["", "A|B", "A\x02B", "运单123", "X" * 65])
def test_tracking_ids_a_telegram_cannot_carry_are_refused(tid: str) -> None:
    link = open_sorter("tcp://127.0.0.1:9")
    with pytest.raises(telegram.TelegramError):
        link.divert(tid, 0.1)


@pytest.mark.parametrize(
    "payload",
    [b"", b"ACK", b"ACK|x", b"RES|1", b"RES|1|MAYBE", b"DIV|1|T|C|soon", b"\xff", b"ACK|1\x01", b"ZZZ|1"],
)
def test_bad_telegrams_are_rejected(payload: bytes) -> None:
    with pytest.raises(telegram.TelegramError):
        telegram.decode(payload)


def test_simulator_naks_garbage_and_ignores_replies() -> None:
    sim = SimulatedSorter("tcp")
    assert sim.handle(b"nonsense")[0][1].startswith(b"\x02NAK|0|")
    assert sim.handle(b"ACK|5") == []
    assert sim.diverts_received == 0


def test_a_flood_of_junk_from_the_controller_is_survived() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def controller() -> None:
        conn, _ = server.accept()
        seq = telegram.decode(conn.recv(1024)[1:-1]).seq
        junk = b"\x02" + b"Z" * 100_000 + b"\xff" * 1000 + b"\x03\x03\x02\x02"
        conn.sendall(junk + telegram.encode("ACK", seq) + telegram.encode("RES", seq, "DIVERTED", "R1"))
        conn.recv(1024)
        conn.close()

    t = threading.Thread(target=controller, daemon=True)
    t.start()
    link = open_sorter(f"tcp://127.0.0.1:{server.getsockname()[1]}")
    try:
        assert link.divert("EA1", 5.0).outcome == "DIVERTED"
    finally:
        link.close()
        server.close()


def test_serial_line_vanishing_gives_timeouts_not_exceptions() -> None:
    sim = SimulatedSorter("serial")
    link = open_sorter(sim.start() + "&ack_timeout=0.2")
    try:
        assert link.divert("A", 2.0).outcome == "DIVERTED"
        sim.stop()
        for _ in range(2):
            assert link.divert("B", 0.5).outcome == "TIMEOUT"
    finally:
        link.close()
