"""Sorter link over Modbus TCP: a register mailbox (tracking id, chute, result) or one coil per divert."""

from __future__ import annotations

import logging
import threading
import time

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from scanner_drivers.sorter.link import DivertResult
from scanner_drivers.sorter.telegram import TelegramError, check_field
from scanner_drivers.types import DeviceUrlError
from scanner_drivers.urlopts import UrlOptions, host_port

log = logging.getLogger(__name__)

DEFAULT_PORT = 502
ID_REGISTERS = 10  # 20 ASCII characters, two per register, high byte first
MAILBOX_WRITE = 2 + ID_REGISTERS  # seq, chute, id...
RESULT_OFFSET = MAILBOX_WRITE  # result seq, status, chute used
STATUS = {1: "DIVERTED", 2: "MISSED", 3: "REFUSED"}


class ModbusReplyError(OSError):
    """The controller answered a Modbus request with an exception or garbage."""


def encode_id(tracking_id: str) -> list[int]:
    """Pack a tracking id into registers; ValueError when it does not fit or is not plain ASCII."""
    check_field("tracking id", tracking_id, ID_REGISTERS * 2)
    raw = tracking_id.encode("ascii").ljust(ID_REGISTERS * 2, b"\0")
    return [raw[i] << 8 | raw[i + 1] for i in range(0, len(raw), 2)]


def decode_id(registers: list[int]) -> str:
    raw = b"".join(r.to_bytes(2, "big") for r in registers)
    return raw.rstrip(b"\0").decode("ascii", errors="replace")


def chute_number(chute: str | None) -> int:
    """Chutes travel as register values: 0 is the controller's default reject chute."""
    if chute is None or chute == "":
        return 0
    if not chute.isdigit() or not 0 <= int(chute) <= 65535:
        raise TelegramError(f"Modbus chute must be a number 0..65535, not {chute!r}")
    return int(chute)


