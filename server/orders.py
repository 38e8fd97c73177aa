"""Pull orders: the rules that raise them (pure), their storage, and which stations still have to act."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, case, exists, func, or_, select, update

from edge.wire import OrderCancelWire, ParcelEvent, PullOrderWire
from server.db import ORDER_LOCK, iso, parse_iso, serialise_writers
from server.errors import Conflict, NotFound
from server.schema import order_states, orders, stations

# States after which a station no longer needs the order.
DONE_STATES = ("delivered", "diverted", "expired")


@dataclass(frozen=True)
class OrderDraft:
    """An order before it is stored."""

    scope: str
    waybill: str | None
    sender_token: str | None
    reason: str
    issuer: str
    site_id: str | None
    expires_at: datetime
    origin_station_id: str | None = None
    source_event_key: str | None = None


def order_from_pull(
    event: ParcelEvent, site_id: str, network_wide: bool, ttl: timedelta
) -> OrderDraft | None:
    """A PULL decided at one station becomes an order for the others; pulls that obey an order do not."""
    if event.decision != "PULL" or not event.waybill or event.order_ids:
        return None
    return OrderDraft(
        scope="waybill",
        waybill=event.waybill,
        sender_token=None,
        reason=",".join(event.reasons) or "PULL",
        issuer=f"station:{event.station_id}",
        site_id=None if network_wide else site_id,
        expires_at=event.at + ttl,
        origin_station_id=event.station_id,
        source_event_key=event.key,
    )


def _wire(row: Any) -> PullOrderWire:
    return PullOrderWire(
        order_id=row.order_id,
        seq=int(row.seq),
        scope=row.scope,
        waybill=row.waybill,
        sender_token=row.sender_token,
        reason=row.reason,
        issuer=row.issuer,
        site_id=row.site_id,
        created_at=parse_iso(row.created_at),
        expires_at=parse_iso(row.expires_at),
    )


def store_order(conn: Connection, draft: OrderDraft, now: datetime) -> PullOrderWire | None:
    """Insert the order; None when an equal live order already covers the same parcels and stations."""
    return store_orders(conn, [draft], now)[0]


def _covers(
    scope: str, waybill: str | None, sender_token: str | None, site_id: str | None
) -> tuple[Any, ...]:
    """What an order stands for: two live orders with the same value would order the same thing twice."""
    return (scope, waybill if scope == "waybill" else sender_token, site_id)


def store_orders(conn: Connection, drafts: list[OrderDraft], now: datetime) -> list[PullOrderWire | None]:
    """Insert each draft, in order, in three statements whatever their number; None for a draft that an
    equal live order (or an earlier draft of the list) already covers."""
    if not drafts:
        return []
    # Checked after taking the lock, so that two batches racing on one waybill raise one order; the lock
    # also makes sequence order commit order for the long poll (see ORDER_LOCK).
    serialise_writers(conn, ORDER_LOCK)
    waybills = sorted({d.waybill for d in drafts if d.scope == "waybill" and d.waybill is not None})
    senders = sorted({d.sender_token for d in drafts if d.scope == "sender" and d.sender_token is not None})
    wanted = []
    if waybills:
        wanted.append(and_(orders.c.scope == "waybill", orders.c.waybill.in_(waybills)))
    if senders:
        wanted.append(and_(orders.c.scope == "sender", orders.c.sender_token.in_(senders)))
    live: set[tuple[Any, ...]] = set()
    if wanted:
        query = select(orders.c.scope, orders.c.waybill, orders.c.sender_token, orders.c.site_id).where(
            or_(*wanted), orders.c.cancelled_at.is_(None), orders.c.expires_at > iso(now)
        )
        live = {_covers(r.scope, r.waybill, r.sender_token, r.site_id) for r in conn.execute(query)}
    rows: list[dict[str, Any]] = []
    picked: list[str | None] = []
    for d in drafts:
        covers = _covers(d.scope, d.waybill, d.sender_token, d.site_id)
        if covers in live:
            picked.append(None)
            continue
        live.add(covers)
        order_id = str(uuid.uuid4())
        picked.append(order_id)
        rows.append(
            {
                "order_id": order_id,
                "scope": d.scope,
                "waybill": d.waybill,
                "sender_token": d.sender_token,
                "reason": d.reason,
                "issuer": d.issuer,
                "site_id": d.site_id,
                "origin_station_id": d.origin_station_id,
                "source_event_key": d.source_event_key,
                "created_at": iso(now),
                "expires_at": iso(d.expires_at),
            }
        )
    if not rows:
        return [None] * len(drafts)
    conn.execute(orders.insert(), rows)
    ids = [r["order_id"] for r in rows]
    stored = {r.order_id: _wire(r) for r in conn.execute(select(orders).where(orders.c.order_id.in_(ids)))}
    return [stored[o] if o is not None else None for o in picked]


def _for_station(station_id: str, site_id: str) -> Any:
    return and_(
        or_(orders.c.site_id.is_(None), orders.c.site_id == site_id),
        or_(orders.c.origin_station_id.is_(None), orders.c.origin_station_id != station_id),
    )


def pending_orders(
    conn: Connection, station_id: str, site_id: str, now: datetime, after: int = 0, limit: int = 500
) -> list[PullOrderWire]:
    """Live orders this station has not yet reported delivered, diverted or expired."""
    done = exists().where(
        order_states.c.order_seq == orders.c.seq,
        order_states.c.station_id == station_id,
        order_states.c.state.in_(DONE_STATES),
    )
    rows = conn.execute(
        select(orders)
        .where(
            _for_station(station_id, site_id),
            orders.c.seq > after,
            orders.c.cancelled_at.is_(None),
            orders.c.expires_at > iso(now),
            ~done,
        )
        .order_by(orders.c.seq)
        .limit(limit)
    ).fetchall()
    return [_wire(r) for r in rows]


def last_order_seq(conn: Connection, station_id: str, site_id: str) -> int:
    value = conn.execute(select(func.max(orders.c.seq)).where(_for_station(station_id, site_id))).scalar()
    return int(value or 0)


def record_state(
    conn: Connection, order_id: str, station_id: str, state: str, at: datetime, event_key: str
) -> bool:
    """Store a station's report on an order; False when the order is unknown."""
    seq = conn.execute(select(orders.c.seq).where(orders.c.order_id == order_id)).scalar()
    if seq is None:
        return False
    key = and_(order_states.c.order_seq == seq, order_states.c.station_id == station_id)
    if conn.execute(select(order_states.c.state).where(key)).first():
        conn.execute(
            update(order_states).where(key).values(state=state, updated_at=iso(at), event_key=event_key)
        )
    else:
        conn.execute(
            order_states.insert().values(
                order_seq=seq, station_id=station_id, state=state, updated_at=iso(at), event_key=event_key
            )
        )
    return True


