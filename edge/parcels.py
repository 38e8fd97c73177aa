"""The parcel worker: takes reads from the drivers' threads and runs them through the pipeline, in order."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from edge.backlog import Backlog
from edge.feed import StationFeed
from edge.pipeline import Pipeline
from edge.supervise import supervised
from edge.wire import ParcelEvent
from scanner_drivers.types import ScanRead

log = logging.getLogger(__name__)


class ParcelWorker:
    """One thread, so a line's parcels are recorded in the order they were read.

    `submit` never blocks: a driver's thread only enqueues. A queue that grows behind a slow
    stage does not make decisions late: each parcel checks its own time left (LATE holds).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        feed: StationFeed,
        on_done: Callable[[ParcelEvent], None] | None = None,
        on_give_up: Callable[[str, BaseException], None] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.feed = feed
        self.on_done = on_done
        self.on_give_up = on_give_up
        self.backlog = Backlog()
        self._queue: queue.SimpleQueue[tuple[ScanRead, int] | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.parcels = 0
        self.failed = 0

    def submit(self, read: ScanRead, missing_images: int = 0) -> None:
        self.backlog.add()
        self._queue.put((read, missing_images))

    def start(self) -> None:
        if self._thread is None:
            self._thread = supervised(self._loop, "edge-parcels", self._stop, on_give_up=self.on_give_up)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self._one(*item)
            finally:
                self.backlog.done()

    def _one(self, read: ScanRead, missing: int) -> None:
        try:
            event = self.pipeline.process(read, missing)
        except Exception as exc:
            # The pipeline holds and records on its own; reaching here means even that failed.
            log.critical("parcel from %s could not be recorded at all", read.device, exc_info=exc)
            with self._lock:
                self.failed += 1
            self.feed.publish(
                {"type": "alert", "kind": "processing_error", "error": type(exc).__name__, "recorded": False}
            )
            return
        with self._lock:
            self.parcels += 1
        if self.on_done is not None:
            self.on_done(event)

    def drain(self, timeout_s: float) -> bool:
        return self.backlog.wait_idle(timeout_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Finish what is queued (each parcel within its own deadline), then end the thread."""
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout_s)
