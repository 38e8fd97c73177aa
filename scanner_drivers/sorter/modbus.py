"""Sorter link over Modbus TCP: a ring of register mailboxes (tracking id, chute, result) or one coil.

Modbus has no way to push a result, so the station polls. With `slots=N` the controller offers
N mailboxes side by side and N diverts can wait on it at once; one shared poll reads every
slot's result registers, so the load on the PLC does not grow with the number of waiting diverts.
"""

from __future__ import annotations

import collections
import logging
import threading
import time

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from scanner_drivers.sorter.link import DivertResult, LinkLimitError
from scanner_drivers.sorter.modbus_layout import (
    ID_REGISTERS,
    RESULT_COUNT,
    RESULT_OFFSET,
    SLOT_STRIDE,
    STATUS,
    ModbusLimitError,
    chute_number,
    decode_id,
    encode_id,
)
from scanner_drivers.sorter.urls import parse_modbus_url

log = logging.getLogger(__name__)

__all__ = ["ID_REGISTERS", "ModbusLimitError", "ModbusSorterLink", "decode_id", "encode_id"]

# A Modbus read returns at most 125 registers: this many slots' results fit in one read.
_SLOTS_PER_READ = (125 - RESULT_COUNT) // SLOT_STRIDE + 1


class ModbusReplyError(OSError):
    """The controller answered a Modbus request with an exception or garbage."""


