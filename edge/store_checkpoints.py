"""Checkpoints of the station database's write-ahead log, on a thread of their own beside the writer."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

CHECKPOINT_EVERY_S = 1.0


class Checkpointer:
    """Copies the write-ahead log back into the database now and then.

    The writer's connection has automatic checkpoints off: one inside a parcel's commit can take
    longer than a parcel may wait. PASSIVE checkpoints never wait for the writer nor make it wait;
    the log starts over once a checkpoint has caught up with it.
    """

    def __init__(self, path: Path, every_s: float = CHECKPOINT_EVERY_S) -> None:
        self.path = path
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="edge-store-checkpoint", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        try:
            conn = sqlite3.connect(str(self.path), check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=1000")
        except sqlite3.Error as exc:
            log.error("checkpoints of %s not running: %s", self.path, exc)
            return
        try:
            while not self._stop.wait(self.every_s):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:  # busy or full: the next round tries again
                    log.warning("checkpoint of %s skipped: %s", self.path, exc)
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
