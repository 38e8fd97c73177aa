"""Health board of the station: each device's state, when it was last heard from, sync and outbox."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class DeviceHealth:
    name: str
    up: bool
    detail: str
    last_seen: float
    # A device that has said nothing for this long is shown as quiet (red) on the terminal.
    quiet_after_s: float | None


# Called with (device, up, detail) when a device first reports or goes up or down.
ChangeListener = Callable[[str, bool, str], None]


class HealthBoard:
    """Thread-safe; `clock` is monotonic seconds so tests can move time without sleeping.

    Listeners hear state changes only (a device that keeps failing is one "down", not one per
    report), on the reporting thread and outside the board's lock: they must return at once.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._devices: dict[str, DeviceHealth] = {}
        self._listeners: list[ChangeListener] = []
        self.last_sync_ok: float | None = None
        self.last_sync_error: str = ""
        self.last_sync_error_code: str = ""

    def listen(self, listener: ChangeListener, replay: bool = False) -> None:
        """Add `listener`; with `replay` it first hears every device's current state."""
        with self._lock:
            self._listeners.append(listener)
            now = [(d.name, d.up, d.detail) for d in self._devices.values()] if replay else []
        for name, up, detail in now:
            listener(name, up, detail)

    def _changed(self, name: str, up: bool, detail: str) -> None:
        for listener in self._listeners:
            listener(name, up, detail)

    def register(self, name: str, quiet_after_s: float | None = None, up: bool = False) -> None:
        with self._lock:
            self._devices[name] = DeviceHealth(name, up, "not started", self._clock(), quiet_after_s)

    def report(self, name: str, up: bool, detail: str = "") -> None:
        with self._lock:
            dev = self._devices.get(name)
            changed = dev is None or dev.up != up
            if dev is None:
                dev = self._devices[name] = DeviceHealth(name, up, detail, self._clock(), None)
            dev.up, dev.detail, dev.last_seen = up, detail, self._clock()
        if changed:
            self._changed(name, up, detail)

    def seen(self, name: str) -> None:
        with self._lock:
            dev = self._devices.get(name)
            changed = dev is not None and not dev.up
            if dev is not None:
                dev.last_seen = self._clock()
                dev.up = True
                detail = dev.detail
        if changed:
            self._changed(name, True, detail)

    def crashed(self, loop: str, exc: BaseException) -> None:
        """A background loop its supervisor gave up on: shown red until the station restarts."""
        self.report(loop, False, f"stopped after repeated crashes: {exc}"[:200])

    def sync_ok(self) -> None:
        with self._lock:
            self.last_sync_ok = self._clock()
            self.last_sync_error = ""
            self.last_sync_error_code = ""

    def sync_failed(self, error: str, code: str = "") -> None:
        """`code` names a failure the operator can act on (the terminal shows its own words for it)."""
        with self._lock:
            self.last_sync_error = error
            self.last_sync_error_code = code

    def snapshot(self, outbox_size: int) -> dict[str, Any]:
        now = self._clock()
        with self._lock:
            devices = []
            for d in self._devices.values():
                quiet = d.quiet_after_s is not None and now - d.last_seen > d.quiet_after_s
                devices.append(
                    {
                        "name": d.name,
                        "up": d.up and not quiet,
                        "detail": "quiet" if quiet and d.up else d.detail,
                        "seconds_since_seen": round(now - d.last_seen, 1),
                    }
                )
            since_sync = None if self.last_sync_ok is None else round(now - self.last_sync_ok, 1)
            return {
                "devices": devices,
                "seconds_since_sync": since_sync,
                "sync_error": self.last_sync_error,
                "sync_error_code": self.last_sync_error_code,
                "outbox": outbox_size,
            }
