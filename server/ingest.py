"""Sync ingest: store a station's batch idempotently, open reviews for hits, raise and track pull orders."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, String, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY

from edge.wire import (
    DeviceStatusEvent,
    OperatorEvent,
    OrderStatusEvent,
    ParcelEvent,
    PullOrderWire,
    SyncRequest,
)
from server.accounts import Principal
from server.cases.examples import learn_from_open_box
from server.db import INGEST_LOCK_SPACE, insert_rows, iso, serialise_on_names
from server.errors import BadInput, Conflict, Forbidden
from server.links.graph import update_links
from server.orders import order_from_pull, record_state, store_orders
from server.partitions import retention_class_of
from server.rollup import AnyEvent, count_batch, event_day, hit_category, pull_days, upsert_counts
from server.schema import events, reviews
from server.scope import link_images, record_many
from server.settings import ServerSettings
from server.sites import site_zone
from server.stations import record_device_states, touch_station

log = logging.getLogger(__name__)
KEY_CHUNK = 1000
MAX_KEY = 200
MAX_ID = 64
MAX_SEQ = 2**62


@dataclass
class IngestResult:
    """Keys stored now, keys already held, and whether orders were raised (pollers must wake): for the
    stations of `order_sites`, or of every site when `order_sites` is None (a network-wide order)."""

    accepted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    orders_changed: bool = False
    order_sites: set[str] | None = field(default_factory=set)


EVENT_COLUMNS = (
    "key", "station_id", "boot_id", "seq", "type", "at", "day", "waybill", "tracking_id", "decision",
    "payload_hash", "payload", "received_at", "site_id", "retention_class",
)  # fmt: skip


@dataclass(frozen=True)
class Prepared:
    """One event with its `events` row (EVENT_COLUMNS order); the canonical JSON stored is the one hashed."""

    event: AnyEvent
    digest: str
    row: tuple[Any, ...]


def prepare(ev: AnyEvent, site_id: str, received: str, zone: ZoneInfo) -> Prepared:
    payload = ev.model_dump_json()
    digest = hashlib.sha256(payload.encode()).hexdigest()
    decision = ev.decision if isinstance(ev, ParcelEvent) else None
    row = (
        ev.key, ev.station_id, ev.boot_id, ev.seq, ev.type, iso(ev.at), event_day(ev, zone),
        getattr(ev, "waybill", None), getattr(ev, "tracking_id", None), decision, digest, payload,
        received, site_id, retention_class_of(ev.type, decision),
    )  # fmt: skip
    return Prepared(ev, digest, row)


@dataclass(frozen=True)
class PreparedBatch:
    """A batch checked and made ready outside its transaction (all the CPU work that needs no database,
    so that the write lock is held for statements only): each key once, in station sequence order."""

    fresh: list[Prepared]
    repeated: list[str]  # keys repeated within the batch with the same payload
    days: set[str]


def prepare_batch(
    req: SyncRequest, station: Principal, now: datetime, settings: ServerSettings
) -> PreparedBatch:
    """Check the batch (403/409/422) and build its rows; a key repeated with another payload is a conflict."""
    check_batch(req, station)
    site_id, received = station.sites[0], iso(now)
    # Days and hours are the site's own: a Beijing day runs from Beijing midnight.
    zone = site_zone(settings, site_id)
    seen: dict[str, str] = {}
    fresh: list[Prepared] = []
    repeated: list[str] = []
    for ev in req.events:
        p = prepare(ev, site_id, received, zone)
        if ev.key in seen:
            if seen[ev.key] != p.digest:
                raise Conflict(
                    f"event {ev.key!r} appears twice in the batch with different payloads", "event_conflict"
                )
            repeated.append(ev.key)
            continue
        seen[ev.key] = p.digest
        fresh.append(p)
    # Order by per-station sequence (grouped by boot in order of appearance), never by wall clock.
    boots = {b: i for i, b in enumerate(dict.fromkeys(p.event.boot_id for p in fresh))}
    fresh.sort(key=lambda p: (boots[p.event.boot_id], p.event.seq))
    return PreparedBatch(fresh, repeated, {p.row[6] for p in fresh})


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
    conn: Connection,
    settings: ServerSettings,
    station: Principal,
    req: SyncRequest,
    now: datetime,
    prepared: PreparedBatch | None = None,
) -> IngestResult:
    """Store the new events of one batch in the caller's transaction; replays are reported, not stored.

    Everything is checked before anything is written, so a refused batch (403/409/422) leaves no trace.
    Each step works on the whole batch in a fixed number of statements, not one per event. `prepared` is
    `prepare_batch(req, station, now, settings)` when the caller made it before opening the transaction;
    the days' partitions (PostgreSQL) are made before it too (`Database.ensure_partitions`), else the
    events of a day without one are kept in the DEFAULT partition.
    """
    batch = prepared if prepared is not None else prepare_batch(req, station, now, settings)
    # Idempotency by `key` across concurrent batches and server processes: every key names its station,
    # so one writer per station at a time plus the set-based check below store each key at most once.
    # (`events` on PostgreSQL is partitioned, so no unique index can hold `key` alone.) SQLite's
    # IMMEDIATE write transactions already run one at a time.
    serialise_on_names(conn, INGEST_LOCK_SPACE, [station.name])
    result = IngestResult(duplicates=list(batch.repeated))
    new = unseen(conn, batch.fresh, result)
    events_new = [p.event for p in new]
    site_id = station.sites[0]
    zone = site_zone(settings, site_id)
    insert_rows(conn, "events", EVENT_COLUMNS, [p.row for p in new])
    upsert_counts(conn, count_batch(events_new, zone, pull_days(conn, events_new)))
    # The link graph's edges from this batch's hit images (server.links).
    if settings.links.enabled:
        update_links(conn, events_new)
    hits = [ev for ev in events_new if isinstance(ev, ParcelEvent) and ev.decision in ("HOLD", "PULL")]
    if hits:
        conn.execute(reviews.insert(), [_review_row(ev, station, settings, now, zone) for ev in hits])
    raised = raise_orders(conn, settings, station, hits, now)
    if raised:
        result.orders_changed = True
        sites = {o.site_id for o in raised}
        result.order_sites = None if None in sites else {s for s in sites if s is not None}
    # A station's report on an order changes only what that station itself is still sent: no one to wake.
    for ev in events_new:
        if isinstance(ev, OrderStatusEvent) and not record_state(
            conn, ev.order_id, ev.station_id, ev.state, ev.at, ev.key
        ):
            log.warning("station %s reported on unknown order %s", ev.station_id, ev.order_id)
    # The images these events name become visible to the officers of this site (and no other).
    link_images(
        conn, site_id, (img.sha256 for ev in events_new if isinstance(ev, ParcelEvent) for img in ev.images)
    )
    record_device_states(
        conn, station.name, (ev for ev in events_new if isinstance(ev, DeviceStatusEvent)), now
    )
    # An open-box result labels the parcel's images: examples the classifier's heads are retrained on.
    learn_from_open_box(conn, site_id, (ev for ev in events_new if isinstance(ev, OperatorEvent)), now)
    touch_station(conn, station.name, now)
    result.accepted = [ev.key for ev in events_new]
    return result


def unseen(conn: Connection, fresh: list[Prepared], result: IngestResult) -> list[Prepared]:
    """The events not stored yet, in one query per KEY_CHUNK keys; a stored key with another payload
    refuses the batch (409)."""
    stored: dict[str, str] = {}
    keys = [p.event.key for p in fresh]
    pg = conn.dialect.name == "postgresql"
    for i in range(0, len(keys), KEY_CHUNK):
        chunk = keys[i : i + KEY_CHUNK]
        # One parameter (an array, a JSON list) rather than a thousand, each one bound and spliced in.
        if pg:
            match = events.c.key == any_(bindparam("keys", chunk, type_=ARRAY(String)))
        else:
            listed = func.json_each(bindparam("keys", json.dumps(chunk))).table_valued("value")
            match = events.c.key.in_(select(listed.c.value))
        for row in conn.execute(select(events.c.key, events.c.payload_hash).where(match)):
            stored[row.key] = row.payload_hash
    for p in fresh:
        if p.event.key in stored and stored[p.event.key] != p.digest:
            raise Conflict(
                f"event {p.event.key!r} was already stored with a different payload", "event_conflict"
            )
    result.duplicates.extend(p.event.key for p in fresh if p.event.key in stored)
    return [p for p in fresh if p.event.key not in stored]


def raise_orders(
    conn: Connection, settings: ServerSettings, station: Principal, hits: list[ParcelEvent], now: datetime
) -> list[PullOrderWire]:
    """PULLs become orders for the other stations (one live order per waybill), each raise audited;
    returns the orders raised."""
    site_id = station.sites[0]
    ttl = timedelta(hours=settings.orders.default_ttl_hours)
    pulls = [(ev, order_from_pull(ev, site_id, settings.orders.network_wide, ttl)) for ev in hits]
    raised = [(ev, d) for ev, d in pulls if d is not None]
    if not raised:
        return []
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
    return [order for order in stored if order is not None]


def _review_row(
    ev: ParcelEvent, station: Principal, settings: ServerSettings, now: datetime, zone: ZoneInfo
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
        "day": event_day(ev, zone),
        "created_at": iso(now),
        "due_at": iso(now + timedelta(hours=hours)),
    }
