"""Wakes long-polling stations when orders change: in-process broadcast, fed by PostgreSQL LISTEN/NOTIFY.

A notification names the sites whose stations have new orders (none named: every site), so that a
province's stations are not all woken, each to query for nothing, by every order one site raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Collection

from sqlalchemy import Connection, text

log = logging.getLogger(__name__)

CHANNEL = "parcelguard_orders"


class Subscription:
    """One waiter; `wait` returns when any notification arrived after it was created."""

    def __init__(self, owner: OrderNotifier, loop: asyncio.AbstractEventLoop, site: str | None) -> None:
        self._owner = owner
        self.loop = loop
        self.site = site
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

    def subscribe(self, site: str | None = None) -> Subscription:
        """A waiter for orders of `site` (None: woken by every notification)."""
        sub = Subscription(self, asyncio.get_running_loop(), site)
        with self._lock:
            self._subs.add(sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    def notify(self, sites: Collection[str] | None = None) -> None:
        """Wake the waiters of `sites` (None: every waiter)."""
        with self._lock:
            self.version += 1
            subs = [s for s in self._subs if sites is None or s.site is None or s.site in sites]
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


def publish_orders_changed(conn: Connection, sites: Collection[str] | None = None) -> None:
    """Inside a write transaction on PostgreSQL: every server process hears it at commit and wakes the
    waiters of `sites` (None: all)."""
    if conn.dialect.name == "postgresql":
        payload = "" if sites is None else json.dumps(sorted(sites))
        conn.execute(text("SELECT pg_notify(:ch, :payload)"), {"ch": CHANNEL, "payload": payload})


def notified_sites(payload: str) -> Collection[str] | None:
    """The sites a notification's payload names; None (every site) for an empty or unreadable one."""
    try:
        sites = json.loads(payload) if payload else None
    except ValueError:
        return None
    return set(sites) if isinstance(sites, list) and all(isinstance(s, str) for s in sites) else None


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
                        for note in conn.notifies(timeout=0.5):
                            self._notifier.notify(notified_sites(note.payload))
            except psycopg.Error as exc:
                log.warning("order notification listener lost its connection: %s", exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
