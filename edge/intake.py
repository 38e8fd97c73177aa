"""Parcel intake: joins each scanner read with its camera frame and X-ray shot before the pipeline."""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable

from edge.backlog import Backlog
from edge.config import DevicesConfig
from edge.health import HealthBoard
from edge.supervise import supervised
from scanner_drivers.binding import BindResult, ImageBinder
from scanner_drivers.camera.driver import CameraDriver
from scanner_drivers.types import DeviceError, ImageCapture, ScanRead
from scanner_drivers.xray.hotfolder import HotFolderDriver

log = logging.getLogger(__name__)

# (read with its images, number of images that never came)
ParcelCallback = Callable[[ScanRead, int], None]


class Intake:
    """Reads go straight to the pipeline unless an X-ray feed is configured; then each read waits
    (at most `image_wait_s`, and never past `budget_s` after the read) for its shot, and a read whose shot
    never came goes on as missing one. The camera frame of a read is taken on the intake's own
    thread: the scanner's reader thread only enqueues, and goes back to reading its port.
    """

    def __init__(
        self,
        cfg: DevicesConfig,
        health: HealthBoard,
        on_parcel: ParcelCallback,
        budget_s: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self.health = health
        self.on_parcel = on_parcel
        self.budget_s = budget_s
        self.monotonic = monotonic
        self.camera = CameraDriver(cfg.camera) if cfg.camera else None
        self.xray = HotFolderDriver(cfg.xray) if cfg.xray else None
        wait_s = cfg.image_wait_s if budget_s is None else min(cfg.image_wait_s, budget_s)
        self.binder = (
            ImageBinder(cfg.binding, wait_s=wait_s, after_s=wait_s) if self.xray is not None else None
        )
        self.backlog = Backlog()
        self._reads: queue.SimpleQueue[ScanRead | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._taker: threading.Thread | None = None
        if self.camera is not None:
            health.register("camera")
        if self.xray is not None:
            health.register("xray")

    def start(self) -> None:
        if self.camera is not None:
            try:
                self.camera.start(lambda _dev, up, detail: self.health.report("camera", up, detail))
            except DeviceError as exc:
                # The line runs on without a camera; the terminal shows the tile red.
                log.error("camera %s not available: %s", self.cfg.camera, exc)
                self.health.report("camera", False, str(exc)[:200])
            self._taker = supervised(
                self._take_loop, "edge-intake-camera", self._stop, on_give_up=self.health.crashed
            )
        if self.xray is not None and self.binder is not None:
            self.xray.start(
                self._on_shot, lambda _d, up, detail: self.health.report("xray", up, detail), self._on_reject
            )
            self._thread = supervised(
                self._bind_loop, "edge-intake", self._stop, on_give_up=self.health.crashed
            )

    def _on_shot(self, shot: tuple[ImageCapture, ...]) -> None:
        assert self.binder is not None
        self.health.seen("xray")
        self.binder.add_shot(shot)

    def _on_reject(self, name: str, reason: str) -> None:
        log.warning("X-ray image %s quarantined: %s", name, reason)
        self.health.report("xray", True, f"quarantined {name}: {reason}"[:200])

    def take(self, read: ScanRead) -> None:
        """A scanner read: returns at once; the camera frame (if any) is added on the intake's thread."""
        self.backlog.add()
        if self.camera is not None and self._taker is not None:
            self._reads.put(read)
        else:
            self._handle(read)

    def _take_loop(self) -> None:
        while True:
            read = self._reads.get()
            if read is None:
                return
            try:
                self._handle(read)
            except Exception:
                # The read must still go on (held as missing its frame), or the parcel would vanish.
                log.exception("camera frame for the read at %s failed", read.at_utc)
                self._hand_on(read, 0)

    def _wait_s(self, read: ScanRead) -> float:
        if self.budget_s is None:
            return self.cfg.image_wait_s
        left = read.at_monotonic + self.budget_s - self.monotonic()
        return max(0.001, min(self.cfg.image_wait_s, left))

    def _hand_on(self, read: ScanRead, missing: int) -> None:
        try:
            self.on_parcel(read, missing)
        finally:
            self.backlog.done()

    def _handle(self, read: ScanRead) -> None:
        """Add the camera frame taken at the trigger, then bind or hand on."""
        if self.camera is not None:
            try:
                frame = self.camera.capture(timeout_s=self._wait_s(read), at_monotonic=read.at_monotonic)
            except DeviceError as exc:
                self.health.report("camera", False, str(exc)[:200])
            else:
                self.health.seen("camera")
                frame = dataclasses.replace(frame, kind=self.cfg.camera_kind)
                read = dataclasses.replace(read, images=(*read.images, frame))
        if self.binder is None:
            self._hand_on(read, 0)
        else:
            self.binder.add_read(read)

    def _bind_loop(self) -> None:
        assert self.binder is not None
        while not self._stop.wait(0.05):
            self._release(self.binder.poll())
        self._release(self.binder.flush())

    def _release(self, result: BindResult) -> None:
        for item in result.bound:
            images = (*item.read.images, *item.images)
            missing = 1 if item.status == "missing image" else 0
            if missing:
                log.warning("no X-ray image came for the read at %s", item.read.at_utc)
            self._hand_on(dataclasses.replace(item.read, images=images), missing)
        for orphan in result.orphans:
            names = ", ".join(img.name for img in orphan.images)
            log.warning("X-ray shot %s matched no parcel: %s", names, orphan.reason)

    def pending(self) -> int:
        return self.binder.pending()[0] if self.binder is not None else 0

    def drain(self, timeout_s: float) -> bool:
        return self.backlog.wait_idle(timeout_s)

    def stop(self) -> None:
        # Reads already taken are handed on first: a stop never drops a parcel.
        self._reads.put(None)
        if self._taker is not None:
            self._taker.join(10)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self.xray is not None:
            self.xray.stop()
            self.xray.join(5)
        if self.camera is not None:
            self.camera.stop()
