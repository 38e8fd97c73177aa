"""In-process feed from the pipeline to the operator terminal: parcels, alerts and health, fanned out."""

from __future__ import annotations

import itertools
import queue
import threading
from typing import Any

FeedItem = dict[str, Any]


class StationFeed:
    """Publish/subscribe with bounded queues: a slow screen loses old items, never blocks the line."""

    def __init__(self, maxsize: int = 500, history: int = 200) -> None:
        self._lock = threading.Lock()
        self._subs: list[queue.Queue[FeedItem]] = []
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
        for q in subs:
            while True:
                try:
                    q.put_nowait(item)
                    break
                except queue.Full:
                    try:
                        q.get_nowait()
                    except queue.Empty:
                        pass

    def subscribe(self) -> queue.Queue[FeedItem]:
        q: queue.Queue[FeedItem] = queue.Queue(self._maxsize)
        with self._lock:
            self._subs.append(q)
        return q

    def unsubscribe(self, q: queue.Queue[FeedItem]) -> None:
        with self._lock:
            if q in self._subs:
                self._subs.remove(q)

    def recent(self, kind: str | None = None) -> list[FeedItem]:
        with self._lock:
            return [i for i in self._history if kind is None or i.get("type") == kind]
