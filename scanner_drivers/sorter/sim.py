"""A simulated sorter controller speaking the link's protocols (TCP, serial over a pty, Modbus TCP)."""

from __future__ import annotations

import collections
import contextlib
import errno
import functools
import logging
import os
import select
import socket
import threading
import tty
from collections.abc import Callable
from typing import Any

from scanner_drivers.framing import FrameAssembler
from scanner_drivers.sorter import telegram
from scanner_drivers.sorter.modbus_sim import COIL, UNIT, start_modbus_server

log = logging.getLogger(__name__)

PROTOCOLS = ("tcp", "serial", "modbus")
_REMEMBERED = 1024


class SimulatedSorter:
    """Acknowledges each divert, then reports DIVERTED, or MISSED when `miss(tracking_id)` says so.

    `drop(tracking_id)` makes it ignore a command entirely (the link then times out);
    `result_delay_s` holds the result back (a parcel travelling to its chute); `chutes`, when
    given, is the set of chutes it knows, and a divert to another one is refused with NAK.
    """

    def __init__(
        self,
        protocol: str = "tcp",
        miss: Callable[[str], bool] | None = None,
        *,
        drop: Callable[[str], bool] | None = None,
        result_delay_s: float = 0.0,
        chutes: set[str] | None = None,
        default_chute: str = "REJECT",
        port: int = 0,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"simulated sorter protocol must be one of {PROTOCOLS}, not {protocol!r}")
        self.protocol = protocol
        self._miss = miss or (lambda _tid: False)
        self._drop = drop or (lambda _tid: False)
        self.result_delay_s = result_delay_s
        self.chutes = chutes
        self.default_chute = default_chute
        # 0: any free port; a fixed one lets a test stop the controller and start it again at one address.
        self.port = port
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._clients: list[socket.socket] = []
        self._seen: collections.OrderedDict[tuple[int, str], tuple[str, ...]] = collections.OrderedDict()
        self._received = 0
        self._acknowledged = 0
        self._missed = 0
        self._in_flight = 0
        self._peak_in_flight = 0
        self._received_at_first_result: int | None = None
        self.tracking_ids: list[str] = []
        self._server: socket.socket | None = None
        self._pty: tuple[int, int] | None = None
        self._modbus: Any = None
        self.url = ""

    # Counters are read from other threads while connections update them.
    @property
    def diverts_received(self) -> int:
        with self._lock:
            return self._received

    @property
    def diverts_acknowledged(self) -> int:
        with self._lock:
            return self._acknowledged

    @property
    def missed(self) -> int:
        with self._lock:
            return self._missed

    @property
    def peak_in_flight(self) -> int:
        """Most commands the controller held at once between receiving them and sending their result."""
        with self._lock:
            return self._peak_in_flight

    @property
    def received_before_first_result(self) -> int | None:
        """Commands received when the first result went out (None: no result yet)."""
        with self._lock:
            return self._received_at_first_result

    def start(self) -> str:
        """Start serving on 127.0.0.1 (or a pty); returns the URL to pass to `open_sorter`."""
        if self.protocol == "tcp":
            self.url = self._start_tcp()
        elif self.protocol == "serial":
            self.url = self._start_pty()
        else:
            self._modbus, self.url = start_modbus_server(self)
        return self.url

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.close()
        self.disconnect_clients()
        if self._modbus is not None:
            self._modbus.stop()
        for t in self._threads:
            t.join(2.0)
        if self._pty is not None:
            for fd in self._pty:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._pty = None

    def disconnect_clients(self) -> None:
        """Drop every open TCP connection, as a controller reboot would."""
        with self._lock:
            clients, self._clients = self._clients, []
        for c in clients:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()

    # -- the controller's logic, shared by every protocol ---------------------------------------

    def drops(self, tracking_id: str) -> bool:
        """True when the controller is to ignore this command (so the link times out)."""
        return self._drop(tracking_id)

    @property
    def coil_url(self) -> str:
        """Modbus only: the URL that diverts through the single divert coil instead of the mailbox."""
        return self.url.split("?")[0] + f"?unit={UNIT}&coil={COIL}"

    def decide(self, tracking_id: str, chute: str | None) -> tuple[bool, str]:
        """Count one divert command and return (diverted, chute or reason)."""
        # The miss rule is the caller's code: run it outside the lock so it may read the counters.
        missed = self._miss(tracking_id)
        with self._lock:
            self._received += 1
            self._acknowledged += 1
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
            self.tracking_ids.append(tracking_id)
            if missed:
                self._missed += 1
                return False, "parcel not seen at the divert point"
        return True, chute or self.default_chute

    def note_result(self) -> None:
        """A result for one decided command is going out now."""
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)
            if self._received_at_first_result is None:
                self._received_at_first_result = self._received

    def handle(self, payload: bytes) -> list[tuple[float, bytes]]:
        """Answer one telegram payload: (delay seconds, framed reply) pairs to send in order."""
        try:
            msg = telegram.decode(payload)
        except telegram.TelegramError as exc:
            return [(0.0, telegram.encode("NAK", 0, str(exc)[:60].replace("|", "/")))]
        if msg.kind != "DIV":
            return []
        tracking_id, chute = msg.fields[0], msg.fields[1] or None
        if self.drops(tracking_id):
            return []
        key = (msg.seq, tracking_id)
        with self._lock:
            repeat = self._seen.get(key)
        if repeat is not None:
            # The link resends after a lost connection; answer again without diverting twice.
            return [(0.0, telegram.encode("ACK", msg.seq)), (0.0, telegram.encode("RES", msg.seq, *repeat))]
        if self.chutes is not None and chute is not None and chute not in self.chutes:
            return [(0.0, telegram.encode("NAK", msg.seq, f"unknown chute {chute}"))]
        diverted, what = self.decide(tracking_id, chute)
        result = ("DIVERTED", what) if diverted else ("MISSED", what)
        with self._lock:
            self._seen[key] = result
            while len(self._seen) > _REMEMBERED:
                self._seen.popitem(last=False)
        ack = telegram.encode("ACK", msg.seq)
        return [(0.0, ack), (self.result_delay_s, telegram.encode("RES", msg.seq, *result))]

    def _serve(self, recv: Callable[[], bytes | None], send: Callable[[bytes], None]) -> None:
        frames = FrameAssembler(suffix=telegram.ETX, prefix=telegram.STX, max_len=telegram.MAX_TELEGRAM)
        send_lock = threading.Lock()

        def send_later(delay: float, data: bytes) -> None:
            if delay > 0 and self._stop.wait(delay):
                return
            if data.startswith(telegram.STX + b"RES"):
                self.note_result()
            with send_lock, contextlib.suppress(OSError):
                send(data)

        while not self._stop.is_set():
            try:
                data = recv()
            except OSError:
                return
            if data is None:
                continue
            if not data:
                return
            for payload in frames.feed(data):
                for delay, reply in self.handle(payload):
                    if delay > 0:
                        threading.Thread(target=send_later, args=(delay, reply), daemon=True).start()
                    else:
                        send_later(0.0, reply)

    # -- TCP ----------------------------------------------------------------------------------

    def _start_tcp(self) -> str:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(16)
        server.settimeout(0.1)
        self._server = server
        self._spawn(self._accept, "sorter-sim-accept")
        return f"tcp://127.0.0.1:{server.getsockname()[1]}"

    def _accept(self) -> None:
        assert self._server is not None
        while not self._stop.is_set():
            try:
                client, _addr = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(0.1)
            with self._lock:
                self._clients.append(client)
            self._spawn(functools.partial(self._serve_socket, client), "sorter-sim-conn")

    def _serve_socket(self, client: socket.socket) -> None:
        def recv() -> bytes | None:
            try:
                return client.recv(4096)
            except TimeoutError:
                return None

        try:
            self._serve(recv, client.sendall)
        finally:
            with self._lock:
                if client in self._clients:
                    self._clients.remove(client)
            client.close()

    # -- serial line over a pty pair ---------------------------------------------------------

    def _start_pty(self) -> str:
        master, slave = os.openpty()
        # Raw on both ends: no echo, no CR/LF translation, as on a real RS-232 line.
        tty.setraw(slave)
        tty.setraw(master)
        self._pty = (master, slave)
        self._spawn(lambda: self._serve(self._pty_recv, self._pty_send), "sorter-sim-pty")
        return f"serial://{os.ttyname(slave)}?baudrate=9600"

    def _pty_recv(self) -> bytes | None:
        assert self._pty is not None
        ready, _, _ = select.select([self._pty[0]], [], [], 0.1)
        if not ready:
            return None
        try:
            return os.read(self._pty[0], 4096) or None
        except OSError as exc:
            if exc.errno == errno.EIO:
                # No one has the line open: wait for the next client.
                self._stop.wait(0.05)
                return None
            raise

    def _pty_send(self, data: bytes) -> None:
        assert self._pty is not None
        os.write(self._pty[0], data)

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        with self._lock:
            self._threads.append(t)
        t.start()
