"""A daemon thread that runs one job at intervals until stopped: the server's timed jobs share it."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Periodic:
    """Calls `job` after `first_wait_s`, then every `every_s`, until stopped; the job logs its failures."""

    def __init__(self, name: str, job: Callable[[], object], first_wait_s: float, every_s: float) -> None:
        self.job = job
        self.first_wait_s = first_wait_s
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout=timeout_s)

    def _run(self) -> None:
        wait = self.first_wait_s
        while not self._stop.wait(wait):
            self.job()
            wait = self.every_s
