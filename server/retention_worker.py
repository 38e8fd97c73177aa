"""The server's scheduled retention: a thread that runs retention when the last finished run is too old."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from server.db import Database, iso, utcnow
from server.errors import RetentionBusy
from server.periodic import Periodic
from server.retention_run import RetentionReport, apply_retention
from server.schema import retention_runs
from server.settings import ServerSettings

log = logging.getLogger(__name__)

ACTOR = "retention-job"
# The first look comes a while after start, so that a server started for a moment (a test, a check)
# does not delete, and a busy start-up is not slowed; then the job looks at most hourly.
FIRST_LOOK_S = 300.0
LOOK_EVERY_S = 3600.0


class RetentionWorker:
    """Runs retention when no run finished within `interval_hours`; several servers on one database
    share the schedule through the run ledger (the first one due runs, the others find it done)."""

    def __init__(
        self,
        db: Database,
        settings: ServerSettings,
        first_look_s: float = FIRST_LOOK_S,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.settings = settings
        self.interval = timedelta(hours=settings.retention.interval_hours)
        self.first_look_s = first_look_s
        self.clock = clock
        every = min(LOOK_EVERY_S, self.interval.total_seconds())
        self._timer = Periodic("retention", self.run_if_due, first_look_s, every)

    @property
    def running(self) -> bool:
        return self._timer.running

    def due(self) -> bool:
        with self.db.read() as conn:
            last = conn.execute(
                select(func.max(retention_runs.c.finished_at)).where(retention_runs.c.state == "done")
            ).scalar()
        return last is None or last <= iso(self.clock() - self.interval)

    def run_if_due(self) -> RetentionReport | None:
        """One look: a run when due; a run elsewhere in progress or a failure is logged, not raised."""
        try:
            if not self.due():
                return None
            report = apply_retention(self.db, self.settings, ACTOR, clock=self.clock)
        except RetentionBusy as exc:
            log.info("retention not started: %s", exc)
            return None
        except (OSError, SQLAlchemyError) as exc:
            log.warning("retention run failed, will retry: %s", exc)
            return None
        for problem in report.problems:
            log.error("retention: %s", problem)
        return report

    def start(self) -> None:
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
