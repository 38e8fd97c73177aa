"""In-process feed from the pipeline to the operator terminal: parcels, alerts and health, fanned out."""

from __future__ import annotations

import itertools
import queue
import threading
from typing import Any

FeedItem = dict[str, Any]


class Subscription(queue.Queue[FeedItem]):
    """One subscriber's bounded queue; `dropped` is set when it fell so far behind that the feed let it go."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.dropped = threading.Event()


class StationFeed:
    """Publish/subscribe that never waits on a subscriber: one that is too slow is dropped, not waited for.

    `publish` runs on the parcel path (pipeline, sync, device callbacks), so it only ever does a
    non-blocking put. A screen whose queue is full is unsubscribed and told so; it reconnects and
    catches up from the short history, while every other subscriber keeps getting every item.
    """

    def __init__(self, maxsize: int = 500, history: int = 200) -> None:
        self._lock = threading.Lock()
        self._subs: list[Subscription] = []
        self._maxsize = maxsize
        self._history: list[FeedItem] = []
        self._history_len = history
        self._ids = itertools.count(1)

    def publish(self, item: FeedItem) -> None:
        with self._lock:
            item = {**item, "id": next(self._ids)}
            self._history.append(item)
            del self._history[: -self._history_len]
            subs = list(self._subs)
        slow = []
        for q in subs:
            try:
                q.put_nowait(item)
            except queue.Full:
                slow.append(q)
        for q in slow:
            self.unsubscribe(q)
            q.dropped.set()

    def subscribe(self) -> Subscription:
        q = Subscription(self._maxsize)
        with self._lock:
            self._subs.append(q)
        return q

    def unsubscribe(self, q: queue.Queue[FeedItem]) -> None:
        with self._lock:
            if q in self._subs:
                self._subs.remove(q)

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subs)

    def recent(self, kind: str | None = None) -> list[FeedItem]:
        with self._lock:
            return [i for i in self._history if kind is None or i.get("type") == kind]
