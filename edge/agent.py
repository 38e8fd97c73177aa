"""Composition root of the station agent: builds the store, devices, pipeline, sync and terminal."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime

import httpx

from edge.classify import ClassifierStage
from edge.config import EdgeConfig
from edge.errors import ConfigError
from edge.feed import StationFeed
from edge.health import HealthBoard
from edge.intake import Intake
from edge.model_updates import ModelUpdater
from edge.pipeline import Pipeline
from edge.store import EdgeStore, utc_now
from edge.sync import SyncLink, SyncWorker
from edge.wire import DeviceStatusEvent
from scanner_drivers.scanners.open import open_scanner
from scanner_drivers.scanners.scanner import ScannerDriver
from scanner_drivers.sorter.link import SorterLink
from scanner_drivers.sorter.open import open_sorter
from scanner_drivers.types import ScanRead

log = logging.getLogger(__name__)


class EdgeAgent:
    """One station. Start order: store, models (fail fast), sorter link, sync, then the scanner."""

    def __init__(
        self,
        cfg: EdgeConfig,
        token: str | None = None,
        clock: Callable[[], datetime] = utc_now,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.store = EdgeStore(cfg.station.data_dir / "station.db")
        self.boot_id = f"b{self.store.start_boot()}"
        self.feed = StationFeed()
        self.health = HealthBoard()
        self.health.register("scanner", quiet_after_s=cfg.devices.scanner_quiet_s)
        self.classifier = ClassifierStage(cfg.classifier)
        self.health.report("model", True, self.classifier.describe)
        self.sorter: SorterLink | None = open_sorter(cfg.sorter.url) if cfg.sorter.url else None
        if self.sorter is not None:
            self.health.register("sorter", up=True)
            self.health.report("sorter", True, "waiting for the first divert")
        self.pipeline = Pipeline(
            cfg, self.store, self.classifier, self.sorter, self.feed, self.boot_id, clock, self.health
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
            )
            if cfg.server.models_interval_s and self.classifier.live is not None:
                self.models = ModelUpdater(
                    self.classifier,
                    link.client,
                    cfg.station.data_dir / "models",
                    self.health,
                    cfg.server.models_interval_s,
                )
        self.scanner: ScannerDriver = open_scanner(cfg.devices.scanner)
        self.intake = Intake(cfg.devices, self.health, self.on_parcel)
        self.parcels = 0
        self._errors = 0
        self._lock = threading.Lock()

    def start(self, scanner: bool = True) -> None:
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
        self.health.seen("scanner")
        self.intake.take(read)

    def on_parcel(self, read: ScanRead, missing_images: int) -> None:
        try:
            event = self.pipeline.process(read, missing_images)
        except Exception:
            # One bad parcel must not stop the line: log it, count it, keep reading.
            log.exception("parcel from %s could not be processed", read.device)
            with self._lock:
                self._errors += 1
            return
        with self._lock:
            self.parcels += 1
        if self.sync is not None and event.decision != "CLEAR":
            self.sync.kick()

    def on_status(self, device: str, up: bool, detail: str) -> None:
        self.health.report("scanner", up, detail)
        ev = DeviceStatusEvent(
            **self.store.stamp(self.cfg.station.id, self.boot_id, self.clock()),
            device=device,
            up=up,
            detail=detail[:200],
        )
        self.store.append_events([ev])
        self.feed.publish({"type": "health", "device": "scanner", "up": up, "detail": detail})

    @property
    def errors(self) -> int:
        with self._lock:
            return self._errors

    def stop(self) -> None:
        self.scanner.stop()
        self.scanner.join(5)
        self.intake.stop()
        if self.models is not None:
            self.models.stop()
        if self.sync is not None:
            self.sync.stop()
            self.sync.link.close()
        if self.sorter is not None:
            self.sorter.close()
        self.store.close()
