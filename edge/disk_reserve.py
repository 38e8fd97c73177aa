"""Space held back on the station's disk, given up the moment the disk is full so records still land."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
# How often, once the reserve was given up, the station looks whether it can be taken back.
RESTORE_EVERY_S = 30.0
# The reserve is taken back only when this many times its size is free: a disk that is only
# just not full would be filled again by the reserve itself.
RESTORE_HEADROOM = 4


class DiskReserve:
    """A file of zeros beside the station's database.

    A full disk makes SQLite refuse every write; a record then lives only in memory, and a kill
    loses it. With the reserve, the first refused write deletes the file and is tried again, so
    the records of the next megabytes reach the disk while the operator frees space (the station
    reports the disk red from that moment). The file is written again once there is room.
    """

    def __init__(
        self,
        path: Path,
        size_bytes: int,
        on_change: Callable[[bool, str], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.size = size_bytes
        self.on_change = on_change or (lambda _ok, _detail: None)
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._next_try = 0.0
        self.released = 0

    @property
    def held(self) -> bool:
        return self.size > 0 and self.path.exists() and self.path.stat().st_size >= self.size

    def release(self, why: str) -> bool:
        """Give the reserve up (the disk is full); False when there was none to give."""
        with self._lock:
            if self.size <= 0 or not self.path.exists():
                return False
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self.released += 1
            self._next_try = self.monotonic() + RESTORE_EVERY_S
        detail = f"disk full ({why}): the reserve of {self.size // CHUNK} MiB is in use; free space now"
        log.error("%s", detail)
        self.on_change(False, detail[:200])
        return True

    def restore_when_due(self) -> None:
        """After a release: take the reserve back once there is room again (checked now and then)."""
        if self.size <= 0 or self.monotonic() < self._next_try:
            return
        if self.path.exists():
            return
        self._next_try = self.monotonic() + RESTORE_EVERY_S
        self.restore()

    def restore(self) -> bool:
        """Write the reserve if it is missing and the disk has room for it; True when it is held."""
        if self.size <= 0:
            return False
        with self._lock:
            if self.held:
                return True
            try:
                free = shutil.disk_usage(self.path.parent).free
            except OSError:
                return False
            if free < RESTORE_HEADROOM * self.size:
                return False
            partial = self.path.with_name(self.path.name + ".part")
            try:
                with open(partial, "wb") as fh:
                    _allocate(fh.fileno(), self.size)
                os.replace(partial, self.path)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    partial.unlink()
                log.warning("disk reserve %s not written: %s", self.path, exc)
                return False
        if self.released:
            self.on_change(True, f"disk reserve of {self.size // CHUNK} MiB held again")
        return True


def _allocate(fd: int, size: int) -> None:
    """Real blocks, not a sparse file: a hole would free nothing when it is deleted."""
    try:
        os.posix_fallocate(fd, 0, size)
        return
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise
    zeros = bytes(CHUNK)
    left = size
    while left > 0:
        left -= os.write(fd, zeros[: min(CHUNK, left)])
