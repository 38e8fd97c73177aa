"""Store and forward: sends outbox batches to the server, applies orders and registry changes it returns."""

from __future__ import annotations

import gzip
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
from pydantic import ValidationError

from edge.config import ServerLinkConfig
from edge.feed import StationFeed
from edge.health import HealthBoard
from edge.store import EdgeStore, OutboxRow, utc_now
from edge.supervise import supervised
from edge.wire import (
    FEATURE_ORDER_CANCEL,
    FEATURE_SENDER_RISK,
    FEATURES_HEADER,
    OrderCancelWire,
    OrdersPollReply,
    OrderStatusEvent,
    PullOrderWire,
    SyncReply,
)

log = logging.getLogger(__name__)

# Server answers that mean "this event will never be accepted as it is": park it, keep the queue moving.
PERMANENT_REJECTS = {400, 409, 413, 422}


# The server does not accept this station at all: no event is at fault, the operator must act.
REFUSED_STATION = {
    401: "the server refused the station token: set the token variable (server.token_env) to the token"
    " `parcelguard server station add` printed for this station; after `--rotate` or `revoke`"
    " only the newest one works",
    403: "the server does not allow this station here: check station.id and site_id against"
    " its registration (`parcelguard server station add ... --site ... --line ...`)",
}


class StationRefused(OSError):
    """The server refuses the station itself (token or site); `code` keys the operator's words for it."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def refusal_text(resp: httpx.Response) -> str:
    """The operator's words for a 401/403, with the server's code, never its raw JSON."""
    try:
        code = str(resp.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        code = "no error code"
    return f"{REFUSED_STATION[resp.status_code]} (HTTP {resp.status_code}, {code})"


class SyncRejected(ValueError):
    """The server refused a batch for a reason that retrying will not fix."""


class ServerUnavailable(OSError):
    """The server could not be reached or answered with an error worth retrying."""


class SyncLink:
    """The HTTP side of sync: one batch, one image upload, one long poll."""

    def __init__(
        self, base_url: str, token: str, timeout_s: float, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.client = httpx.Client(
            base_url=base_url.rstrip("/"),
            # Asks for the wire v1 additions this station understands; an older server ignores the header.
            headers={
                "Authorization": f"Bearer {token}",
                FEATURES_HEADER: f"{FEATURE_ORDER_CANCEL},{FEATURE_SENDER_RISK}",
            },
            timeout=timeout_s,
            transport=transport,
        )

    def _check(self, resp: httpx.Response) -> None:
        if resp.status_code in REFUSED_STATION:
            code = "token_refused" if resp.status_code == 401 else "station_forbidden"
            raise StationRefused(refusal_text(resp), code)
        if resp.status_code in PERMANENT_REJECTS:
            raise SyncRejected(f"HTTP {resp.status_code}: {resp.text[:300]}")
        if resp.status_code >= 400:
            raise ServerUnavailable(f"HTTP {resp.status_code}: {resp.text[:300]}")

    def post_batch(self, station_id: str, boot_id: str, cursor: int, bodies: list[str]) -> SyncReply:
        # Bodies are the stored JSON of each event, sent as stored: what the server gets is what we kept.
        payload = (
            f'{{"version":1,"station_id":{_json_str(station_id)},"boot_id":{_json_str(boot_id)},'
            f'"registry_cursor":{cursor},"events":[{",".join(bodies)}]}}'
        ).encode()
        try:
            resp = self.client.post(
                "/api/v1/sync",
                content=gzip.compress(payload, compresslevel=5),
                headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
            )
        except httpx.HTTPError as exc:
            raise ServerUnavailable(f"sync failed: {exc}") from exc
        self._check(resp)
        try:
            return SyncReply.model_validate_json(resp.content)
        except ValidationError as exc:
            raise ServerUnavailable(
                f"sync reply did not match wire v1: {exc.error_count()} error(s)"
            ) from exc

    def put_image(self, sha256: str, content_type: str, data: bytes) -> None:
        try:
            resp = self.client.put(
                f"/api/v1/images/{sha256}", content=data, headers={"Content-Type": content_type}
            )
        except httpx.HTTPError as exc:
            raise ServerUnavailable(f"image upload failed: {exc}") from exc
        self._check(resp)

    def poll_orders(self, after: int, timeout_s: float) -> OrdersPollReply:
        try:
            resp = self.client.get(
                "/api/v1/orders/poll",
                params={"after": after, "timeout": timeout_s},
                timeout=timeout_s + 10,
            )
        except httpx.HTTPError as exc:
            raise ServerUnavailable(f"order poll failed: {exc}") from exc
        self._check(resp)
        return OrdersPollReply.model_validate_json(resp.content)

    def close(self) -> None:
        self.client.close()


def _json_str(text: str) -> str:
    return json.dumps(text)


class SyncWorker:
    """Background thread: drains the outbox in sequence order, with backoff while the server is away."""

    def __init__(
        self,
        store: EdgeStore,
        link: SyncLink,
        cfg: ServerLinkConfig,
        station_id: str,
        boot_id: str,
        health: HealthBoard,
        feed: StationFeed,
        clock: Callable[[], datetime] = utc_now,
        keep_images_days: float = 30.0,
        keep_events_days: float = 30.0,
    ) -> None:
        self.store = store
        self.keep_images = timedelta(days=keep_images_days)
        self.keep_events = timedelta(days=keep_events_days)
        self._next_purge = 0.0
        self.link = link
        self.cfg = cfg
        self.station_id = station_id
        self.boot_id = boot_id
        self.health = health
        self.feed = feed
        self.clock = clock
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._threads: list[threading.Thread] = []
        self._failures = 0
        self.batch_size = cfg.batch_size
        self.registry_synced = threading.Event()

    # -- one round ---------------------------------------------------------------------------

    def sync_once(self) -> int:
        """Send one batch (or an empty one, to fetch registry changes); returns events acknowledged."""
        rows = self.store.pending_outbox(self.batch_size)
        self._upload_images(rows)
        try:
            reply = self.link.post_batch(
                self.station_id, self.boot_id, self.store.registry_cursor(), [r.body for r in rows]
            )
        except SyncRejected as exc:
            self._isolate_rejects(rows, str(exc))
            return 0
        done = set(reply.accepted) | set(reply.duplicates)
        self.store.ack_outbox([r.key for r in rows if r.key in done])
        self.store.apply_registry(reply.registry)
        self.accept_orders(reply.orders)
        self.accept_cancellations(reply.cancelled)
        if not reply.registry.more:
            self.registry_synced.set()
        self.health.sync_ok()
        self._purge_images()
        return len(done)

    def _purge_images(self) -> None:
        # Once an hour is plenty: held images are evidence kept for days, not seconds.
        now = time.monotonic()
        if now < self._next_purge:
            return
        self._next_purge = now + 3600
        dropped = self.store.purge_images(self.clock() - self.keep_images)
        if dropped:
            log.info("dropped %d held images older than %s that the server has", dropped, self.keep_images)
        events = self.store.purge_events(self.clock() - self.keep_events)
        if events:
            log.info("dropped %d events older than %s that the server confirmed", events, self.keep_events)

    def _upload_images(self, rows: list[OutboxRow]) -> None:
        for row in rows:
            for sha in row.images:
                blob = self.store.image(sha)
                if blob is None:
                    continue
                try:
                    self.link.put_image(sha, blob.content_type, blob.data)
                except SyncRejected as exc:
                    # The event still carries the image's hash and metadata; the picture stays here.
                    log.warning("server refused image %s: %s", sha[:12], exc)

    def _isolate_rejects(self, rows: list[OutboxRow], error: str) -> None:
        """A batch was refused: retry one event at a time and park only the ones refused alone."""
        if len(rows) <= 1:
            for row in rows:
                log.error("server refused event %s for good, parked in dead_letter: %s", row.key, error)
                self.store.move_to_dead_letter(row.key, error)
            return
        for row in rows:
            try:
                reply = self.link.post_batch(
                    self.station_id, self.boot_id, self.store.registry_cursor(), [row.body]
                )
            except SyncRejected as exc:
                log.error("server refused event %s for good, parked in dead_letter: %s", row.key, exc)
                self.store.move_to_dead_letter(row.key, str(exc))
                continue
            self.store.ack_outbox([k for k in (*reply.accepted, *reply.duplicates) if k == row.key])

    def accept_orders(self, orders: list[PullOrderWire]) -> None:
        if not orders:
            return

        def delivered(order: PullOrderWire) -> OrderStatusEvent:
            return OrderStatusEvent(
                **self.store.stamp(self.station_id, self.boot_id, self.clock()),
                order_id=order.order_id,
                state="delivered",
                waybill=order.waybill,
            )

        # The order, the poll cursor and its "delivered" ack commit together.
        new = self.store.add_orders(orders, delivered)
        for order in new:
            self.feed.publish({"type": "order", "order": order.model_dump(mode="json")})
        if new:
            self._kick.set()

    def accept_cancellations(self, cancelled: list[OrderCancelWire]) -> None:
        """Orders an officer withdrew stop matching parcels here; the server repeats them until they
        would have expired, so applying one again changes nothing."""
        if not cancelled:
            return
        for order_id in self.store.cancel_orders([c.order_id for c in cancelled]):
            log.info(
                "pull order %s was cancelled by the server; parcels are no longer pulled for it", order_id
            )

    # -- threads -----------------------------------------------------------------------------

    def start(self) -> None:
        self._threads = [supervised(self._sync_loop, "edge-sync", self._stop, on_give_up=self.health.crashed)]
        if self.cfg.poll_orders:
            self._threads.append(
                supervised(self._poll_loop, "edge-orders", self._stop, on_give_up=self.health.crashed)
            )

    def kick(self) -> None:
        self._kick.set()

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        for t in self._threads:
            # A long poll in flight cannot be interrupted; its thread drops any reply once stopped.
            t.join(timeout=1.0 if t.name == "edge-orders" else self.cfg.timeout_s + 5)

    def _backoff(self) -> float:
        base = min(self.cfg.max_backoff_s, self.cfg.sync_interval_s * 2 ** min(self._failures, 10))
        return float(base * (0.75 + random.random() / 2))

    def _sync_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sent = self.sync_once()
                if self._failures:
                    log.info("server reachable again after %d failed tries", self._failures)
                self._failures = 0
                wait = 0.0 if sent and self.store.outbox_size() else self.cfg.sync_interval_s
            except (ServerUnavailable, OSError) as exc:
                if self._failures == 0:
                    log.warning("sync failed, retrying with backoff: %s", exc)
                else:
                    log.debug("sync still failing: %s", exc)
                self._failures += 1
                self.health.sync_failed(str(exc), exc.code if isinstance(exc, StationRefused) else "")
                wait = self._backoff()
            if wait:
                self._kick.wait(wait)
                self._kick.clear()

    def _poll_loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                reply = self.link.poll_orders(self.store.orders_seq(), timeout_s=20.0)
                failures = 0
                if self._stop.is_set():
                    return
                self.accept_orders(reply.orders)
                self.accept_cancellations(reply.cancelled)
            except (ServerUnavailable, SyncRejected, OSError, ValidationError) as exc:
                if self._stop.is_set():
                    return
                if failures == 0:
                    log.warning("order poll failed, retrying with backoff: %s", exc)
                failures += 1
                self._stop.wait(min(self.cfg.max_backoff_s, 2.0 * 2 ** min(failures, 6)))
