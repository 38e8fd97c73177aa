"""Telegram sorter link over a byte stream (TCP socket or serial line): DIV, then ACK/NAK, then RES."""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from scanner_drivers.framing import FrameAssembler
from scanner_drivers.sorter import telegram
from scanner_drivers.sorter.link import DivertResult, LinkLimitError, LinkLimits
from scanner_drivers.sorter.urls import parse_telegram_url
from scanner_drivers.types import DeviceUrlError

log = logging.getLogger(__name__)

POLL_S = 0.1


class Transport(Protocol):
    """A connected byte stream; `recv` returns None when nothing came within a poll, b"" at end of stream."""

    def send(self, data: bytes) -> None: ...

    def recv(self) -> bytes | None: ...

    def close(self) -> None: ...


class TcpTransport:
    def __init__(self, host: str, port: int, timeout: float) -> None:
        self._sock = socket.create_connection((host, port), timeout=max(0.01, timeout))
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        self._sock.settimeout(POLL_S)

    def send(self, data: bytes) -> None:
        self._sock.sendall(data)

    def recv(self) -> bytes | None:
        try:
            return self._sock.recv(4096)
        except TimeoutError:
            return None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()


class SerialTransport:
    def __init__(self, port: str, baudrate: int) -> None:
        import serial

        self._port = serial.serial_for_url(
            port, baudrate=baudrate, timeout=POLL_S, write_timeout=1.0, exclusive=True, do_not_open=True
        )
        self._port.open()
        # pyserial cannot close a port while another thread reads it: reads and close take turns.
        self._io = threading.Lock()
        self._closed = False

    def send(self, data: bytes) -> None:
        self._port.write(data)
        self._port.flush()

    def recv(self) -> bytes | None:
        with self._io:
            if self._closed:
                return b""
            data: bytes = self._port.read(max(1, self._port.in_waiting))
        return data or None

    def close(self) -> None:
        self._closed = True
        self._port.cancel_read()
        with self._io:
            self._port.close()


@dataclass
class _Pending:
    seq: int
    conn: Connection
    acked: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    nak: str | None = None
    result: DivertResult | None = None
    lost: str | None = None


class Connection:
    """One open transport and the thread that reads its telegrams and hands each to `deliver`.

    `lost(conn, why)` is called once when the connection ends, from whichever thread noticed.
    """

    def __init__(
        self,
        transport: Transport,
        url: str,
        deliver: Callable[[telegram.Telegram], None],
        lost: Callable[[Connection, str], None],
        *,
        start: bool = True,
    ) -> None:
        self.transport = transport
        self.url = url
        self.alive = True
        self._deliver = deliver
        self._lost = lost
        self._send_lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, name="sorter-link-reader", daemon=True)
        if start:
            self._thread.start()

    def start(self) -> None:
        """Start reading, for owners that must record the connection before its first telegram."""
        self._thread.start()

    def send(self, data: bytes) -> None:
        with self._send_lock:
            self.transport.send(data)

    def kill(self, why: str) -> None:
        if self.alive:
            self.alive = False
            with contextlib.suppress(OSError):
                self.transport.close()
            self._lost(self, why)

    def _read(self) -> None:
        frames = FrameAssembler(suffix=telegram.ETX, prefix=telegram.STX, max_len=telegram.MAX_TELEGRAM)
        why = "connection closed by the controller"
        while self.alive:
            try:
                data = self.transport.recv()
            except (OSError, TypeError, AttributeError) as exc:
                # TypeError/AttributeError: pyserial's state after the device node vanished.
                why = f"connection lost: {exc}"
                break
            if data is None:
                continue
            if not data:
                break
            for payload in frames.feed(data):
                try:
                    msg = telegram.decode(payload)
                except telegram.TelegramError as exc:
                    log.warning("sorter %s sent a bad telegram: %s", self.url, exc)
                    continue
                self._deliver(msg)
        self.kill(why)


