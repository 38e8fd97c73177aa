"""The links job: split-shipment detection, consolidated review items and sender risk, now or on a timer."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from server.db import Database, serialise_writers, utcnow
from server.links.clusters import consolidate, find_clusters
from server.links.risk import update_risks
from server.periodic import Periodic
from server.settings import ServerSettings

log = logging.getLogger(__name__)
# Advisory lock (PostgreSQL) of the job's write: server workers running it at once take turns, and the
# later one finds the clusters already stored and grows them instead of opening them again.
LINKS_LOCK = 7_482_160


def run_links(db: Database, settings: ServerSettings, now: datetime | None = None) -> dict[str, Any]:
    """Detect in a read transaction (ingest goes on), then store clusters and risks in one write."""
    now = now or utcnow()
    t0 = time.perf_counter()
    with db.read() as conn:
        clusters = find_clusters(conn, settings.links, now)
    with db.write() as conn:
        serialise_writers(conn, LINKS_LOCK)
        stored = consolidate(conn, clusters, settings, now)
        risks = update_risks(conn, settings.links, now)
    return {**stored, "risky_senders": risks["senders"], "risk_sent": risks["sent"],
            "seconds": round(time.perf_counter() - t0, 2)}  # fmt: skip


class LinksWorker:
    """A thread that runs the links job every `interval_s`; a failed run is logged and retried next time."""

    def __init__(self, db: Database, settings: ServerSettings) -> None:
        self.db = db
        self.settings = settings
        every = settings.links.detect_interval_s
        self._timer = Periodic("links-job", self.run_once, every, every)

    def run_once(self) -> dict[str, Any] | None:
        try:
            result = run_links(self.db, self.settings)
        except SQLAlchemyError as exc:
            log.warning("links job failed, will retry: %s", exc)
            return None
        log.info("links job: %s", result)
        return result

    def start(self) -> None:
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
