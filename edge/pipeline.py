"""One parcel through the station: identify, check, classify, decide, record the intent, then divert."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from edge.classify import ClassifierStage, StageLate, StageResult, sha256_hex
from edge.config import EdgeConfig
from edge.decide import Decision, ParcelFacts, decide, decide_failed
from edge.dispatch import DivertDispatcher
from edge.feed import StationFeed
from edge.health import HealthBoard
from edge.identify import Identification, WaybillMatcher
from edge.recorder import Record, Recorder
from edge.store import DivertIntent, EdgeStore, ImageBlob, utc_now
from edge.wire import DivertWire, ImageRef, OperatorEvent, OrderStatusEvent, ParcelEvent
from scanner_drivers.barcodes.image import BarcodeImageError
from scanner_drivers.barcodes.reader import BarcodeSettings, read_barcodes
from scanner_drivers.types import ScanRead

if TYPE_CHECKING:
    from scanner_drivers.sorter.link import SorterLink

log = logging.getLogger(__name__)

ImageRow = tuple[str, str, bytes, str]  # sha256, kind, data, content type


@dataclass(frozen=True)
class Assessment:
    """What the station concluded about one parcel before acting on it."""

    decision: Decision
    codes: list[str]
    waybill: str | None
    sender_token: str | None
    declared: str | None
    stage: StageResult
    order_ids: tuple[str, ...]
    error: str | None = None


@dataclass(frozen=True)
class Prepared:
    """A parcel assessed and waiting for its turn to be recorded."""

    found: Assessment
    images: list[ImageRow]
    deadline_at: float


def sorter_id_for(read: ScanRead, waybill: str | None, codes: list[str], tracking_id: str) -> str:
    """The id the controller is sent: its own parcel id, else the waybill, else the first code read."""
    for candidate in (read.carrier_id, waybill, *codes):
        if candidate and candidate.strip():
            return candidate.strip()
    return tracking_id


class Pipeline:
    """`prepare` (identify, look up, classify, decide) may run for several parcels at once;
    `commit` (record the intent, hand on the divert) runs on the parcel worker's thread, in read
    order. Acting never waits for the server; every stage spends what is left of the parcel's
    time from its read to the divert point.
    """

    def __init__(
        self,
        cfg: EdgeConfig,
        store: EdgeStore,
        classifier: ClassifierStage,
        sorter: SorterLink | None,
        feed: StationFeed,
        boot_id: str,
        clock: Callable[[], datetime] = utc_now,
        health: HealthBoard | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self.health = health if health is not None else HealthBoard()
        self.store = store
        self.classifier = classifier
        self.sorter = sorter
        self.feed = feed
        self.boot_id = boot_id
        self.clock = clock
        self.monotonic = monotonic
        self.matcher = WaybillMatcher(cfg.identify.rules)
        self.barcode_settings = BarcodeSettings(budget_ms=cfg.identify.image_budget_ms)
        self.recorder = Recorder(store, feed, self.health)
        self.dispatcher = DivertDispatcher(
            cfg.sorter, sorter, store, self.recorder, feed, self.health, self._stamp, clock, monotonic
        )
        workers = cfg.classifier.pool * cfg.classifier.parcels
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="edge-classify")
        self._lock = threading.Lock()
        self.errors = 0

    def _stamp(self, at: datetime) -> dict[str, Any]:
        return self.store.stamp(self.cfg.station.id, self.boot_id, at)

    def _left(self, deadline_at: float) -> float:
        """Seconds left to act on a parcel, keeping the margin a divert command needs."""
        return deadline_at - self.monotonic() - self.cfg.sorter.send_margin_s

    # -- assessing -----------------------------------------------------------------------------

    def _facts(self, ident: Identification, now: datetime) -> tuple[ParcelFacts, str | None, str | None]:
        if ident.status != "ok" or ident.waybill is None:
            return ParcelFacts(identify_status=ident.status, waybill=None), None, None
        manifest = self.store.manifest(ident.waybill)
        token = manifest.sender_token if manifest else None
        sender = self.store.sender(token) if token else None
        # The customer's credit code token matches organisation entries of the black- and watchlists.
        tokens = [token] + (
            [sender.phone_token, sender.address_token, sender.customer_token] if sender else []
        )
        lists = self.store.watch_lists([t for t in tokens if t], now)
        orders = self.store.matching_orders(ident.waybill, token, now)
        facts = ParcelFacts(
            identify_status="ok",
            waybill=ident.waybill,
            in_manifest=manifest is not None,
            declared_category=manifest.declared_category if manifest else None,
            has_sender_record=sender is not None,
            sender_verified=bool(sender and sender.verified),
            blacklisted="blacklist" in lists,
            watchlisted="watchlist" in lists,
            order_ids=tuple(orders),
            sender_risk=(sender.risk or 0.0) if sender else 0.0,
            unqualified_customer=bool(sender and sender.agreement_customer and sender.qualified is False),
            not_inspected=manifest is not None and not manifest.inspected_on_receipt,
        )
        return facts, token, manifest.declared_category if manifest else None

    def assess(self, read: ScanRead, images: list[ImageRow], missing: int, deadline_at: float) -> Assessment:
        """Identify, look up, classify (while time is left) and decide; raises on any failure."""
        now = self.clock()
        codes = [c.text for c in read.codes]
        ident = self.matcher.identify(codes)
        late = self._left(deadline_at) <= 0
        if not late and ident.status in ("no_read", "no_valid_waybill") and self.cfg.identify.read_images:
            image_codes = self._codes_from_images(read, self._left(deadline_at))
            if image_codes:
                codes += image_codes
                ident = self.matcher.identify(codes)
        facts, token, declared = self._facts(ident, now)
        stage = StageResult("off", (), ())
        left = self._left(deadline_at)
        if left <= 0:
            late = True
        elif not late:
            try:
                stage = self.classifier.run([(s, k, d) for s, k, d, _ in images], self.pool, left)
            except StageLate as exc:
                log.warning("parcel %s: %s; held as late", ident.waybill, exc)
                late = True
        facts = replace(
            facts, classifier_state=stage.state, images=stage.views, images_missing=missing, late=late
        )
        decision = decide(facts, self.cfg.policy)
        return Assessment(decision, codes, ident.waybill, token, declared, stage, facts.order_ids)

    def _codes_from_images(self, read: ScanRead, left_s: float) -> list[str]:
        """The label as the camera saw it: a second chance when the scanner line read nothing usable."""
        # The hard limit is the parcel's own time to its divert point, capped for an adversarial image.
        cap_ms = max(250.0, 5 * self.barcode_settings.budget_ms)
        deadline_ms = max(1.0, min(cap_ms, left_s * 1000))
        settings = self.barcode_settings.model_copy(update={"deadline_ms": deadline_ms})
        found: list[str] = []
        # A label camera's photo is where the waybill is; a goods photo is read only at a station
        # that has no label camera (its package camera may still see the label).
        labels = [img for img in read.images if img.kind == "label"]
        for img in labels or [img for img in read.images if img.kind == "camera"]:
            try:
                result = read_barcodes(img.data, settings)
            except BarcodeImageError as exc:
                log.warning("camera image %s unreadable: %s", img.name, exc)
                continue
            found.extend(c.text for c in result.codes)
        return found

    def _failed(self, exc: BaseException, stage: str, read: ScanRead) -> Assessment:
        name = type(exc).__name__
        log.error("parcel processing failed at %s (%s); held", stage, name, exc_info=exc)
        with self._lock:
            self.errors += 1
            n = self.errors
        self.health.report("pipeline", False, f"{n} parcel(s) failed processing, last at {stage}: {name}")
        # The scanner's codes are kept (the operator finds the parcel by them); nothing derived is trusted.
        codes = [str(c.text) for c in read.codes]
        return Assessment(decide_failed(), codes, None, None, None, StageResult("off", (), ()), (), name)

    # -- one parcel ----------------------------------------------------------------------------

    def process(self, read: ScanRead, missing_images: int = 0) -> ParcelEvent:
        """One parcel; `missing_images` counts images it should have had but that never came.

        Fails closed: whatever raises, the parcel is held, recorded with PROCESSING_ERROR and alerted.
        """
        return self.commit(read, self.prepare(read, missing_images))

    def prepare(self, read: ScanRead, missing_images: int = 0) -> Prepared:
        """Everything up to the decision; may run for several parcels at once. Never raises."""
        # A read stamped ahead of this clock (a driver's bug) must not stretch its parcel's time.
        budget_s = self.cfg.sorter.budget_s
        if read.answer_within_s is not None:
            # A controller that asks gives its own deadline: the answer must be in before it.
            budget_s = min(budget_s, read.answer_within_s)
        deadline_at = min(read.at_monotonic, self.monotonic()) + budget_s
        images: list[ImageRow] = []
        try:
            images = [(sha256_hex(i.data), i.kind, i.data, i.content_type) for i in read.images]
            found = self.assess(read, images, missing_images, deadline_at)
        except Exception as exc:
            found = self._failed(exc, "assess", read)
        return Prepared(found, images, deadline_at)

    def commit(self, read: ScanRead, prep: Prepared) -> ParcelEvent:
        """Record the decision (with its divert intent) and hand the divert on; in read order."""
        found, images, deadline_at = prep.found, prep.images, prep.deadline_at
        envelope = self._stamp(self.clock())
        tracking_id = f"{self.cfg.station.id}-{self.boot_id}-{envelope['seq']}"
        try:
            event, rec, intent = self._build(envelope, tracking_id, read, found, images, deadline_at)
            self.recorder.record(rec)
        except Exception as exc:
            # The record itself failed (a full disk is kept and retried instead): hold, record bare facts.
            found = self._failed(exc, "record", read)
            event, rec, intent = self._build(envelope, tracking_id, read, found, [], deadline_at)
            self.recorder.record(rec)
        self.feed.publish({"type": "parcel", "event": event.model_dump(mode="json")})
        self._alert(event)
        if intent is not None:
            self.dispatcher.submit(intent, deadline_at)
        elif read.carrier_id and event.divert is None:
            self.dispatcher.answer_clear(read.carrier_id)
        return event

    def _build(
        self,
        envelope: dict[str, Any],
        tracking_id: str,
        read: ScanRead,
        found: Assessment,
        images: list[ImageRow],
        deadline_at: float,
    ) -> tuple[ParcelEvent, Record, DivertIntent | None]:
        decision = found.decision
        sorter_id = sorter_id_for(read, found.waybill, found.codes, tracking_id)
        divert, intent = self._plan(tracking_id, sorter_id, found, envelope["key"], deadline_at)
        event = ParcelEvent(
            **envelope,
            tracking_id=tracking_id,
            waybill=found.waybill,
            codes=found.codes,
            decision=decision.decision,
            reasons=[r.value for r in decision.reasons],
            risk=decision.risk,
            sender_token=found.sender_token,
            declared_category=found.declared,
            classifier=self.classifier.describe,
            classifications=list(found.stage.wire),
            order_ids=list(found.order_ids),
            divert=divert,
            images=[ImageRef(sha256=s, kind=k, content_type=c, size=len(d)) for s, k, d, c in images],
            # The controller's own id is kept with every parcel it asked about, cleared ones too.
            sorter_id=sorter_id if divert is not None or read.carrier_id else None,
            error=found.error,
        )
        hit = decision.decision != "CLEAR"
        blobs = tuple(ImageBlob(s, k, c, d) for s, k, d, c in images) if hit else ()
        # Without an intent the outcome is known now, and so are the orders' states.
        statuses = () if intent is not None else self._order_statuses(event, divert)
        rec = Record(
            (event, *statuses),
            blobs,
            upload=tuple(b.sha256 for b in blobs),
            intents=(intent,) if intent is not None else (),
        )
        return event, rec, intent

    def _plan(
        self, tracking_id: str, sorter_id: str, found: Assessment, key: str, deadline_at: float
    ) -> tuple[DivertWire | None, DivertIntent | None]:
        """The divert recorded with the parcel: none, not sendable now (with why), or an intent."""
        name = found.decision.decision
        if name == "CLEAR":
            return None, None
        cfg = self.cfg.sorter
        chute = cfg.pull_chute if name == "PULL" else cfg.hold_chute
        if self.sorter is None:
            return DivertWire(outcome="NOT_SENT", chute=chute, detail="no sorter link configured"), None
        left = self._left(deadline_at)
        if left <= 0:
            return DivertWire(outcome="LATE", chute=chute, detail="decided after the divert point"), None
        intent = DivertIntent(tracking_id, key, found.waybill, sorter_id, name, chute, found.order_ids)
        return DivertWire(outcome="PENDING", chute=chute, detail="divert command being sent"), intent

    def _alert(self, event: ParcelEvent) -> None:
        divert = event.divert
        failed = divert is not None and divert.outcome in ("LATE", "NOT_SENT")
        if event.decision != "PULL" and not failed and event.error is None:
            return
        kind = "divert_failed" if failed else "pull" if event.decision == "PULL" else "processing_error"
        self.feed.publish(
            {
                "type": "alert",
                "kind": kind,
                "tracking_id": event.tracking_id,
                "waybill": event.waybill,
                "decision": event.decision,
                "reasons": event.reasons,
                "chute": divert.chute if divert else None,
                "divert": divert.outcome if divert else None,
                "deadline_s": self.cfg.sorter.budget_s,
                "error": event.error,
            }
        )

    def _order_statuses(self, event: ParcelEvent, divert: DivertWire | None) -> list[OrderStatusEvent]:
        return [
            OrderStatusEvent(
                **self._stamp(event.at),
                order_id=order_id,
                state="missed",
                tracking_id=event.tracking_id,
                waybill=event.waybill,
            )
            for order_id in event.order_ids
        ]

    # -- life cycle ----------------------------------------------------------------------------

    @property
    def unsaved(self) -> int:
        return self.recorder.unsaved

    def stop(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.dispatcher.stop()
        self.recorder.stop()

    def confirm(self, tracking_id: str, action: str, result: str = "", operator: str = "") -> OperatorEvent:
        """Record what the operator did about a pulled parcel (pulled, not found, open-box result)."""
        rows = self.store.query(
            "SELECT waybill FROM events WHERE tracking_id = ? AND type = 'parcel'", (tracking_id,)
        )
        if not rows:
            raise LookupError(f"no parcel with tracking id {tracking_id}")
        if action not in ("pulled", "not_found", "open_box"):
            raise ValueError(f"unknown operator action {action!r}")
        ev = OperatorEvent(
            **self._stamp(self.clock()),
            tracking_id=tracking_id,
            waybill=rows[0][0],
            action=action,
            result=result[:2000],
            operator=operator[:100],
        )
        self.store.append_events([ev])
        self.feed.publish({"type": "operator", "event": ev.model_dump(mode="json")})
        return ev