class TelegramSorterLink:
    """Pipelined divert link: several diverts may wait at once, matched to replies by sequence number."""

    def __init__(
        self,
        url: str,
        connect: Callable[[float], Transport],
        ack_timeout: float,
        connect_timeout: float,
        default_chute: str | None,
        limits: LinkLimits | None = None,
    ) -> None:
        self.url = url
        self.limits = limits or telegram.telegram_limits("telegram link")
        self._connect = connect
        self.ack_timeout = ack_timeout
        self.connect_timeout = connect_timeout
        self.default_chute = default_chute
        self._lock = threading.Lock()
        self._connect_lock = threading.Lock()
        self._conn: Connection | None = None
        self._pending: dict[int, _Pending] = {}
        self._seq = itertools.cycle(range(1, telegram.MAX_SEQ + 1))
        self._closed = False
        self._down_logged = False

    def _connection(self, remaining: float) -> Connection | str:
        """The live connection, opening one if needed; a string says why none could be had."""
        # Connecting may take connect_timeout; other callers wait for it only within their own deadline.
        if not self._connect_lock.acquire(timeout=max(0.0, remaining)):
            return "sorter unreachable: a connection attempt is still in progress"
        try:
            with self._lock:
                if self._closed:
                    return "link is closed"
                if self._conn is not None and self._conn.alive:
                    return self._conn
            try:
                transport = self._connect(min(self.connect_timeout, max(0.001, remaining)))
            except (OSError, ValueError) as exc:
                if not self._down_logged:
                    log.warning("sorter %s unreachable: %s (further failures logged at debug)", self.url, exc)
                    self._down_logged = True
                else:
                    log.debug("sorter %s still unreachable: %s", self.url, exc)
                return f"sorter unreachable: {exc}"
            if self._down_logged:
                log.info("sorter %s reachable again", self.url)
                self._down_logged = False
            conn = Connection(transport, self.url, self._deliver, self._connection_lost)
            with self._lock:
                self._conn = conn
            return conn
        finally:
            self._connect_lock.release()

    def _deliver(self, msg: telegram.Telegram) -> None:
        with self._lock:
            pending = self._pending.get(msg.seq)
        if msg.kind == "HB":
            return
        if pending is None:
            log.debug("sorter %s: %s for unknown sequence %d ignored", self.url, msg.kind, msg.seq)
            return
        if msg.kind == "ACK":
            pending.acked.set()
        elif msg.kind == "NAK":
            pending.nak = msg.fields[0] if msg.fields else "no reason given"
            pending.acked.set()
            pending.done.set()
        elif msg.kind == "RES":
            outcome = msg.fields[0]
            extra = msg.fields[1] if len(msg.fields) > 1 else ""
            if outcome == "DIVERTED":
                pending.result = DivertResult("DIVERTED", extra or None, "confirmed by the controller")
            else:
                pending.result = DivertResult("MISSED", None, f"controller reported a miss: {extra or '-'}")
            # A result implies the command arrived, even if the ACK was lost.
            pending.acked.set()
            pending.done.set()

    def _connection_lost(self, conn: Connection, why: str) -> None:
        with self._lock:
            if self._conn is conn:
                self._conn = None
            waiting = [p for p in self._pending.values() if p.conn is conn]
        for p in waiting:
            p.lost = why
            p.acked.set()
            p.done.set()

    def divert(self, tracking_id: str, deadline_s: float, chute: str | None = None) -> DivertResult:
        deadline = time.monotonic() + max(0.0, deadline_s)
        chute = chute if chute is not None else self.default_chute
        # Refuse what cannot be sent before touching the device (a ValueError: the caller's bug).
        try:
            self.limits.check_tracking_id(tracking_id)
            self.limits.check_chute(chute)
        except LinkLimitError as exc:
            raise telegram.TelegramFieldError(str(exc)) from None
        with self._lock:
            seq = next(self._seq)
        resent = False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return DivertResult("TIMEOUT", None, "deadline passed before the command was acknowledged")
            conn = self._connection(remaining)
            if isinstance(conn, str):
                return DivertResult("TIMEOUT", None, conn)
            pending = _Pending(seq, conn)
            with self._lock:
                self._pending[seq] = pending
            try:
                result = self._exchange(pending, tracking_id, chute, deadline)
            finally:
                with self._lock:
                    if self._pending.get(seq) is pending:
                        del self._pending[seq]
            if result is not None:
                return result
            if resent:
                return DivertResult("TIMEOUT", None, f"connection lost before ACK: {pending.lost}")
            # The connection died before the controller acknowledged: send again once on a new
            # connection with the same sequence number, which the controller treats as a repeat.
            resent = True

    def _exchange(
        self, pending: _Pending, tracking_id: str, chute: str | None, deadline: float
    ) -> DivertResult | None:
        """One attempt; None means the connection was lost before an ACK and a resend may help."""
        deadline_ms = int((deadline - time.monotonic()) * 1000)
        try:
            pending.conn.send(telegram.encode_divert(pending.seq, tracking_id, chute, deadline_ms))
        except OSError as exc:
            pending.conn.kill(f"send failed: {exc}")
            pending.lost = f"send failed: {exc}"
            return None
        ack_wait = min(self.ack_timeout, max(0.0, deadline - time.monotonic()))
        if not pending.acked.wait(ack_wait):
            # A controller that does not acknowledge is not trusted with the next command either.
            pending.conn.kill("no ACK in time")
            return DivertResult("TIMEOUT", None, f"no ACK within {ack_wait:.3f} s")
        if pending.lost is not None and pending.result is None and pending.nak is None:
            return None
        if pending.nak is not None:
            return DivertResult("MISSED", None, f"controller refused the divert (NAK): {pending.nak}")
        pending.done.wait(max(0.0, deadline - time.monotonic()))
        if pending.result is not None:
            return pending.result
        if pending.lost is not None:
            return DivertResult("TIMEOUT", None, f"acknowledged, then {pending.lost}; outcome unknown")
        return DivertResult("TIMEOUT", None, "acknowledged, but no result before the deadline")

    def probe(self, timeout_s: float) -> tuple[bool, str]:
        """Connect if not connected, and send a heartbeat (HB, ignored by the controller); never a divert.

        Returns (up, detail) within about `timeout_s`. The heartbeat makes a dead peer show: a reset
        connection fails the send, and a closed one is seen by the reader and retried here next time.
        """
        conn = self._connection(timeout_s)
        if isinstance(conn, str):
            return False, conn
        try:
            conn.send(telegram.encode("HB", None))
        except OSError as exc:
            conn.kill(f"send failed: {exc}")
            return False, f"sorter unreachable: heartbeat send failed: {exc}"
        return True, "connected"

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conn = self._conn
        if conn is not None:
            conn.kill("link closed")


