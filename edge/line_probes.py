"""What the line bench watches on a running station: divert arrivals, feed events, stored counts.

Each probe notes time.monotonic() on its own thread, so that watching never slows the parcel path;
they use only the station's public parts (its feed and its store's read queries).
"""

from __future__ import annotations

import queue
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge.agent import EdgeAgent

SAMPLE_S = 0.1  # how often the store's parcel count is sampled
COUNT_SQL = "SELECT COUNT(*) FROM events WHERE type = 'parcel'"


def timed_sorter(delay_s: float) -> Any:
    """The simulated controller, noting when each divert command arrived (first arrival counts)."""
    from scanner_drivers.sorter.sim import SimulatedSorter

    class TimedSorter(SimulatedSorter):
        def __init__(self) -> None:
            super().__init__("tcp", result_delay_s=delay_s)
            self.received_at: dict[str, float] = {}
            self._times = threading.Lock()

        def decide(self, tracking_id: str, chute: str | None) -> tuple[bool, str]:
            now = time.monotonic()
            with self._times:
                self.received_at.setdefault(tracking_id, now)
            return super().decide(tracking_id, chute)

    return TimedSorter()


class FeedClock:
    """Reads the station feed on its own thread and notes when each parcel's event came out."""

    def __init__(self, agent: EdgeAgent, keys: dict[str, int]) -> None:
        self.feed = agent.feed
        self.queue = agent.feed.subscribe()
        self.keys = keys
        self.decided_at: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-feed", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = self.queue.get(timeout=0.1)
            except queue.Empty:
                continue
            now = time.monotonic()
            if item.get("type") != "parcel":
                continue
            for ref in (item.get("event") or {}).get("images") or []:
                index = self.keys.get(str(ref.get("sha256")))
                if index is not None:
                    self.decided_at.setdefault(index, now)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.feed.unsubscribe(self.queue)


class StoreSampler:
    """Samples how many parcel events the store holds, for the sustained rate and the backlog."""

    def __init__(self, agent: EdgeAgent) -> None:
        self.agent = agent
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def count(self) -> int | None:
        try:
            return int(self.agent.store.query(COUNT_SQL)[0][0])
        except Exception:  # a store reworked under the bench: fall back to the feed's times
            return None

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            n = self.count()
            if n is None:
                self.samples.clear()
                return
            self.samples.append((time.monotonic(), n))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
