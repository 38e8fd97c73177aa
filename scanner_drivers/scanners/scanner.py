"""What every scanner driver offers: start with callbacks for reads and device status, stop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from scanner_drivers.types import ScanRead

ReadCallback = Callable[[ScanRead], None]
# (device, up, detail): called when a device goes down or comes back.
StatusCallback = Callable[[str, bool, str], None]


class ScannerDriver(Protocol):
    """A source of scanner reads; callbacks run on the driver's own thread."""

    url: str

    def start(self, on_read: ReadCallback, on_status: StatusCallback) -> None: ...

    def stop(self) -> None: ...

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the driver's thread; True when it has finished (a replay ran out)."""
        ...
