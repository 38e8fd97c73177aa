"""Sync ingest: store a station's batch idempotently, open reviews for hits, raise and track pull orders."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from edge.wire import DeviceStatusEvent, OrderStatusEvent, ParcelEvent, SyncRequest
from server.accounts import Principal
from server.db import INGEST_LOCK_SPACE, insert_rows, iso, serialise_on_names
from server.errors import BadInput, Conflict, Forbidden
from server.orders import order_from_pull, record_state, store_orders
from server.partitions import ensure_event_partitions, retention_class_of
from server.rollup import AnyEvent, count_batch, event_day, hit_category, upsert_counts
from server.schema import events, reviews
from server.scope import link_images, record_many
from server.settings import ServerSettings
from server.stations import record_device_states, touch_station

log = logging.getLogger(__name__)
KEY_CHUNK = 1000
MAX_KEY = 200
MAX_ID = 64
MAX_SEQ = 2**62


@dataclass
class IngestResult:
    """Keys stored now, keys already held, and whether any order changed (pollers must wake)."""

    accepted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    orders_changed: bool = False


@dataclass(frozen=True)
class Prepared:
    """One event of a batch with its stored form: the canonical JSON is hashed as stored, not twice."""

    event: AnyEvent
    payload: str
    digest: str


def prepare(event: AnyEvent) -> Prepared:
    payload = event.model_dump_json()
    return Prepared(event, payload, hashlib.sha256(payload.encode()).hexdigest())


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
    Each step works on the whole batch in a fixed number of statements, not one per event.
    """
    check_batch(req, station)
    # Idempotency by `key` across concurrent batches and server processes: every key names its station,
    # so one writer per station at a time plus the set-based check below store each key at most once.
    # (`events` on PostgreSQL is partitioned, so no unique index can hold `key` alone.) SQLite's
    # IMMEDIATE write transactions already run one at a time.
    serialise_on_names(conn, INGEST_LOCK_SPACE, [station.name])
    # Before anything reads `events`: creating a partition waits for every reader of its parent.
    ensure_event_partitions(conn, {event_day(ev) for ev in req.events})
    result = IngestResult()
    fresh = unique_in_batch(req.events, result)
    new = unseen(conn, fresh, result)
    # Order by per-station sequence (grouped by boot in order of appearance), never by wall clock.
    boots = {b: i for i, b in enumerate(dict.fromkeys(p.event.boot_id for p in new))}
    new.sort(key=lambda p: (boots[p.event.boot_id], p.event.seq))
    events_new = [p.event for p in new]
    site_id = station.sites[0]
    store_events(conn, new, site_id, now)
    upsert_counts(conn, count_batch(events_new))
    hits = [ev for ev in events_new if isinstance(ev, ParcelEvent) and ev.decision in ("HOLD", "PULL")]
    if hits:
        conn.execute(reviews.insert(), [_review_row(ev, station, settings, now) for ev in hits])
    result.orders_changed |= raise_orders(conn, settings, station, hits, now)
    for ev in events_new:
        if isinstance(ev, OrderStatusEvent):
            if record_state(conn, ev.order_id, ev.station_id, ev.state, ev.at, ev.key):
                result.orders_changed = True
            else:
                log.warning("station %s reported on unknown order %s", ev.station_id, ev.order_id)
    # The images these events name become visible to the officers of this site (and no other).
    link_images(
        conn, site_id, (img.sha256 for ev in events_new if isinstance(ev, ParcelEvent) for img in ev.images)
    )
    record_device_states(
        conn, station.name, (ev for ev in events_new if isinstance(ev, DeviceStatusEvent)), now
    )
    touch_station(conn, station.name, now)
    result.accepted = [ev.key for ev in events_new]
    return result


def unique_in_batch(events_in: list[AnyEvent], result: IngestResult) -> list[Prepared]:
    """Each key once; a key repeated with the same payload is a duplicate, with another a conflict."""
    seen: dict[str, str] = {}
    fresh: list[Prepared] = []
    for ev in events_in:
        p = prepare(ev)
        if ev.key in seen:
            if seen[ev.key] != p.digest:
                raise Conflict(
                    f"event {ev.key!r} appears twice in the batch with different payloads", "event_conflict"
                )
            result.duplicates.append(ev.key)
            continue
        seen[ev.key] = p.digest
        fresh.append(p)
    return fresh


def unseen(conn: Connection, fresh: list[Prepared], result: IngestResult) -> list[Prepared]:
    """The events not stored yet, in one query per KEY_CHUNK keys; a stored key with another payload
    refuses the batch (409)."""
    stored: dict[str, str] = {}
    keys = [p.event.key for p in fresh]
    for i in range(0, len(keys), KEY_CHUNK):
        chunk = keys[i : i + KEY_CHUNK]
        for row in conn.execute(select(events.c.key, events.c.payload_hash).where(events.c.key.in_(chunk))):
            stored[row.key] = row.payload_hash
    for p in fresh:
        if p.event.key in stored and stored[p.event.key] != p.digest:
            raise Conflict(
                f"event {p.event.key!r} was already stored with a different payload", "event_conflict"
            )
    result.duplicates.extend(p.event.key for p in fresh if p.event.key in stored)
    return [p for p in fresh if p.event.key not in stored]


EVENT_COLUMNS = (
    "key", "station_id", "boot_id", "seq", "type", "at", "day", "waybill", "tracking_id", "decision",
    "payload_hash", "payload", "received_at", "site_id", "retention_class",
)  # fmt: skip


def event_rows(new: list[Prepared], site_id: str, now: datetime) -> list[tuple[Any, ...]]:
    """The `events` rows of these events, as tuples in EVENT_COLUMNS order."""
    received = iso(now)
    rows = []
    for p in new:
        ev = p.event
        decision = getattr(ev, "decision", None) if isinstance(ev, ParcelEvent) else None
        rows.append(
            (
                ev.key, ev.station_id, ev.boot_id, ev.seq, ev.type, iso(ev.at), event_day(ev),
                getattr(ev, "waybill", None), getattr(ev, "tracking_id", None), decision, p.digest, p.payload,
                received, site_id, retention_class_of(ev.type, decision),
            )
        )  # fmt: skip
    return rows


def store_events(conn: Connection, new: list[Prepared], site_id: str, now: datetime) -> None:
    """Insert the rows: PostgreSQL's COPY, else one executemany on the driver (no per-row statement)."""
    if not new:
        return
    insert_rows(conn, "events", EVENT_COLUMNS, event_rows(new, site_id, now))


def raise_orders(
    conn: Connection, settings: ServerSettings, station: Principal, hits: list[ParcelEvent], now: datetime
) -> bool:
    """PULLs become orders for the other stations (one live order per waybill), each raise audited;
    True when any order was raised."""
    site_id = station.sites[0]
    ttl = timedelta(hours=settings.orders.default_ttl_hours)
    pulls = [(ev, order_from_pull(ev, site_id, settings.orders.network_wide, ttl)) for ev in hits]
    raised = [(ev, d) for ev, d in pulls if d is not None]
    if not raised:
        return False
    stored = store_orders(conn, [d for _ev, d in raised], now)
    entries: list[tuple[str, Iterable[str], dict[str, Any] | None]] = [
        (
            order.order_id,
            [order.site_id or "*"],
            {"waybill": order.waybill, "reason": order.reason, "site": order.site_id, "event": ev.key},
        )
        for (ev, _d), order in zip(raised, stored, strict=True)
        if order is not None
    ]
    secret = settings.secret_key.get_secret_value()
    record_many(conn, secret, f"station:{station.name}", "order_raise", entries)
    return bool(entries)


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