class ModbusSorterLink:
    """`modbus://host:502?unit=1&register=100&slots=8` (mailbox ring) or `modbus://host:502?coil=16`.

    Each divert takes a free mailbox slot (waiting for one within its own deadline), writes its
    command there and waits for that slot's result; `slots=1` (the default) is one at a time.
    """

    def __init__(self, url: str) -> None:
        cfg = parse_modbus_url(url)
        self.url = url
        self.limits = cfg.limits
        self.unit = cfg.unit
        self.coil = cfg.coil
        self.register = cfg.register
        self.slots = 1 if cfg.coil is not None else cfg.slots
        self.ack_timeout = cfg.ack_timeout
        self.poll_s = cfg.poll_s
        self.chute = cfg.chute
        self._client = ModbusTcpClient(cfg.host, port=cfg.port, timeout=cfg.ack_timeout, retries=0)
        # The pymodbus client is not thread-safe: one request on the wire at a time.
        self._io = threading.Lock()
        # Guards the free slots, the last results read and the shared poll.
        self._cond = threading.Condition()
        self._free = list(range(self.slots))
        self._queue: collections.deque[object] = collections.deque()
        self._results: dict[int, tuple[int, int, int]] = {}
        self._polling = False
        self._next_poll = 0.0
        self._seq = 0
        self._closed = False
        self._down_logged = False

    def divert(self, tracking_id: str, deadline_s: float, chute: str | None = None) -> DivertResult:
        deadline = time.monotonic() + max(0.0, deadline_s)
        chute = chute if chute is not None else self.chute
        try:
            self.limits.check_tracking_id(tracking_id)
            self.limits.check_chute(chute)
        except LinkLimitError as exc:
            raise ModbusLimitError(str(exc)) from None
        slot = self._take_slot(deadline)
        if slot is None:
            if self._closed:
                return DivertResult("TIMEOUT", None, "link is closed")
            return DivertResult("TIMEOUT", None, "every Modbus mailbox slot was busy until the deadline")
        try:
            if self.coil is not None:
                return self._divert_coil(deadline, chute)
            return self._divert_mailbox(slot, encode_id(tracking_id), chute_number(chute), deadline)
        except ModbusReplyError as exc:
            return DivertResult("MISSED", None, f"controller refused the request: {exc}")
        except TimeoutError:
            return DivertResult("TIMEOUT", None, "deadline reached before the controller answered")
        except (OSError, ModbusException) as exc:
            # pymodbus reports lost connections and silence with its own exception classes.
            with self._io:
                self._client.close()  # type: ignore[no-untyped-call]
            return self._unreachable(exc)
        finally:
            with self._cond:
                self._free.append(slot)
                self._cond.notify_all()

    def _take_slot(self, deadline: float) -> int | None:
        """A free slot, first come first served: a busy caller must not keep taking its slot back."""
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            try:
                while self._closed or not (self._free and self._queue[0] is ticket):
                    left = deadline - time.monotonic()
                    if self._closed or left <= 0:
                        return None
                    self._cond.wait(left)
                return self._free.pop(0)
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()

    def _unreachable(self, exc: Exception) -> DivertResult:
        if not self._down_logged:
            log.warning("sorter %s: %s (further failures logged at debug)", self.url, exc)
            self._down_logged = True
        else:
            log.debug("sorter %s: %s", self.url, exc)
        return DivertResult("TIMEOUT", None, f"sorter unreachable: {exc}")

    def _call(self, deadline: float, fn_name: str, *args: object, **kw: object) -> object:
        """One request, its timeout trimmed to the deadline; raises on silence or a Modbus exception."""
        with self._io:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("deadline reached")
            if self._closed:
                raise ConnectionError("link is closed")
            # pymodbus reads its per-request timeout from here; trimming it keeps divert() in the deadline.
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

    def _base(self, slot: int) -> int:
        return self.register + slot * SLOT_STRIDE

    def _read_results(self, deadline: float, slots: range) -> dict[int, tuple[int, int, int]]:
        """Result registers of `slots`, several slots per request."""
        found: dict[int, tuple[int, int, int]] = {}
        for first in range(slots.start, slots.stop, _SLOTS_PER_READ):
            last = min(slots.stop, first + _SLOTS_PER_READ) - 1
            start = self._base(first) + RESULT_OFFSET
            count = (last - first) * SLOT_STRIDE + RESULT_COUNT
            reply = self._call(deadline, "read_holding_registers", start, count=count)
            regs = list(getattr(reply, "registers", []))
            if len(regs) < count:
                raise ModbusReplyError(f"read of {count} registers returned {len(regs)}")
            for k in range(first, last + 1):
                at = (k - first) * SLOT_STRIDE
                found[k] = (regs[at], regs[at + 1], regs[at + 2])
        return found

    def _next_seq(self, slot: int, deadline: float) -> int:
        # A slot's result register may still hold a sequence from before this link started (a
        # station restart): read it once and never reuse that number, or an old result would
        # confirm the new divert.
        with self._cond:
            known = self._results.get(slot)
        if known is None:
            known = self._read_results(deadline, range(slot, slot + 1))[slot]
            with self._cond:
                self._results.setdefault(slot, known)
        with self._cond:
            self._seq = self._seq % 65535 + 1
            if self._seq == known[0]:
                self._seq = self._seq % 65535 + 1
            return self._seq

    def _await_result(self, slot: int, seq: int, deadline: float) -> tuple[int, int, int] | None:
        """Wait for `slot` to report `seq`; one waiting divert at a time polls for all of them."""
        while True:
            with self._cond:
                while True:
                    got = self._results.get(slot)
                    if got is not None and got[0] == seq:
                        return got
                    now = time.monotonic()
                    if now >= deadline or self._closed:
                        return None
                    if not self._polling and now >= self._next_poll:
                        self._polling = True
                        break
                    until = deadline if self._polling else min(deadline, self._next_poll)
                    self._cond.wait(max(0.0005, until - now))
            fresh: dict[int, tuple[int, int, int]] = {}
            try:
                fresh = self._read_results(deadline, range(self.slots))
            except TimeoutError:
                return None
            finally:
                with self._cond:
                    self._polling = False
                    self._next_poll = time.monotonic() + self.poll_s
                    self._results.update(fresh)
                    self._cond.notify_all()

    def _divert_mailbox(self, slot: int, words: list[int], number: int, deadline: float) -> DivertResult:
        seq = self._next_seq(slot, deadline)
        self._call(deadline, "write_registers", self._base(slot), [seq, number, *words])
        got = self._await_result(slot, seq, deadline)
        if got is None:
            return DivertResult("TIMEOUT", None, "command written, but no result before the deadline")
        _seq, status, used = got
        outcome = STATUS.get(status)
        if outcome == "DIVERTED":
            # Chute 0 is the controller's default reject chute, whose number we do not know.
            return DivertResult("DIVERTED", str(used) if used else None, "confirmed by the controller")
        if outcome == "MISSED":
            return DivertResult("MISSED", None, "controller reported a miss")
        return DivertResult("MISSED", None, f"controller refused the divert (status {status})")

    def _wait(self, deadline: float) -> bool:
        """Sleep one poll interval unless that would pass the deadline; False when time is up."""
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(self.poll_s, left))
        return True

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

    def probe(self, timeout_s: float) -> tuple[bool, str]:
        """Connect if needed and read the first slot's result registers (a read never diverts)."""
        deadline = time.monotonic() + max(0.001, timeout_s)
        try:
            if self.coil is not None:
                self._call(deadline, "read_coils", self.coil, count=1)
            else:
                self._call(deadline, "read_holding_registers", self._base(0) + RESULT_OFFSET, count=3)
        except ModbusReplyError as exc:
            # The controller answered, only not this read: it is there.
            return True, f"connected (controller refused the probe read: {exc})"
        except TimeoutError:
            return False, "sorter unreachable: no answer before the probe deadline"
        except (OSError, ModbusException) as exc:
            with self._io:
                self._client.close()  # type: ignore[no-untyped-call]
            return False, self._unreachable(exc).detail
        return True, "connected"

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        with self._io:
            self._client.close()  # type: ignore[no-untyped-call]
