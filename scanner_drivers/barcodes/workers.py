"""Reusable worker threads that run a job while the caller waits only until a deadline."""

from __future__ import annotations

import atexit
import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

IDLE_EXIT_S = 60.0


class _Worker:
    """One thread taking jobs from its own queue; it leaves after IDLE_EXIT_S without work."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        # None asks the worker to leave.
        self.jobs: queue.SimpleQueue[tuple[Callable[[], None], threading.Event] | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name="barcode-worker", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            try:
                item = self.jobs.get(timeout=IDLE_EXIT_S)
            except queue.Empty:
                if self.pool.retire(self):
                    return
                continue
            if item is None:
                return
            job, done = item
            try:
                job()
            except Exception:  # jobs report their own errors; this only keeps the worker alive
                log.exception("barcode worker job failed")
            finally:
                done.set()
                self.pool.release(self)


class WorkerPool:
    """Threads kept between calls: handing a job to a waiting thread costs microseconds, starting one
    costs a fraction of a millisecond, which matters when most images take about one.

    A job the caller stopped waiting for keeps its thread until it ends; the next call then gets
    another thread, so one slow image never delays the next.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._all: list[_Worker] = []
        self._exit_hook = False
        self.busy = 0

    def run(self, job: Callable[[], None], timeout_s: float) -> bool:
        """Run job on a worker; True when it finished within timeout_s, False when still running."""
        with self._lock:
            worker = self._idle.pop() if self._idle else None
            self.busy += 1
        if worker is None:
            worker = self._start_worker()
        done = threading.Event()
        worker.jobs.put((job, done))
        return done.wait(timeout_s)

    def _start_worker(self) -> _Worker:
        worker = _Worker(self)
        with self._lock:
            self._all.append(worker)
            if not self._exit_hook:
                atexit.register(self.stop)
                self._exit_hook = True
        return worker

    def stop(self) -> None:
        """Let every worker finish its job and leave. Runs at exit: an engine still inside native
        code when the interpreter tears down its threads aborts the whole process."""
        with self._lock:
            workers, self._all, self._idle = list(self._all), [], []
        for worker in workers:
            worker.jobs.put(None)
        for worker in workers:
            worker.thread.join()

    def release(self, worker: _Worker) -> None:
        with self._lock:
            self.busy -= 1
            self._idle.append(worker)

    def retire(self, worker: _Worker) -> bool:
        """Called by an idle worker that waited long enough; True when it may exit."""
        with self._lock:
            if worker in self._idle and worker.jobs.empty():
                self._idle.remove(worker)
                self._all.remove(worker)
                return True
            return False