def open_tcp_link(url: str) -> TelegramSorterLink:
    """`tcp://host:port?ack_timeout=0.5&connect_timeout=1.0&chute=R1`."""
    cfg = parse_telegram_url(url)
    if cfg.scheme != "tcp" or cfg.mode != "divert":
        raise DeviceUrlError(f"not a tcp:// divert link URL (mode=request opens a DestinationLink): {url}")
    return TelegramSorterLink(
        url,
        lambda t: TcpTransport(cfg.host, cfg.port, t),
        cfg.ack_timeout,
        cfg.connect_timeout,
        cfg.chute,
        cfg.limits,
    )


def open_serial_link(url: str) -> TelegramSorterLink:
    """`serial:///dev/ttyUSB0?baudrate=9600&ack_timeout=0.5&chute=R1` (8N1, no flow control)."""
    cfg = parse_telegram_url(url)
    if cfg.scheme != "serial" or cfg.mode != "divert":
        raise DeviceUrlError(f"not a serial:// divert link URL (mode=request opens a DestinationLink): {url}")
    return TelegramSorterLink(
        url,
        lambda _t: SerialTransport(cfg.device, cfg.baudrate),
        cfg.ack_timeout,
        cfg.connect_timeout,
        cfg.chute,
        cfg.limits,
    )
