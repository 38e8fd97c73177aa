"""Destination requests: the controller names its carrier and the codes it read, the station answers.

`tcp://host:port?mode=request` (or `serial:///dev/...?mode=request`). The controller sends
`REQ|seq|carrier_id|deadline_ms|code...`; the station answers `DST|seq|carrier_id|chute`
(empty chute: route normally); the controller acknowledges with `ACK|seq`, or refuses with
`NAK|seq|reason` (too late, unknown chute). Without an answer before its deadline the
controller applies its own default. See hardware.md.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from scanner_drivers.scanners.scanner import StatusCallback
from scanner_drivers.sorter import telegram
from scanner_drivers.sorter.link import DestinationRequest, DivertResult, LinkLimitError
from scanner_drivers.sorter.stream import Connection, SerialTransport, TcpTransport, Transport
from scanner_drivers.sorter.urls import parse_telegram_url
from scanner_drivers.types import Code, DeviceUrlError

log = logging.getLogger(__name__)

RequestCallback = Callable[[DestinationRequest], None]
FIRST_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0
# Answers after the deadline still get a clear "too late" for this long; then the request is forgotten.
KEEP_EXPIRED_S = 60.0
CODE_SYMBOLOGY = "unknown"
CODE_ENGINE = "sorter-controller"


@dataclass
class _Open:
    seq: int
    conn: Connection
    request: DestinationRequest


@dataclass
class _Answer:
    conn: Connection
    done: threading.Event = field(default_factory=threading.Event)
    nak: str | None = None
    acked: bool = False
    lost: str | None = None


def _now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class DestinationLink:
    """Keeps a connection to the controller open, hands each request to `on_request`, sends answers.

    `on_request` runs on the link's reader thread and must return at once (queue the request).
    `answer()` is thread-safe: many answers may wait for their acknowledgements at once.
    """

    def __init__(self, url: str) -> None:
        cfg = parse_telegram_url(url)
        if cfg.mode != "request":
            raise DeviceUrlError(f"a DestinationLink needs mode=request in the URL: {url}")
        self.url = url
        self.limits = cfg.limits
        self.ack_timeout = cfg.ack_timeout
        self.connect_timeout = cfg.connect_timeout
        if cfg.scheme == "tcp":
            self._open_transport: Callable[[], Transport] = lambda: TcpTransport(
                cfg.host, cfg.port, cfg.connect_timeout
            )
        else:
            self._open_transport = lambda: SerialTransport(cfg.device, cfg.baudrate)
        self._lock = threading.Lock()
        self._open: dict[str, _Open] = {}
        self._answers: dict[int, _Answer] = {}
        self._conn: Connection | None = None
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_request: RequestCallback = lambda _r: None
        self._on_status: StatusCallback = lambda _d, _u, _t: None
        self._up: bool | None = None

    def start(self, on_request: RequestCallback, on_status: StatusCallback) -> None:
        self._on_request = on_request
        self._on_status = on_status
        self._thread = threading.Thread(target=self._run, name="sorter-destination-link", daemon=True)
        self._thread.start()

    @property
    def connected(self) -> bool:
        conn = self._conn
        return conn is not None and conn.alive

    def _run(self) -> None:
        backoff = FIRST_BACKOFF_S
        while not self._stop.is_set():
            try:
                transport = self._open_transport()
            except (OSError, ValueError) as exc:
                self._status(False, f"controller unreachable: {exc}")
                self._stop.wait(backoff)
                backoff = min(MAX_BACKOFF_S, backoff * 2)
                continue
            backoff = FIRST_BACKOFF_S
            self._lost.clear()
            conn = Connection(transport, self.url, self._deliver, self._connection_lost, start=False)
            with self._lock:
                self._conn = conn
            conn.start()
            self._status(True, "connected")
            while conn.alive and not self._stop.is_set():
                self._lost.wait(0.5)
            if not self._stop.is_set():
                self._status(False, "connection to the controller lost")
                self._stop.wait(FIRST_BACKOFF_S)
        conn_left = self._conn
        if conn_left is not None:
            conn_left.kill("link closed")

    def _status(self, up: bool, detail: str) -> None:
        # Report changes only: a controller that stays away is one "down", not one per retry.
        if up != self._up:
            self._up = up
            self._on_status(self.url, up, detail)

    def _connection_lost(self, conn: Connection, why: str) -> None:
        with self._lock:
            if self._conn is conn:
                self._conn = None
            waiting = [w for w in self._answers.values() if w.conn is conn]
        for w in waiting:
            w.lost = why
            w.done.set()
        self._lost.set()

    def _deliver(self, msg: telegram.Telegram) -> None:
        if msg.kind == "REQ":
            self._request(msg)
        elif msg.kind in ("ACK", "NAK"):
            with self._lock:
                waiter = self._answers.get(msg.seq)
            if waiter is None:
                log.debug("sorter %s: %s for unknown request %d ignored", self.url, msg.kind, msg.seq)
                return
            if msg.kind == "NAK":
                waiter.nak = msg.fields[0] if msg.fields else "no reason given"
            waiter.acked = msg.kind == "ACK"
            waiter.done.set()

    def _request(self, msg: telegram.Telegram) -> None:
        carrier_id, deadline_ms, *codes = msg.fields
        now = time.monotonic()
        request = DestinationRequest(
            carrier_id=carrier_id,
            codes=tuple(Code(text, CODE_SYMBOLOGY, CODE_ENGINE) for text in codes if text),
            at_utc=_now_utc(),
            at_monotonic=now,
            deadline_s=int(deadline_ms) / 1000,
        )
        conn = self._conn
        if conn is None:
            return
        with self._lock:
            before = self._open.get(carrier_id)
            if before is not None and before.seq == msg.seq:
                # The controller asked again (after a reconnect): same request, answer on the new line.
                before.conn = conn
                return
            # Carriers go round the loop, so a carrier id comes back with a new sequence number.
            self._open[carrier_id] = _Open(msg.seq, conn, request)
            for key in [k for k, o in self._open.items() if o.request.deadline + KEEP_EXPIRED_S < now]:
                del self._open[key]
        try:
            self._on_request(request)
        except Exception:  # the callback is the caller's code; the link must keep reading
            log.exception("sorter %s: destination request handler failed for %s", self.url, carrier_id)

    def answer(self, carrier_id: str, chute: str | None) -> DivertResult:
        """Answer the open request for `carrier_id`; None routes it normally. Returns the controller's word.

        DIVERTED: the controller accepted the destination; MISSED: it refused it or the answer
        came after its deadline (it applied its default); TIMEOUT: no acknowledgement.
        """
        try:
            self.limits.check_tracking_id(carrier_id)
            self.limits.check_chute(chute)
        except LinkLimitError as exc:
            raise telegram.TelegramFieldError(str(exc)) from None
        with self._lock:
            opened = self._open.pop(carrier_id, None)
        if opened is None:
            return DivertResult(
                "MISSED", None, f"no open request for carrier {carrier_id} (answered before?)"
            )
        if time.monotonic() > opened.request.deadline:
            return DivertResult(
                "MISSED", None, "answer after the controller's deadline: it applied its default"
            )
        if not opened.conn.alive:
            return DivertResult("TIMEOUT", None, "connection to the controller lost before the answer")
        waiter = _Answer(opened.conn)
        with self._lock:
            self._answers[opened.seq] = waiter
        try:
            try:
                opened.conn.send(telegram.encode_destination(opened.seq, carrier_id, chute))
            except OSError as exc:
                opened.conn.kill(f"send failed: {exc}")
                return DivertResult("TIMEOUT", None, f"answer not sent: {exc}")
            if not waiter.done.wait(self.ack_timeout):
                return DivertResult("TIMEOUT", None, f"no ACK within {self.ack_timeout:.3f} s")
        finally:
            with self._lock:
                self._answers.pop(opened.seq, None)
        if waiter.nak is not None:
            return DivertResult("MISSED", None, f"controller refused the destination (NAK): {waiter.nak}")
        if not waiter.acked:
            return DivertResult("TIMEOUT", None, f"answer sent, then {waiter.lost}; outcome unknown")
        if chute:
            return DivertResult("DIVERTED", chute, "destination accepted by the controller")
        return DivertResult("DIVERTED", None, "controller routes the carrier normally")

    def close(self) -> None:
        self._stop.set()
        self._lost.set()
        conn = self._conn
        if conn is not None:
            conn.kill("link closed")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5.0)