def station_state(reported: str | None, expires_at: str, now: datetime) -> str:
    """What an order means at one station: its report, else pending until expiry, then expired."""
    if reported is not None:
        return reported
    return "expired" if expires_at <= iso(now) else "pending"


def cancel_order(conn: Connection, order_id: str, actor: str, reason: str, now: datetime) -> Any:
    """Mark a live order cancelled (who, why); refused once it is cancelled, expired or carried out.

    A waybill order is carried out when a station diverted the parcel; a sender order stays live for the
    sender's next parcels, so it may be cancelled after diverts.
    """
    row = conn.execute(select(orders).where(orders.c.order_id == order_id)).first()
    if row is None:
        raise NotFound(f"no pull order {order_id[:40]!r}")
    if row.cancelled_at is not None:
        raise Conflict(f"order {order_id} was cancelled by {row.cancelled_by or '?'} already", "cancelled")
    if row.expires_at <= iso(now):
        raise Conflict(f"order {order_id} has expired; there is nothing to cancel", "expired")
    if row.scope == "waybill":
        diverted = conn.execute(
            select(order_states.c.station_id).where(
                order_states.c.order_seq == row.seq, order_states.c.state == "diverted"
            )
        ).first()
        if diverted is not None:
            raise Conflict(
                f"order {order_id} was carried out: station {diverted.station_id} pulled the parcel",
                "executed",
            )
    done = conn.execute(
        update(orders)
        .where(orders.c.seq == row.seq, orders.c.cancelled_at.is_(None))
        .values(cancelled_at=iso(now), cancelled_by=actor[:64], cancel_reason=reason)
    )
    if done.rowcount != 1:
        raise Conflict(f"order {order_id} changed meanwhile; reload it", "changed")
    return conn.execute(select(orders).where(orders.c.seq == row.seq)).one()


