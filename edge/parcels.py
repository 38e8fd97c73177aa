"""The parcel worker: takes reads from the drivers' threads and runs them through the pipeline, in order."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from edge.backlog import Backlog
from edge.feed import StationFeed
from edge.pipeline import Pipeline, Prepared
from edge.supervise import supervised
from edge.wire import ParcelEvent
from scanner_drivers.types import ScanRead

log = logging.getLogger(__name__)


class ParcelWorker:
    """Parcels are assessed by `parallel` threads at once, and recorded by one, in read order.

    `submit` never blocks: a driver's thread only enqueues. A queue that grows behind a slow
    stage does not make decisions late: each parcel checks its own time left (LATE holds).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        feed: StationFeed,
        on_done: Callable[[ParcelEvent], None] | None = None,
        on_give_up: Callable[[str, BaseException], None] | None = None,
        parallel: int = 1,
    ) -> None:
        self.pipeline = pipeline
        self.feed = feed
        self.on_done = on_done
        self.on_give_up = on_give_up
        self.backlog = Backlog()
        # With one assessing thread the recording thread assesses too; with more, it waits on each
        # parcel's assessment in turn, so records (and sequence numbers) keep the read order.
        self._assess = (
            ThreadPoolExecutor(parallel, thread_name_prefix="edge-assess") if parallel > 1 else None
        )
        self._queue: queue.SimpleQueue[tuple[ScanRead, int, Future[Prepared] | None] | None] = (
            queue.SimpleQueue()
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.parcels = 0
        self.failed = 0

    def submit(self, read: ScanRead, missing_images: int = 0) -> None:
        self.backlog.add()
        prep = None
        if self._assess is not None:
            try:
                prep = self._assess.submit(self.pipeline.prepare, read, missing_images)
            except RuntimeError:
                prep = None  # stopping: assessed on the recording thread instead
        self._queue.put((read, missing_images, prep))

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

    def _one(self, read: ScanRead, missing: int, prep: Future[Prepared] | None) -> None:
        try:
            # prepare() never raises; a broken future is a bug below it, and fails closed here.
            prepared = prep.result() if prep is not None else self.pipeline.prepare(read, missing)
            event = self.pipeline.commit(read, prepared)
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
        if self._assess is not None:
            self._assess.shutdown(wait=False, cancel_futures=True)
