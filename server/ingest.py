"""Sync ingest: store a station's batch idempotently, open reviews for hits, raise and track pull orders."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from edge.wire import DeviceStatusEvent, OrderStatusEvent, ParcelEvent, SyncRequest
from server.accounts import Principal
from server.db import iso
from server.errors import BadInput, Conflict, Forbidden
from server.links.graph import update_links
from server.orders import order_from_pull, record_state, store_order
from server.rollup import AnyEvent, count_batch, event_day, hit_category, upsert_counts
from server.schema import events, reviews
from server.scope import link_images, record
from server.settings import ServerSettings
from server.stations import record_device_states, touch_station

log = logging.getLogger(__name__)
KEY_CHUNK = 500
MAX_KEY = 200
MAX_ID = 64
MAX_SEQ = 2**62


@dataclass
class IngestResult:
    """Keys stored now, keys already held, and whether any order changed (pollers must wake)."""

    accepted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    orders_changed: bool = False


def payload_hash(event: AnyEvent) -> str:
    data = json.dumps(event.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(data.encode()).hexdigest()


def check_batch(req: SyncRequest, station: Principal) -> None:
    """Every event must belong to the authenticated station and carry its own key."""
    if req.station_id != station.name:
        raise Forbidden(f"batch is for station {req.station_id!r} but the token is station {station.name!r}")
    for ev in req.events:
        if ev.station_id != station.name:
            raise Forbidden(f"event {ev.key!r} names station {ev.station_id!r}, not {station.name!r}")
        if ev.key != f"{ev.station_id}:{ev.boot_id}:{ev.seq}":
            raise BadInput(f"event key {ev.key[:80]!r} is not station_id:boot_id:seq", "bad_event_key")
        # Column widths: refuse what PostgreSQL would refuse, with a clear message, on both engines.
        if len(ev.key) > MAX_KEY or ev.seq > MAX_SEQ or len(ev.boot_id) > MAX_ID:
            raise BadInput(f"event {ev.key[:80]!r}: key, boot_id or seq too long", "too_long")
        for name in ("tracking_id", "waybill"):
            value = getattr(ev, name, None)
            if value is not None and len(value) > MAX_ID:
                raise BadInput(f"event {ev.key!r}: {name} longer than {MAX_ID} characters", "too_long")


def review_priority(event: ParcelEvent) -> int:
    """Lower is more urgent: pulls first, then by risk."""
    base = 0 if event.decision == "PULL" else 100
    return base + round((1.0 - event.risk) * 99)


def ingest_batch(
    conn: Connection, settings: ServerSettings, station: Principal, req: SyncRequest, now: datetime
) -> IngestResult:
    """Store the new events of one batch in the caller's transaction; replays are reported, not stored.

    Everything is checked before anything is written, so a refused batch (403/409/422) leaves no trace.
    """
    check_batch(req, station)
    result = IngestResult()
    hashes: dict[str, str] = {}
    fresh: list[AnyEvent] = []
    for ev in req.events:
        digest = payload_hash(ev)
        if ev.key in hashes:
            if hashes[ev.key] != digest:
                raise Conflict(
                    f"event {ev.key!r} appears twice in the batch with different payloads", "event_conflict"
                )
            result.duplicates.append(ev.key)
            continue
        hashes[ev.key] = digest
        fresh.append(ev)
    keys = [ev.key for ev in fresh]
    stored: dict[str, str] = {}
    for i in range(0, len(keys), KEY_CHUNK):
        chunk = keys[i : i + KEY_CHUNK]
        for row in conn.execute(select(events.c.key, events.c.payload_hash).where(events.c.key.in_(chunk))):
            stored[row.key] = row.payload_hash
    for key, digest in stored.items():
        if digest != hashes[key]:
            raise Conflict(f"event {key!r} was already stored with a different payload", "event_conflict")
    new = [ev for ev in fresh if ev.key not in stored]
    result.duplicates.extend(ev.key for ev in fresh if ev.key in stored)
    # Order by per-station sequence (grouped by boot in order of appearance), never by wall clock.
    boots = {b: i for i, b in enumerate(dict.fromkeys(ev.boot_id for ev in new))}
    new.sort(key=lambda ev: (boots[ev.boot_id], ev.seq))
    if new:
        received = iso(now)
        conn.execute(
            events.insert(),
            [
                {
                    "key": ev.key,
                    "station_id": ev.station_id,
                    "boot_id": ev.boot_id,
                    "seq": ev.seq,
                    "type": ev.type,
                    "at": iso(ev.at),
                    "day": event_day(ev),
                    "waybill": getattr(ev, "waybill", None),
                    "tracking_id": getattr(ev, "tracking_id", None),
                    "decision": ev.decision if isinstance(ev, ParcelEvent) else None,
                    "payload_hash": hashes[ev.key],
                    "payload": ev.model_dump_json(),
                    "received_at": received,
                }
                for ev in new
            ],
        )
        upsert_counts(conn, count_batch(new))
    site_id = station.sites[0]
    if settings.links.enabled:
        update_links(conn, new)
    secret = settings.secret_key.get_secret_value()
    ttl = timedelta(hours=settings.orders.default_ttl_hours)
    review_rows: list[dict[str, Any]] = []
    for ev in new:
        if isinstance(ev, ParcelEvent) and ev.decision in ("HOLD", "PULL"):
            review_rows.append(_review_row(ev, station, settings, now))
            draft = order_from_pull(ev, site_id, settings.orders.network_wide, ttl)
            order = store_order(conn, draft, now) if draft is not None else None
            if order is not None:
                result.orders_changed = True
                detail = {
                    "waybill": order.waybill,
                    "reason": order.reason,
                    "site": order.site_id,
                    "event": ev.key,
                }
                sites = [order.site_id or "*"]
                record(conn, secret, f"station:{station.name}", "order_raise", order.order_id, sites, detail)
        elif isinstance(ev, OrderStatusEvent):
            if record_state(conn, ev.order_id, ev.station_id, ev.state, ev.at, ev.key):
                result.orders_changed = True
            else:
                log.warning("station %s reported on unknown order %s", ev.station_id, ev.order_id)
    if review_rows:
        conn.execute(reviews.insert(), review_rows)
    # The images these events name become visible to the officers of this site (and no other).
    link_images(conn, site_id, (img.sha256 for ev in new if isinstance(ev, ParcelEvent) for img in ev.images))
    record_device_states(conn, station.name, (ev for ev in new if isinstance(ev, DeviceStatusEvent)), now)
    touch_station(conn, station.name, now)
    result.accepted = [ev.key for ev in new]
    return result


def _review_row(
    ev: ParcelEvent, station: Principal, settings: ServerSettings, now: datetime
) -> dict[str, Any]:
    hours = settings.review.queue_hours_pull if ev.decision == "PULL" else settings.review.queue_hours_hold
    return {
        "event_key": ev.key,
        "station_id": ev.station_id,
        "site_id": station.sites[0],
        "line_id": station.line_id or "",
        "waybill": ev.waybill,
        "tracking_id": ev.tracking_id,
        "decision": ev.decision,
        "reasons": json.dumps(ev.reasons),
        "risk": ev.risk,
        "sender_token": ev.sender_token,
        "category": hit_category(ev)[:64],
        "priority": review_priority(ev),
        "state": "open",
        "day": event_day(ev),
        "created_at": iso(now),
        "due_at": iso(now + timedelta(hours=hours)),
    }