class ModbusSorterLink:
    """`modbus://host:502?unit=1&register=100` (mailbox) or `modbus://host:502?unit=1&coil=16`.

    One divert at a time goes through the mailbox; others wait for it within their own deadline.
    """

    def __init__(self, url: str) -> None:
        host, port = host_port(url, DEFAULT_PORT)
        opts = UrlOptions(url)
        if opts.parts.path not in ("", "/"):
            raise DeviceUrlError(f"modbus:// URL takes no path: {url}")
        self.url = url
        self.unit = opts.integer("unit", 1, 0, 247)
        if opts.has("coil") and opts.has("register"):
            raise DeviceUrlError(f"give either coil= or register=, not both: {url}")
        self.coil = opts.integer("coil", -1, 0, 65534) if opts.has("coil") else None
        self.register = opts.integer("register", 0, 0, 65535 - MAILBOX_WRITE - 3)
        self.ack_timeout = opts.number("ack_timeout", 0.5, 0.001, 60.0)
        self.poll_s = opts.integer("poll_ms", 20, 1, 1000) / 1000
        self.chute = opts.optional_text("chute")
        opts.finish()
        if self.coil is None and self.chute is not None:
            try:
                chute_number(self.chute)
            except TelegramError as exc:
                raise DeviceUrlError(f"{exc} in {url}") from None
        self._client = ModbusTcpClient(host, port=port, timeout=self.ack_timeout, retries=0)
        self._lock = threading.Lock()
        self._seq = 0
        self._closed = False
        self._down_logged = False

    def divert(self, tracking_id: str, deadline_s: float, chute: str | None = None) -> DivertResult:
        deadline = time.monotonic() + max(0.0, deadline_s)
        chute = chute if chute is not None else self.chute
        if self.coil is not None:
            check_field("tracking id", tracking_id)
            if chute is not None and chute != self.chute:
                raise TelegramError(f"coil {self.coil} diverts to chute {self.chute!r} only, not {chute!r}")
        else:
            words = encode_id(tracking_id)
            number = chute_number(chute)
        if not self._lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return DivertResult("TIMEOUT", None, "another divert held the Modbus link until the deadline")
        try:
            if self._closed:
                return DivertResult("TIMEOUT", None, "link is closed")
            try:
                if self.coil is not None:
                    return self._divert_coil(deadline, chute)
                return self._divert_mailbox(words, number, deadline)
            except ModbusReplyError as exc:
                return DivertResult("MISSED", None, f"controller refused the request: {exc}")
            except TimeoutError:
                return DivertResult("TIMEOUT", None, "deadline reached before the controller answered")
            except (OSError, ModbusException) as exc:
                # pymodbus reports lost connections and silence with its own exception classes.
                self._client.close()  # type: ignore[no-untyped-call]
                return self._unreachable(exc)
        finally:
            self._lock.release()

    def _unreachable(self, exc: Exception) -> DivertResult:
        if not self._down_logged:
            log.warning("sorter %s: %s (further failures logged at debug)", self.url, exc)
            self._down_logged = True
        else:
            log.debug("sorter %s: %s", self.url, exc)
        return DivertResult("TIMEOUT", None, f"sorter unreachable: {exc}")

    def _call(self, deadline: float, fn_name: str, *args: object, **kw: object) -> object:
        """One request, its timeout trimmed to the deadline; raises on silence or a Modbus exception."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline reached")
        # pymodbus reads its per-request timeout from here; trimming it keeps divert() within the deadline.
        self._client.comm_params.timeout_connect = min(self.ack_timeout, remaining)
        if not self._client.connected:
            if not self._client.connect():  # type: ignore[no-untyped-call]
                raise ConnectionError(f"cannot connect to {self._client.comm_params.host}")
            if self._down_logged:
                log.info("sorter %s reachable again", self.url)
                self._down_logged = False
        reply = getattr(self._client, fn_name)(*args, device_id=self.unit, **kw)
        if reply.isError():
            raise ModbusReplyError(f"{fn_name} answered {reply}")
        return reply

    def _wait(self, deadline: float) -> bool:
        """Sleep one poll interval unless that would pass the deadline; False when time is up."""
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(self.poll_s, left))
        return True

    def _divert_mailbox(self, words: list[int], number: int, deadline: float) -> DivertResult:
        self._seq = self._seq % 65535 + 1
        seq = self._seq
        self._call(deadline, "write_registers", self.register, [seq, number, *words])
        while True:
            try:
                reply = self._call(deadline, "read_holding_registers", self.register + RESULT_OFFSET, count=3)
            except TimeoutError:
                break
            res_seq, status, used = getattr(reply, "registers", [0, 0, 0])[:3]
            if res_seq == seq:
                outcome = STATUS.get(status)
                if outcome == "DIVERTED":
                    # Chute 0 is the controller's default reject chute, whose number we do not know.
                    chute = str(used) if used else None
                    return DivertResult("DIVERTED", chute, "confirmed by the controller")
                if outcome == "MISSED":
                    return DivertResult("MISSED", None, "controller reported a miss")
                return DivertResult("MISSED", None, f"controller refused the divert (status {status})")
            if not self._wait(deadline):
                break
        return DivertResult("TIMEOUT", None, "command written, but no result before the deadline")

    def _divert_coil(self, deadline: float, chute: str | None) -> DivertResult:
        assert self.coil is not None
        bits = getattr(self._call(deadline, "read_coils", self.coil, count=2), "bits", [False])
        if bits[0]:
            return DivertResult("TIMEOUT", None, "the previous divert is still pending on the controller")
        self._call(deadline, "write_coils", self.coil, [True, False])
        while True:
            try:
                bits = getattr(self._call(deadline, "read_coils", self.coil, count=2), "bits", [True])
            except TimeoutError:
                break
            if not bits[0]:
                if len(bits) > 1 and bits[1]:
                    return DivertResult("MISSED", None, "controller set the miss flag")
                return DivertResult("DIVERTED", chute, "controller cleared the divert coil")
            if not self._wait(deadline):
                break
        return DivertResult("TIMEOUT", None, "divert coil set, but not cleared before the deadline")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._client.close()  # type: ignore[no-untyped-call]
