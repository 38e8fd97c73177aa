"""Divert dispatcher: sends each recorded divert intent on its own threads, then records the outcome."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any

from edge.backlog import Backlog
from edge.config import SorterConfig
from edge.feed import StationFeed
from edge.health import HealthBoard
from edge.recorder import Record, Recorder
from edge.store import DivertIntent, EdgeStore
from edge.wire import DivertOutcome, DivertOutcomeEvent, Event, OrderStatusEvent

if TYPE_CHECKING:
    from scanner_drivers.sorter.link import SorterLink

log = logging.getLogger(__name__)

Stamp = Callable[[datetime], dict[str, Any]]
FAILED = frozenset({"MISSED", "TIMEOUT", "NOT_SENT", "LATE", "UNKNOWN"})


class DivertDispatcher:
    """Several diverts in flight at once: the controller confirms when the parcel reaches its chute,
    long after the next parcels were read, so no parcel waits for another's confirmation.
    """

    def __init__(
        self,
        cfg: SorterConfig,
        sorter: SorterLink | None,
        store: EdgeStore,
        recorder: Recorder,
        feed: StationFeed,
        health: HealthBoard,
        stamp: Stamp,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self.sorter = sorter
        self.store = store
        self.recorder = recorder
        self.feed = feed
        self.health = health
        self.stamp = stamp
        self.clock = clock
        self.monotonic = monotonic
        self.backlog = Backlog()
        self._pool = ThreadPoolExecutor(cfg.in_flight, thread_name_prefix="edge-divert")
        self._lock = threading.Lock()
        self.failures = 0

    def submit(self, intent: DivertIntent, deadline_at: float) -> None:
        """Send `intent` (already recorded) before `deadline_at` (monotonic seconds); returns at once."""
        self.backlog.add()
        try:
            self._pool.submit(self._send, intent, deadline_at)
        except RuntimeError:
            # Stopping: the intent stays open and is resolved as UNKNOWN at the next start.
            self.backlog.done()
            log.error("divert for %s not sent: the station is stopping", intent.tracking_id)

    def answer_clear(self, carrier_id: str) -> None:
        """Request mode: a cleared parcel's controller still waits for an answer (route normally).

        Nothing is diverted, so nothing is recorded beyond the parcel's event; a refused or lost
        answer only means the controller applied its own default, which the health board shows.
        """
        if self.sorter is None:
            return
        self.backlog.add()
        try:
            self._pool.submit(self._answer_clear, carrier_id)
        except RuntimeError:
            self.backlog.done()

    def _answer_clear(self, carrier_id: str) -> None:
        try:
            assert self.sorter is not None
            result = self.sorter.divert(carrier_id, self.cfg.budget_s, None)
            if result.outcome != "DIVERTED":
                log.warning(
                    "answer for cleared carrier %s: %s (%s)", carrier_id, result.outcome, result.detail
                )
            self.health.report("sorter", result.outcome != "TIMEOUT", f"last answer {result.outcome}")
        except Exception:
            log.exception("answer for cleared carrier %s not sent", carrier_id)
        finally:
            self.backlog.done()

    def _send(self, intent: DivertIntent, deadline_at: float) -> None:
        try:
            outcome, chute, detail = self._divert(intent, deadline_at)
            self.settle(intent, outcome, chute, detail)
        except Exception as exc:
            log.exception("divert outcome of %s could not be recorded", intent.tracking_id)
            with self._lock:
                self.failures += 1
            self.health.report("pipeline", False, f"divert outcome not recorded: {type(exc).__name__}")
            self.feed.publish(
                {
                    "type": "alert",
                    "kind": "divert_failed",
                    "tracking_id": intent.tracking_id,
                    "divert": "UNKNOWN",
                }
            )
        finally:
            self.backlog.done()

    def _divert(self, intent: DivertIntent, deadline_at: float) -> tuple[DivertOutcome, str | None, str]:
        if self.sorter is None:
            return "NOT_SENT", intent.chute, "no sorter link configured"
        remaining = deadline_at - self.monotonic()
        if remaining <= self.cfg.send_margin_s:
            return "LATE", intent.chute, f"not sent: {max(0.0, remaining):.3f} s left before the divert point"
        try:
            wait_s = remaining + self.cfg.confirm_wait_s
            result = self.sorter.divert(intent.sorter_id or intent.tracking_id, wait_s, intent.chute)
        except ValueError as exc:
            # The link cannot carry this id or chute (too long, bad characters): never sent.
            return "NOT_SENT", intent.chute, f"link refused the command ({type(exc).__name__}): {exc}"[:300]
        except Exception as exc:
            log.exception("sorter link failed on %s", intent.tracking_id)
            return "NOT_SENT", intent.chute, f"PROCESSING_ERROR: {type(exc).__name__}"
        # A timeout means the controller did not answer at all; a miss is the belt's business.
        self.health.report("sorter", result.outcome != "TIMEOUT", f"last divert {result.outcome}")
        return result.outcome, result.chute or intent.chute, result.detail

    def settle(self, intent: DivertIntent, outcome: DivertOutcome, chute: str | None, detail: str) -> None:
        """Record the outcome of `intent` (with its pull orders' states) and alert when it failed."""
        at = self.clock()
        ev = DivertOutcomeEvent(
            **self.stamp(at),
            tracking_id=intent.tracking_id,
            waybill=intent.waybill,
            sorter_id=intent.sorter_id,
            decision=intent.decision,
            outcome=outcome,
            chute=chute,
            detail=detail[:300],
        )
        state = "diverted" if outcome == "DIVERTED" else "missed"
        statuses: list[Event] = [
            OrderStatusEvent(
                **self.stamp(at),
                order_id=order_id,
                state=state,
                tracking_id=intent.tracking_id,
                waybill=intent.waybill,
            )
            for order_id in intent.order_ids
        ]
        # Sender-scope orders stay open for the sender's next parcel; waybill orders are done.
        closing = tuple(
            (o, state) for o in intent.order_ids if state == "diverted" and self._waybill_order(o)
        )
        self.recorder.record(Record((ev, *statuses), closing=closing, settled=(intent.tracking_id,)))
        self.feed.publish({"type": "divert", "event": ev.model_dump(mode="json")})
        if outcome in FAILED:
            with self._lock:
                self.failures += 1
            # One kind for every divert not carried out (the terminal asks for a pull by hand);
            # `divert` says which: MISSED, TIMEOUT, NOT_SENT, LATE or UNKNOWN.
            self.feed.publish(
                {
                    "type": "alert",
                    "kind": "divert_failed",
                    "tracking_id": intent.tracking_id,
                    "waybill": intent.waybill,
                    "decision": intent.decision,
                    "chute": chute,
                    "divert": outcome,
                    "detail": detail[:300],
                }
            )

    def _waybill_order(self, order_id: str) -> bool:
        rows = self.store.query("SELECT scope FROM orders WHERE order_id = ?", (order_id,))
        return bool(rows) and rows[0][0] == "waybill"

    def resolve_open(self) -> int:
        """At start: every divert intended but never settled (the station stopped) becomes UNKNOWN."""
        open_ = self.store.open_intents()
        for intent in open_:
            log.warning("divert for %s had no recorded outcome: recorded as UNKNOWN", intent.tracking_id)
            self.settle(intent, "UNKNOWN", intent.chute, "station stopped between divert intent and outcome")
        return len(open_)

    def drain(self, timeout_s: float) -> bool:
        return self.backlog.wait_idle(timeout_s)

    def stop(self) -> None:
        """Diverts in flight end within their own deadlines; their outcomes are recorded first."""
        self._pool.shutdown(wait=True)
