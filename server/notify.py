"""Wakes long-polling stations when orders change: in-process broadcast, fed by PostgreSQL LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time

from sqlalchemy import Connection, text

log = logging.getLogger(__name__)

CHANNEL = "parcelguard_orders"


class Subscription:
    """One waiter; `wait` returns when any notification arrived after it was created."""

    def __init__(self, owner: OrderNotifier, loop: asyncio.AbstractEventLoop) -> None:
        self._owner = owner
        self.loop = loop
        self.event = asyncio.Event()

    async def wait(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self.event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        self._owner._remove(self)


class OrderNotifier:
    """Broadcast "orders changed" to every subscriber in this process, from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: set[Subscription] = set()
        self._cond = threading.Condition(self._lock)
        self.version = 0

    def subscribe(self) -> Subscription:
        sub = Subscription(self, asyncio.get_running_loop())
        with self._lock:
            self._subs.add(sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    def notify(self) -> None:
        with self._lock:
            self.version += 1
            subs = list(self._subs)
            self._cond.notify_all()
        for sub in subs:
            with contextlib.suppress(RuntimeError):  # its loop has closed: the waiter is gone
                sub.loop.call_soon_threadsafe(sub.event.set)

    def wait_sync(self, seen_version: int, timeout: float) -> int:
        """Block a plain thread until the version passes `seen_version` or `timeout` runs out."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.version <= seen_version:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return self.version


def publish_orders_changed(conn: Connection) -> None:
    """Inside a write transaction on PostgreSQL: every server process hears it at commit."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_notify(:ch, '')"), {"ch": CHANNEL})


class PgListenWorker:
    """A thread holding a LISTEN connection; each notification wakes this process's pollers."""

    def __init__(self, conninfo: str, notifier: OrderNotifier) -> None:
        self._conninfo = conninfo
        self._notifier = notifier
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-listen", daemon=True)
        self.ready = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        import psycopg

        backoff = 0.5
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    backoff = 0.5
                    # Anything published while we were away must not be missed: wake everyone once.
                    self._notifier.notify()
                    self.ready.set()
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=0.5):
                            self._notifier.notify()
            except psycopg.Error as exc:
                log.warning("order notification listener lost its connection: %s", exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
