"""A simulated controller that asks: sends destination requests, takes answers, applies its default."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from scanner_drivers.sorter import telegram
from scanner_drivers.sorter.sim import SimulatedSorter

CarrierStatus = Literal["ANSWERED", "DEFAULTED"]


@dataclass(frozen=True)
class CarrierOutcome:
    """What the simulated controller did with one carrier: the chute it applied and why.

    ANSWERED: the station's answer came in time (`chute` None: routed normally); DEFAULTED: no
    usable answer before the deadline, the controller's default chute was applied.
    """

    status: CarrierStatus
    chute: str | None
    detail: str


@dataclass
class _Asked:
    carrier_id: str
    deadline: float


class SimulatedRequestSorter(SimulatedSorter):
    """Speaks the destination-request exchange over TCP or a serial pty (see hardware.md).

    `ask()` sends one request now; `ask_at_rate()` sends many from a thread. Answers after
    `deadline_s` are refused with NAK and counted as late; unknown chutes (when `chutes` is
    given) are refused and the default applied. `outcomes` maps carrier id to CarrierOutcome.
    """

    def __init__(
        self,
        protocol: str = "tcp",
        *,
        deadline_s: float = 0.5,
        default_chute: str = "NOREAD",
        chutes: set[str] | None = None,
    ) -> None:
        if protocol not in ("tcp", "serial"):
            raise ValueError(f"destination requests travel over tcp or serial, not {protocol!r}")
        super().__init__(protocol, chutes=chutes, default_chute=default_chute)
        self.deadline_s = deadline_s
        self._seqs = itertools.cycle(range(1, telegram.MAX_SEQ + 1))
        self._carriers = itertools.count(1)
        self._asked: dict[int, _Asked] = {}
        self._wake = threading.Condition(self._lock)
        self._send_lock = threading.Lock()
        self.outcomes: dict[str, CarrierOutcome] = {}
        self.requests_sent = 0
        self.late_answers = 0
        self.refused_answers = 0

    def start(self) -> str:
        url = super().start()
        self._spawn(self._expire, "sorter-sim-expire")
        self.url = url + ("&" if "?" in url else "?") + "mode=request"
        return self.url

    def stop(self) -> None:
        with self._wake:
            self._wake.notify_all()
        super().stop()

    @property
    def settled(self) -> int:
        """Carriers whose outcome is known (answered in time or defaulted)."""
        with self._lock:
            return len(self.outcomes)

    def wait_connected(self, timeout_s: float) -> bool:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            with self._lock:
                if self._clients or self.protocol == "serial":
                    return True
            self._stop.wait(0.01)
        return False

    def wait_settled(self, count: int, timeout_s: float) -> bool:
        """Block until `count` carriers have an outcome; False when `timeout_s` passed first."""
        end = time.monotonic() + timeout_s
        with self._wake:
            while len(self.outcomes) < count:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._wake.wait(left)
        return True

    def ask(
        self, codes: tuple[str, ...], carrier_id: str | None = None, deadline_s: float | None = None
    ) -> str:
        """Send one destination request now; returns the carrier id it named."""
        seq = next(self._seqs)
        carrier = carrier_id or f"T{next(self._carriers):05d}"
        wait_s = self.deadline_s if deadline_s is None else deadline_s
        data = telegram.encode_request(seq, carrier, int(wait_s * 1000), codes)
        with self._wake:
            self._asked[seq] = _Asked(carrier, time.monotonic() + wait_s)
            self.requests_sent += 1
            self._wake.notify_all()
        self._send(data)
        return carrier

    def ask_at_rate(
        self, count: int, rate_hz: float, codes_for: Callable[[int], tuple[str, ...]]
    ) -> threading.Thread:
        """Send `count` requests at `rate_hz` from a thread (codes_for(i) gives the i-th carrier's codes)."""

        def run() -> None:
            start = time.monotonic()
            for i in range(count):
                if self._stop.wait(max(0.0, start + i / rate_hz - time.monotonic())):
                    return
                self.ask(codes_for(i))

        t = threading.Thread(target=run, name="sorter-sim-asker", daemon=True)
        t.start()
        return t

    def _send(self, data: bytes) -> None:
        with self._send_lock, contextlib.suppress(OSError):
            if self.protocol == "serial":
                self._pty_send(data)
                return
            with self._lock:
                client = self._clients[-1] if self._clients else None
            if client is not None:
                client.sendall(data)

    def _settle(self, seq: int, outcome: CarrierOutcome) -> None:
        """Record an outcome; the caller holds the lock."""
        asked = self._asked.pop(seq)
        self.outcomes[asked.carrier_id] = outcome
        self._wake.notify_all()

    def _default(self, why: str) -> CarrierOutcome:
        return CarrierOutcome("DEFAULTED", self.default_chute, why)

    def _expire(self) -> None:
        with self._wake:
            while not self._stop.is_set():
                now = time.monotonic()
                for seq, asked in list(self._asked.items()):
                    if asked.deadline <= now:
                        self._settle(seq, self._default("no answer in time"))
                nxt = min((a.deadline for a in self._asked.values()), default=now + 0.1)
                self._wake.wait(max(0.001, min(0.1, nxt - now)))

    def handle(self, payload: bytes) -> list[tuple[float, bytes]]:
        """Take one DST answer; replies go straight out (the controller acknowledges at once)."""
        try:
            msg = telegram.decode(payload)
        except telegram.TelegramError as exc:
            self._send(telegram.encode("NAK", 0, str(exc)[:60].replace("|", "/")))
            return []
        if msg.kind != "DST":
            return []
        carrier, chute = msg.fields[0], msg.fields[1] or None
        with self._wake:
            asked = self._asked.get(msg.seq)
            if asked is None or asked.carrier_id != carrier:
                self.late_answers += 1
                reply = telegram.encode("NAK", msg.seq, "late or unknown request: default applied")
            elif time.monotonic() > asked.deadline:
                self.late_answers += 1
                self._settle(msg.seq, self._default("answer came too late"))
                reply = telegram.encode("NAK", msg.seq, "late: default applied")
            elif chute is not None and self.chutes is not None and chute not in self.chutes:
                self.refused_answers += 1
                self._settle(msg.seq, self._default(f"unknown chute {chute}"))
                reply = telegram.encode("NAK", msg.seq, f"unknown chute {chute}")
            else:
                self._settle(msg.seq, CarrierOutcome("ANSWERED", chute, "answered in time"))
                self.tracking_ids.append(carrier)
                reply = telegram.encode("ACK", msg.seq)
        self._send(reply)
        return []
