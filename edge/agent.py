"""Composition root of the station agent: builds the store, devices, pipeline, sync and terminal."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx

from edge.classify import ClassifierStage
from edge.config import EdgeConfig
from edge.destination import AnsweringLink, ControllerRequests
from edge.errors import ConfigError
from edge.feed import StationFeed
from edge.health import HealthBoard
from edge.intake import Intake
from edge.model_updates import ModelUpdater
from edge.parcels import ParcelWorker
from edge.pipeline import Pipeline
from edge.recorder import Record
from edge.sorter_watch import SorterWatch
from edge.store import EdgeStore, utc_now
from edge.sync import SyncLink, SyncWorker
from edge.wire import DeviceStatusEvent, ParcelEvent
from scanner_drivers.scanners.open import open_scanner
from scanner_drivers.scanners.scanner import ScannerDriver
from scanner_drivers.sorter.link import SorterLink
from scanner_drivers.sorter.open import open_destination_link, open_sorter
from scanner_drivers.sorter.request import DestinationLink
from scanner_drivers.types import ScanRead

log = logging.getLogger(__name__)


class EdgeAgent:
    """One station. Start order: store, models (fail fast), sorter link, sync, then the scanner.

    The parcel path never blocks a driver: the scanner's thread enqueues its read, the intake
    adds the camera frame and X-ray shot, one parcel worker decides and records the divert
    intent, and the divert dispatcher sends it and records its outcome.
    """

    def __init__(
        self,
        cfg: EdgeConfig,
        token: str | None = None,
        clock: Callable[[], datetime] = utc_now,
        transport: httpx.BaseTransport | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.health = HealthBoard()
        self.feed = StationFeed()
        self.health.register("disk", up=True)
        self.store = EdgeStore(
            cfg.station.data_dir / "station.db", cfg.station.disk_reserve_mb * 1024 * 1024, self._on_disk
        )
        self.boot_id = f"b{self.store.start_boot()}"
        self.health.register("scanner", quiet_after_s=cfg.devices.scanner_quiet_s)
        self.classifier = ClassifierStage(cfg.classifier)
        self.health.report("model", True, self.classifier.describe)
        self.requests: DestinationLink | None = None
        self.sorter: SorterLink | None = None
        if cfg.sorter.url and cfg.sorter.mode == "request":
            # The controller asks: its requests are the reads, the decisions its answers.
            self.requests = open_destination_link(cfg.sorter.url)
            self.sorter = AnsweringLink(self.requests)
        elif cfg.sorter.url:
            self.sorter = open_sorter(cfg.sorter.url)
        self.sorter_watch: SorterWatch | None = None
        if self.sorter is not None:
            # Red until the first probe connects: a sorter nothing listens on must not look fine.
            self.health.register("sorter", up=False)
            self.health.report("sorter", False, "checking the connection")
            self.sorter_watch = SorterWatch(self.sorter, self.health)
        self.pipeline = Pipeline(
            cfg,
            self.store,
            self.classifier,
            self.sorter,
            self.feed,
            self.boot_id,
            clock,
            self.health,
            monotonic,
        )
        self.worker = ParcelWorker(
            self.pipeline, self.feed, self._recorded, self.health.crashed, cfg.classifier.parcels
        )
        self.sync: SyncWorker | None = None
        self.models: ModelUpdater | None = None
        if cfg.server.url:
            token = token if token is not None else os.environ.get(cfg.server.token_env, "")
            if not token:
                raise ConfigError(
                    f"server.url is set but the station token is missing: set {cfg.server.token_env}"
                )
            link = SyncLink(cfg.server.url, token, cfg.server.timeout_s, transport)
            self.sync = SyncWorker(
                self.store,
                link,
                cfg.server,
                cfg.station.id,
                self.boot_id,
                self.health,
                self.feed,
                clock,
                cfg.station.keep_images_days,
                cfg.station.keep_events_days,
            )
            if cfg.server.models_interval_s and self.classifier.live is not None:
                self.models = ModelUpdater(
                    self.classifier,
                    link.client,
                    cfg.station.data_dir / "models",
                    self.health,
                    cfg.server.models_interval_s,
                )
        self.scanner: ScannerDriver = (
            open_scanner(cfg.devices.scanner)
            if cfg.devices.scanner is not None
            else ControllerRequests(self._request_link())
        )
        # Images are waited for only while a held parcel could still be diverted: three send
        # margins before the divert point (one to decide and record, one to send, one spare).
        image_budget = max(0.001, cfg.sorter.budget_s - 3 * cfg.sorter.send_margin_s)
        self._status = ThreadPoolExecutor(1, thread_name_prefix="edge-status")
        # Every device's changes go to the server as device_status events, starting with the
        # state each one is in now (one event per device per boot, then changes only).
        self.health.listen(self._on_change, replay=True)
        self.intake = Intake(cfg.devices, self.health, self.on_parcel, image_budget, monotonic)

    def _on_disk(self, ok: bool, detail: str) -> None:
        self.health.report("disk", ok, detail)
        if not ok:
            self.feed.publish({"type": "alert", "kind": "store_failed", "detail": detail})

    def _request_link(self) -> DestinationLink:
        if self.requests is None:  # the configuration refuses this; a clear error all the same
            raise ConfigError("devices.scanner is not set and the sorter does not ask (mode=request)")
        return self.requests

    def start(self, scanner: bool = True) -> None:
        # Diverts intended before a stop whose outcome was never recorded: UNKNOWN, shown to the operator.
        unknown = self.pipeline.dispatcher.resolve_open()
        if unknown:
            log.warning("%d divert(s) from before the restart have an unknown outcome", unknown)
        self.pipeline.recorder.start()
        self.worker.start()
        if self.sorter_watch is not None:
            self.sorter_watch.start()
        if self.sync is not None:
            self.sync.start()
        if self.models is not None:
            self.models.start()
        if scanner:
            self.start_scanner()

    def start_scanner(self) -> None:
        self.intake.start()
        self.scanner.start(self.on_read, self.on_status)

    def on_read(self, read: ScanRead) -> None:
        """Called on the scanner's thread: returns at once, the parcel goes on in the background."""
        self.health.seen("scanner")
        self.intake.take(read)

    def on_parcel(self, read: ScanRead, missing_images: int) -> None:
        """A read with its images, from the intake: queued for the parcel worker."""
        self.worker.submit(read, missing_images)

    def _recorded(self, event: ParcelEvent) -> None:
        if self.sync is not None and event.decision != "CLEAR":
            self.sync.kick()

    @property
    def parcels(self) -> int:
        return self.worker.parcels

    def drain(self, timeout_s: float) -> bool:
        """Wait until every read taken so far is recorded and its divert settled; False on timeout."""
        end = time.monotonic() + timeout_s
        for stage in (self.intake.drain, self.worker.drain, self.pipeline.dispatcher.drain):
            if not stage(max(0.0, end - time.monotonic())):
                return False
        return True

    def on_status(self, device: str, up: bool, detail: str) -> None:
        """Called on the scanner's thread: the board (which records changes) and the feed."""
        self.health.report("scanner", up, detail)
        self.feed.publish({"type": "health", "device": "scanner", "up": up, "detail": detail})

    def _on_change(self, device: str, up: bool, detail: str) -> None:
        """A board tile changed (any thread): recorded in the background, never blocking the reporter."""
        at = self.clock()
        try:
            self._status.submit(self._record_status, device, up, detail, at)
        except RuntimeError:
            log.warning("device status after stop not recorded: %s %s", device, up)

    def _record_status(self, device: str, up: bool, detail: str, at: datetime) -> None:
        try:
            ev = DeviceStatusEvent(
                **self.store.stamp(self.cfg.station.id, self.boot_id, at),
                device=device,
                up=up,
                detail=detail[:200],
            )
            # A full disk keeps it in memory (retried); it never stops the scanner.
            self.pipeline.recorder.record(Record((ev,)))
        except Exception:
            log.exception("device status %s not recorded", device)

    @property
    def errors(self) -> int:
        """Parcels whose processing raised (held and recorded as PROCESSING_ERROR, or not recorded at all)."""
        return self.pipeline.errors + self.worker.failed

    def stop(self) -> None:
        self.scanner.stop()
        self.scanner.join(5)
        if self.sorter_watch is not None:
            self.sorter_watch.stop()
        self._status.shutdown(wait=True)
        # Reads taken are finished and recorded, diverts settled, kept records flushed, before closing.
        self.intake.stop()
        self.worker.stop()
        self.pipeline.stop()
        if self.models is not None:
            self.models.stop()
        if self.sync is not None:
            self.sync.stop()
            self.sync.link.close()
        if self.sorter is not None:
            self.sorter.close()
        self.store.close()
