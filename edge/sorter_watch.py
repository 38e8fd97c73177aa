"""Keeps the sorter tile honest: probes the divert link at start and every few seconds.

A divert link connects lazily, so without a probe a sorter nothing listens on would look fine
until the first parcel had to be pulled. The probe connects and sends a heartbeat, never a divert.
"""

from __future__ import annotations

import logging
import threading

from edge.health import HealthBoard
from edge.supervise import supervised
from scanner_drivers.sorter.link import SorterLink

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 5.0
PROBE_TIMEOUT_S = 2.0


class SorterWatch:
    """Reports the sorter up or down on the health board; `check_once` is the whole job, for tests too."""

    def __init__(
        self,
        link: SorterLink,
        health: HealthBoard,
        interval_s: float = PROBE_INTERVAL_S,
        timeout_s: float = PROBE_TIMEOUT_S,
    ) -> None:
        self.link = link
        self.health = health
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check_once(self) -> bool:
        try:
            up, detail = self.link.probe(self.timeout_s)
        except Exception as exc:  # a probe must never take the watch down: show it instead
            log.exception("sorter probe failed")
            up, detail = False, f"probe failed: {type(exc).__name__}: {exc}"
        self.health.report("sorter", up, detail[:200])
        return up

    def start(self) -> None:
        self._thread = supervised(self._loop, "sorter-watch", self._stop, on_give_up=self.health.crashed)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.check_once()
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout_s + 1.0)