def cancelled_orders(
    conn: Connection, station_id: str, site_id: str, now: datetime, limit: int = 500
) -> list[OrderCancelWire]:
    """Cancellations a station must apply: orders for it cancelled before they expired, newest first.

    Sent with every reply while the order would still be live, so a station that missed one gets it on
    its next sync; applying one twice changes nothing.
    """
    rows = conn.execute(
        select(orders.c.order_id, orders.c.seq, orders.c.cancelled_at)
        .where(
            _for_station(station_id, site_id),
            orders.c.cancelled_at.is_not(None),
            orders.c.expires_at > iso(now),
        )
        .order_by(orders.c.seq.desc())
        .limit(limit)
    ).fetchall()
    return [
        OrderCancelWire(order_id=r.order_id, seq=int(r.seq), cancelled_at=parse_iso(r.cancelled_at))
        for r in rows
    ]


def list_orders(
    conn: Connection,
    now: datetime,
    sites: tuple[str, ...] | None,
    created_day: str | None = None,
    limit: int = 500,
    only: str | None = None,
) -> list[dict[str, Any]]:
    """Orders (newest first) with each targeted station's state; `sites` None means every site."""
    query = select(orders).order_by(orders.c.seq.desc()).limit(limit)
    if only is not None:
        query = query.where(orders.c.order_id == only)
    if sites is not None:
        query = query.where(or_(orders.c.site_id.in_(sites), orders.c.site_id.is_(None)))
    if created_day is not None:
        query = query.where(orders.c.created_at.like(f"{created_day}%"))
    rows = conn.execute(query).fetchall()
    if not rows:
        return []
    all_stations = conn.execute(select(stations.c.station_id, stations.c.site_id)).fetchall()
    seqs = [r.seq for r in rows]
    reported: dict[tuple[int, str], str] = {
        (int(s.order_seq), s.station_id): s.state
        for s in conn.execute(select(order_states).where(order_states.c.order_seq.in_(seqs)))
    }
    out = []
    for r in rows:
        targets = [
            s.station_id
            for s in all_stations
            if (r.site_id is None or s.site_id == r.site_id) and s.station_id != r.origin_station_id
        ]
        if sites is not None:
            targets = [
                t for t in targets if any(s.station_id == t and s.site_id in sites for s in all_stations)
            ]
        per_station = {
            t: station_state(reported.get((int(r.seq), t)), r.expires_at, now) for t in sorted(targets)
        }
        item = _wire(r).model_dump(mode="json")
        item.update(
            origin_station_id=r.origin_station_id,
            cancelled=r.cancelled_at is not None,
            cancelled_at=r.cancelled_at,
            cancelled_by=r.cancelled_by,
            cancel_reason=r.cancel_reason,
            stations=per_station,
        )
        out.append(item)
    return out


def order_state_counts(
    conn: Connection, day_start: datetime, station_sites: dict[str, str], now: datetime
) -> tuple[int, Counter[str]]:
    """Orders created on the day starting at `day_start`, and their (order, station) states over the
    given stations: reported states as stored, the rest pending or expired. Aggregated in SQL."""
    window = (orders.c.created_at >= iso(day_start), orders.c.created_at < iso(day_start + timedelta(days=1)))
    by_site: dict[str, set[str]] = {}
    for sid, site in station_sites.items():
        by_site.setdefault(site, set()).add(sid)
    targets = {False: 0, True: 0}
    created = 0
    now_s = iso(now)
    for row in conn.execute(
        select(orders.c.site_id, orders.c.origin_station_id, orders.c.expires_at).where(*window)
    ):
        created += 1
        scope = set(station_sites) if row.site_id is None else by_site.get(row.site_id, set())
        targets[row.expires_at <= now_s] += len(scope) - (1 if row.origin_station_id in scope else 0)
    states: Counter[str] = Counter()
    reported = {False: 0, True: 0}
    if station_sites:
        expired = case((orders.c.expires_at <= now_s, 1), else_=0).label("expired")
        for row in conn.execute(
            select(order_states.c.state, expired, func.count().label("n"))
            .select_from(order_states.join(orders, orders.c.seq == order_states.c.order_seq))
            .where(*window, order_states.c.station_id.in_(list(station_sites)))
            .group_by(order_states.c.state, expired)
        ):
            states[row.state] += int(row.n)
            reported[bool(row.expired)] += int(row.n)
    states["pending"] += targets[False] - reported[False]
    states["expired"] += targets[True] - reported[True]
    return created, +states
