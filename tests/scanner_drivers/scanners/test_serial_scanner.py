"""The serial scanner driver over loop://, pty pairs and the socket:// fake scanner (vendor frames)."""

from __future__ import annotations

import os
import queue
import socket
import threading
import tty
from collections.abc import Iterator

import pytest

from scanner_drivers.scanners.fake_serial import RECORDINGS, FakeSerialScanner
from scanner_drivers.scanners.open import open_scanner
from scanner_drivers.scanners.serial_scanner import SerialScanner
from scanner_drivers.types import DeviceError, ScanRead

WAIT_S = 10.0


class Sink:
    """Collects what a driver reports; `read()`/`status()` wait for the next event."""

    def __init__(self) -> None:
        self.reads: queue.Queue[ScanRead] = queue.Queue()
        self.statuses: queue.Queue[tuple[bool, str]] = queue.Queue()

    def on_read(self, read: ScanRead) -> None:
        self.reads.put(read)

    def on_status(self, _device: str, up: bool, detail: str) -> None:
        self.statuses.put((up, detail))

    def read(self) -> ScanRead:
        return self.reads.get(timeout=WAIT_S)

    def status(self) -> tuple[bool, str]:
        return self.statuses.get(timeout=WAIT_S)

    def texts(self, n: int) -> list[list[str]]:
        return [[c.text for c in self.read().codes] for _ in range(n)]


@pytest.fixture
def sink() -> Sink:
    return Sink()


def _start(url: str, sink: Sink) -> SerialScanner:
    drv = open_scanner(url)
    assert isinstance(drv, SerialScanner)
    drv.start(sink.on_read, sink.on_status)
    return drv


def _stop(drv: SerialScanner) -> None:
    drv.stop()
    assert drv.join(WAIT_S)


def test_loop_url_reads_what_is_written(sink: Sink) -> None:
    drv = _start("loop://?suffix=CRLF&no_read=NoRead", sink)
    try:
        assert sink.status() == (True, "connected")
        drv.write(b"EA123456785CN\r")
        drv.write(b"\nNoRead\r\n")
        first, second = sink.read(), sink.read()
        assert [c.text for c in first.codes] == ["EA123456785CN"]
        assert first.raw == b"EA123456785CN" and first.device.startswith("loop://")
        assert second.no_read
    finally:
        _stop(drv)
    assert sink.status() == (False, "stopped")


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    yield master, path
    for fd in (master, slave):
        try:
            os.close(fd)
        except OSError:
            pass


