"""One parcel through the station: identify, check, classify, decide, act, then record with its outbox row."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from edge.classify import ClassifierStage, sha256_hex
from edge.config import EdgeConfig
from edge.decide import Decision, ParcelFacts, decide
from edge.errors import StoreError
from edge.feed import StationFeed
from edge.health import HealthBoard
from edge.identify import Identification, WaybillMatcher
from edge.store import EdgeStore, ImageBlob, utc_now
from edge.wire import DivertWire, ImageRef, OperatorEvent, OrderStatusEvent, ParcelEvent
from scanner_drivers.barcodes.image import BarcodeImageError
from scanner_drivers.barcodes.reader import BarcodeSettings, read_barcodes
from scanner_drivers.types import ScanRead

if TYPE_CHECKING:
    from scanner_drivers.sorter.link import SorterLink

log = logging.getLogger(__name__)


class Pipeline:
    """Runs on the scanner's thread, one parcel at a time; acting never waits for the server."""

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
    ) -> None:
        self.cfg = cfg
        self.health = health
        self.store = store
        self.classifier = classifier
        self.sorter = sorter
        self.feed = feed
        self.boot_id = boot_id
        self.clock = clock
        self.matcher = WaybillMatcher(cfg.identify.rules)
        self.barcode_settings = BarcodeSettings(budget_ms=cfg.identify.image_budget_ms)
        self._lock = threading.Lock()
        # Records that could not be written (disk full): kept and retried, never dropped.
        self._unsaved: list[tuple[ParcelEvent, list[ImageBlob], list[OrderStatusEvent]]] = []

    def _stamp(self, at: datetime) -> dict[str, Any]:
        return self.store.stamp(self.cfg.station.id, self.boot_id, at)

    def _facts(self, ident: Identification, now: datetime) -> tuple[ParcelFacts, str | None, str | None]:
        if ident.status != "ok" or ident.waybill is None:
            return ParcelFacts(identify_status=ident.status, waybill=None), None, None
        manifest = self.store.manifest(ident.waybill)
        token = manifest.sender_token if manifest else None
        sender = self.store.sender(token) if token else None
        tokens = [token] + ([sender.phone_token, sender.address_token] if sender else [])
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
        )
        return facts, token, manifest.declared_category if manifest else None

    def process(self, read: ScanRead, missing_images: int = 0) -> ParcelEvent:
        """One parcel; `missing_images` counts images it should have had but that never came."""
        with self._lock:
            return self._process(read, missing_images)

    def _process(self, read: ScanRead, missing_images: int) -> ParcelEvent:
        now = self.clock()
        envelope = self._stamp(now)
        tracking_id = f"{self.cfg.station.id}-{self.boot_id}-{envelope['seq']}"
        codes = [c.text for c in read.codes]
        ident = self.matcher.identify(codes)
        if ident.status in ("no_read", "no_valid_waybill") and self.cfg.identify.read_images:
            image_codes = self._codes_from_images(read)
            if image_codes:
                codes += image_codes
                ident = self.matcher.identify(codes)
        facts, token, declared = self._facts(ident, now)
        images = [(sha256_hex(img.data), img.kind, img.data, img.content_type) for img in read.images]
        stage = self.classifier.run([(sha, kind, data) for sha, kind, data, _ in images])
        facts = replace(
            facts, classifier_state=stage.state, images=stage.views, images_missing=missing_images
        )
        decision = decide(facts, self.cfg.policy)
        divert = self._act(tracking_id, ident.waybill, decision)
        event = ParcelEvent(
            **envelope,
            tracking_id=tracking_id,
            waybill=ident.waybill,
            codes=codes,
            decision=decision.decision,
            reasons=[r.value for r in decision.reasons],
            risk=decision.risk,
            sender_token=token,
            declared_category=declared,
            classifier=self.classifier.describe,
            classifications=list(stage.wire),
            order_ids=list(facts.order_ids),
            divert=divert,
            images=[
                ImageRef(sha256=sha, kind=kind, content_type=ctype, size=len(data))
                for sha, kind, data, ctype in images
            ],
        )
        hit = decision.decision != "CLEAR"
        blobs = [ImageBlob(sha, kind, ctype, data) for sha, kind, data, ctype in images] if hit else []
        statuses = self._order_statuses(event, divert)
        self._record(event, blobs, statuses)
        self.feed.publish({"type": "parcel", "event": event.model_dump(mode="json")})
        return event

    def _codes_from_images(self, read: ScanRead) -> list[str]:
        """The label as the camera saw it: a second chance when the scanner line read nothing usable."""
        found: list[str] = []
        for img in read.images:
            if img.kind not in ("label", "camera"):
                continue
            try:
                result = read_barcodes(img.data, self.barcode_settings)
            except BarcodeImageError as exc:
                log.warning("camera image %s unreadable: %s", img.name, exc)
                continue
            found.extend(c.text for c in result.codes)
        return found

    def _act(self, tracking_id: str, waybill: str | None, decision: Decision) -> DivertWire | None:
        if decision.decision == "CLEAR":
            return None
        sorter_cfg = self.cfg.sorter
        chute = sorter_cfg.pull_chute if decision.decision == "PULL" else sorter_cfg.hold_chute
        if self.sorter is None:
            divert = DivertWire(outcome="NOT_SENT", chute=chute, detail="no sorter link configured")
        else:
            result = self.sorter.divert(tracking_id, sorter_cfg.deadline_s, chute)
            if self.health is not None:
                # A timeout means the controller did not answer at all; a miss is the belt's business.
                self.health.report("sorter", result.outcome != "TIMEOUT", f"last divert {result.outcome}")
            divert = DivertWire(outcome=result.outcome, chute=result.chute or chute, detail=result.detail)
        alert_kind = "pull" if decision.decision == "PULL" else "hold"
        if divert.outcome in ("MISSED", "TIMEOUT"):
            alert_kind = "divert_failed"
        if decision.decision == "PULL" or alert_kind == "divert_failed":
            self.feed.publish(
                {
                    "type": "alert",
                    "kind": alert_kind,
                    "tracking_id": tracking_id,
                    "waybill": waybill,
                    "decision": decision.decision,
                    "reasons": [r.value for r in decision.reasons],
                    "chute": divert.chute,
                    "divert": divert.outcome,
                    "deadline_s": sorter_cfg.deadline_s,
                }
            )
        return divert

    def _order_statuses(self, event: ParcelEvent, divert: DivertWire | None) -> list[OrderStatusEvent]:
        if not event.order_ids:
            return []
        if divert is not None and divert.outcome == "DIVERTED":
            state = "diverted"
        else:
            state = "missed"
        out = []
        for order_id in event.order_ids:
            out.append(
                OrderStatusEvent(
                    **self._stamp(event.at),
                    order_id=order_id,
                    state=state,
                    tracking_id=event.tracking_id,
                    waybill=event.waybill,
                )
            )
        return out

    def _record(self, event: ParcelEvent, blobs: list[ImageBlob], statuses: list[OrderStatusEvent]) -> None:
        pending = [*self._unsaved, (event, blobs, statuses)]
        self._unsaved = []
        for i, (ev, bl, st) in enumerate(pending):
            # Sender-scope orders stay open for the sender's next parcel; waybill orders are done.
            closing = [(s.order_id, s.state) for s in st if s.state == "diverted" and self._waybill_order(s)]
            try:
                self.store.append_events([ev, *st], bl, closing, upload=[b.sha256 for b in bl])
            except StoreError as exc:
                log.error("event %s not recorded yet, kept in memory: %s", ev.key, exc)
                self._unsaved = pending[i:]
                self.feed.publish({"type": "alert", "kind": "store_failed", "detail": str(exc)})
                return

    def _waybill_order(self, status: OrderStatusEvent) -> bool:
        rows = self.store.query("SELECT scope FROM orders WHERE order_id = ?", (status.order_id,))
        return bool(rows) and rows[0][0] == "waybill"

    @property
    def unsaved(self) -> int:
        return len(self._unsaved)

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
