"""Writes the parcel path's records; one the disk refused is kept, retried on a timer, flushed at stop."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from edge.errors import StoreError
from edge.feed import StationFeed
from edge.health import HealthBoard
from edge.store import DivertIntent, EdgeStore, ImageBlob
from edge.supervise import supervised
from edge.wire import Event

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Record:
    """What one transaction writes: events, held images, order states and divert intents."""

    events: tuple[Event, ...]
    images: tuple[ImageBlob, ...] = ()
    closing: tuple[tuple[str, str], ...] = ()
    intents: tuple[DivertIntent, ...] = ()
    settled: tuple[str, ...] = ()
    upload: tuple[str, ...] = field(default=())


class Recorder:
    """Records go to the store's writer ahead of other work; while the disk refuses them they wait
    in memory, in order, and a background loop retries them every `retry_s` seconds.
    """

    def __init__(
        self, store: EdgeStore, feed: StationFeed, health: HealthBoard, retry_s: float = 5.0
    ) -> None:
        self.store = store
        self.feed = feed
        self.health = health
        self.retry_s = retry_s
        self._lock = threading.Lock()
        self._unsaved: list[Record] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = 0

    def record(self, rec: Record) -> bool:
        """Write `rec` after any kept ones; False when it is kept in memory (the disk refused it).

        Errors other than the store's own propagate: the caller's record itself is wrong.
        """
        with self._lock:
            if self._unsaved:
                self._unsaved.append(rec)
                return self._flush_locked()
        # Nothing kept: written at once, without waiting on other writers. A record that depends
        # on another (an outcome on its intent) is only made once that one's record() returned,
        # so it queues behind it whenever that one was kept.
        try:
            self._write(rec)
        except StoreError as exc:
            with self._lock:
                self._unsaved.append(rec)
                self._kept(exc)
            return False
        return True

    def _write(self, rec: Record) -> None:
        self.store.append_events(
            rec.events,
            rec.images,
            rec.closing,
            upload=rec.upload,
            intents=rec.intents,
            settled=rec.settled,
            urgent=True,
        )

    def _kept(self, exc: StoreError) -> None:
        log.error("%d record(s) not written yet, kept in memory: %s", len(self._unsaved), exc)
        self.health.report("store", False, f"{len(self._unsaved)} record(s) waiting: {exc}"[:200])
        self.feed.publish({"type": "alert", "kind": "store_failed", "detail": str(exc)[:300]})

    def _flush_locked(self) -> bool:
        while self._unsaved:
            rec = self._unsaved[0]
            try:
                self._write(rec)
            except StoreError as exc:
                self._kept(exc)
                return False
            except Exception:
                # A record the store cannot take at all must not block the ones behind it.
                self._unsaved.pop(0)
                raise
            self._unsaved.pop(0)
        return True

    def retry(self) -> bool:
        """One retry of the kept records; True when none is left."""
        with self._lock:
            if not self._unsaved:
                return True
            ok = self._flush_locked()
        if ok:
            log.info("records kept in memory are now written")
            self.health.report("store", True, "all records written")
        return ok

    @property
    def unsaved(self) -> int:
        with self._lock:
            return len(self._unsaved)

    def start(self) -> None:
        self._thread = supervised(self._loop, "edge-recorder", self._stop, on_give_up=self.health.crashed)

    def _loop(self) -> None:
        while not self._stop.wait(self.retry_s):
            self.retry()

    def stop(self) -> None:
        """Last try to write what is kept; what still cannot be written is reported loudly, and counted."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self.retry():
            return
        with self._lock:
            left, self._unsaved = self._unsaved, []
        self.lost += len(left)
        keys = [ev.key for rec in left for ev in rec.events]
        log.critical("station stopping with %d event(s) never written: %s", len(keys), ", ".join(keys[:20]))
        self.health.report("store", False, f"{len(keys)} event(s) lost at shutdown")
        self.feed.publish({"type": "alert", "kind": "store_lost", "detail": f"{len(keys)} event(s) lost"})
