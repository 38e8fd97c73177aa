"""A count of work handed on but not finished, that a caller can wait to reach zero (drain)."""

from __future__ import annotations

import threading
import time


class Backlog:
    """Thread-safe; `wait_idle` is how tests, the demo and benchmarks know that a stage is done."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._n = 0

    def add(self, n: int = 1) -> None:
        with self._cond:
            self._n += n

    def done(self, n: int = 1) -> None:
        with self._cond:
            self._n = max(0, self._n - n)
            if self._n == 0:
                self._cond.notify_all()

    @property
    def size(self) -> int:
        with self._cond:
            return self._n

    def wait_idle(self, timeout_s: float) -> bool:
        """True once nothing is outstanding; False when `timeout_s` passed first."""
        end = time.monotonic() + timeout_s
        with self._cond:
            while self._n:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True