def test_pty_garbage_survival_and_unplug(sink: Sink, pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair
    drv = _start(f"serial://{path}?preset=zebra&max_frame=32", sink)
    try:
        assert sink.status()[0] is True
        os.write(master, b"\x00\x00\xffMOTEVTHB:001\r\nEA1234")
        os.write(master, b"56785CN\r")
        os.write(master, b"\nZ" * 1 + b"Y" * 5000 + b"\r\n")  # an overlong run, dropped whole
        os.write(master, b"\x07\x1bAB\xfe\xffCD\r\n")  # control bytes and invalid UTF-8
        os.write(master, b"NR\r\nLAST\r\n")
        assert sink.texts(2) == [["EA123456785CN"], ["\x07\x1bAB\ufffd\ufffdCD"]]
        assert sink.read().no_read
        assert sink.texts(1) == [["LAST"]]
        assert drv.stats.heartbeats == 1 and drv.stats.bad_text == 1
        os.write(master, b"HALF-A-FRA")
        os.close(master)  # the cable is pulled mid-frame
        up, detail = sink.status()
        assert up is False and detail.startswith("lost")
        assert sink.reads.empty()
    finally:
        _stop(drv)


def test_port_is_exclusive(sink: Sink, pty_pair: tuple[int, str]) -> None:
    _master, path = pty_pair
    first = _start(f"serial://{path}", sink)
    # The first holds the port before the second tries (both open on their own threads).
    assert sink.status()[0] is True
    other = Sink()
    second = _start(f"serial://{path}?reconnect_max=0.2", other)
    try:
        up, detail = other.status()
        assert up is False and "cannot open" in detail
    finally:
        _stop(second)
        _stop(first)


def test_missing_device_reports_down_once_and_stops_cleanly(sink: Sink) -> None:
    drv = _start("serial:///dev/serial/by-id/no-such-scanner?reconnect_max=0.1", sink)
    up, detail = sink.status()
    assert up is False and "cannot open" in detail
    _stop(drv)
    # Retries after the first failure are quiet: no second "down" report.
    assert sink.statuses.empty()


@pytest.mark.parametrize(
    ("vendor", "options", "expected"),
    [
        ("honeywell", "preset=honeywell", [["EA123456785CN"], [], ["1Z999AA10123456784"]]),
        ("zebra", "preset=zebra", [["EA123456785CN"], []]),
        ("datalogic", "preset=datalogic", [["EA123456785CN", "00340123450000000014"], []]),
        ("cognex", "preset=cognex", [["EA123456785CN"], []]),
        ("sick", "preset=sick", [["EA123456785CN"], [], ["EA123456785CN", "00340123450000000014"]]),
        ("newland", "preset=newland", [["EA123456785CN"], []]),
    ],
)
def test_recorded_vendor_frames_in_random_chunks(
    sink: Sink, vendor: str, options: str, expected: list[list[str]]
) -> None:
    fake = FakeSerialScanner.vendor(vendor, chunk_seed=len(vendor))
    drv = _start(f"{fake.start()}?{options}", sink)
    try:
        assert sink.texts(len(expected)) == expected
        assert fake.done.wait(WAIT_S)
    finally:
        _stop(drv)
        fake.stop()


def test_aim_identifiers_from_a_honeywell(sink: Sink) -> None:
    fake = FakeSerialScanner.vendor("honeywell-aim")
    drv = _start(f"{fake.start()}?preset=honeywell&aim=1", sink)
    try:
        got = [[(c.text, c.symbology) for c in sink.read().codes] for _ in range(3)]
    finally:
        _stop(drv)
        fake.stop()
    assert got == [
        [("9780201379629", "EAN13")],
        [("EA123456785CN", "QRCode")],
        [("\x1d0034012345000000001", "GS1-128")],
    ]


def test_unplug_then_reconnect_reports_down_and_up(sink: Sink) -> None:
    frames = [f"P{i}\r".encode() for i in range(6)]
    fake = FakeSerialScanner(frames, disconnect_after=2, chunk_seed=3)
    drv = _start(f"{fake.start()}?reconnect_max=0.2", sink)
    try:
        got = [sink.read().codes[0].text for _ in range(6)]
        assert got == [f"P{i}" for i in range(6)]
        events = [sink.statuses.get_nowait() for _ in range(sink.statuses.qsize())]
        ups = [e for e in events if e[0]]
        downs = [e for e in events if not e[0]]
        assert len(ups) >= 3 and len(downs) >= 2
        assert fake.connections >= 3
        assert drv.stats.disconnects >= 2
    finally:
        _stop(drv)
        fake.stop()


def test_trigger_command_and_trigger_id(sink: Sink) -> None:
    fake = FakeSerialScanner(RECORDINGS["honeywell"][:1], on_command=True)
    drv = _start(f"{fake.start()}?preset=honeywell&host_ack=ACK", sink)
    try:
        assert sink.status()[0] is True
        assert drv.trigger(on=True) == 1
        read = sink.read()
        assert read.trigger_id == 1 and read.codes[0].text == "EA123456785CN"
        drv.trigger(on=False)
    finally:
        _stop(drv)
        fake.stop()
    assert bytes(fake.received).startswith(b"\x16T\r")
    assert b"\x06" in fake.received and b"\x16U\r" in fake.received


def test_trigger_without_command_or_connection_is_a_device_error(sink: Sink) -> None:
    drv = SerialScanner("serial:///dev/serial/by-id/no-such-scanner")
    with pytest.raises(DeviceError):
        drv.trigger()
    with pytest.raises(DeviceError):
        SerialScanner("serial:///dev/serial/by-id/no-such-scanner?preset=honeywell").trigger()


def test_a_failing_read_handler_does_not_stop_the_scanner(sink: Sink) -> None:
    calls: list[str] = []

    def on_read(read: ScanRead) -> None:
        calls.append(read.codes[0].text)
        if len(calls) == 1:
            raise RuntimeError("consumer bug")
        sink.on_read(read)

    drv = SerialScanner("loop://")
    drv.start(on_read, sink.on_status)
    try:
        assert sink.status()[0] is True
        drv.write(b"FIRST\rSECOND\r")
        assert sink.read().codes[0].text == "SECOND"
    finally:
        _stop(drv)
    assert calls == ["FIRST", "SECOND"]


class _Writer:
    """PortManager writes its telnet negotiation through `.write`."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn

    def write(self, data: bytes) -> None:
        self.conn.sendall(data)


class _Rfc2217Server:
    """pyserial's RFC 2217 port manager in front of a loop:// port, as a serial device server would be."""

    def __init__(self) -> None:
        import serial
        import serial.rfc2217

        self.port = serial.serial_for_url("loop://", timeout=0.05)
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.stop = threading.Event()
        self._rfc2217 = serial.rfc2217
        threading.Thread(target=self._run, daemon=True).start()

    @property
    def url(self) -> str:
        return f"rfc2217://127.0.0.1:{self.server.getsockname()[1]}"

    def _run(self) -> None:
        conn, _ = self.server.accept()
        conn.settimeout(0.05)
        manager = self._rfc2217.PortManager(self.port, _Writer(conn))  # type: ignore[arg-type]
        while not self.stop.is_set():
            data = self.port.read(self.port.in_waiting or 1)
            if data:
                conn.sendall(b"".join(manager.escape(data)))
            try:
                incoming = conn.recv(1024)
            except TimeoutError:
                continue
            except OSError:
                break
            if not incoming:
                break
            self.port.write(b"".join(manager.filter(incoming)))
        conn.close()


def test_rfc2217_serial_server(sink: Sink) -> None:
    srv = _Rfc2217Server()
    drv = _start(f"{srv.url}?preset=honeywell", sink)
    try:
        assert sink.status()[0] is True
        srv.port.write(b"EA123456785CN\r")
        assert sink.texts(1) == [["EA123456785CN"]]
    finally:
        _stop(drv)
        srv.stop.set()
        srv.server.close()
