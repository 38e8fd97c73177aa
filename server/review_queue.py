"""The officer's queue in pages: filters, one row per parcel (waybill) with its stations, next item."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, String, and_, cast, distinct, func, literal, or_, select, true

from server.accounts import Principal
from server.db import iso
from server.errors import NotFound
from server.reviews import IMAGE_URL, item_summary, queue_stage, waiting
from server.schema import events, reviews
from server.scope import site_filter

STATES = ("open", "claimed", "inspecting", "detained")
DECISIONS = ("PULL", "HOLD")
_CODE = re.compile(r"^[A-Z_]{1,40}$")
# The photo that tells an officer most at a glance: the goods, else the label, else the X-ray.
THUMB_ORDER = ("camera", "label", "xray", "xray_low")


@dataclass(frozen=True)
class QueueFilter:
    """What the officer narrowed the queue to; empty strings and None mean no limit."""

    site: str = ""
    station: str = ""
    reason: str = ""
    category: str = ""
    state: str = ""
    decision: str = ""
    day_from: date | None = None
    day_to: date | None = None
    # A search over every state: waybill or sender token prefix.
    text: str = ""


@dataclass
class QueuePage:
    """One page of parcels, and the counts over every page."""

    parcels: list[dict[str, Any]] = field(default_factory=list)
    total_parcels: int = 0
    total_items: int = 0
    pulls: int = 0
    page: int = 1
    pages: int = 1


def _conditions(who: Principal, now: datetime, f: QueueFilter, zone: ZoneInfo) -> list[Any]:
    if f.text:
        pattern = f.text.replace("\\", "").replace("%", "").replace("_", "\\_") + "%"
        found = or_(
            reviews.c.waybill.like(pattern, escape="\\"), reviews.c.sender_token.like(pattern, escape="\\")
        )
        conds = [found, site_filter(who, reviews.c.site_id)]
    else:
        conds = [waiting(who, now)]
    if f.site:
        conds.append(reviews.c.site_id == f.site)
    if f.station:
        conds.append(reviews.c.station_id == f.station)
    if f.category:
        conds.append(reviews.c.category == f.category)
    if f.state:
        conds.append(reviews.c.state == f.state)
    if f.decision:
        conds.append(reviews.c.decision == f.decision)
    if f.reason and _CODE.match(f.reason):
        # Reasons are stored as a JSON list of codes; a code is quoted there, so it matches whole.
        conds.append(reviews.c.reasons.like(f'%"{f.reason}"%'))
    if f.day_from is not None:
        conds.append(reviews.c.created_at >= iso(datetime.combine(f.day_from, time(), zone)))
    if f.day_to is not None:
        conds.append(reviews.c.created_at < iso(datetime.combine(f.day_to + timedelta(days=1), time(), zone)))
    return conds


def _parcel_key() -> Any:
    # An item without a waybill is its own parcel.
    return func.coalesce(reviews.c.waybill, literal("#") + cast(reviews.c.id, String))


def _thumbs(conn: Connection, keys: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    if not keys:
        return out
    for row in conn.execute(select(events.c.key, events.c.payload).where(events.c.key.in_(keys))):
        imgs = json.loads(row.payload).get("images", [])
        ranked = sorted(
            (i for i in imgs if i.get("kind") in THUMB_ORDER), key=lambda i: THUMB_ORDER.index(i["kind"])
        )
        if ranked:
            out[row.key] = IMAGE_URL.format(sha256=ranked[0]["sha256"])
    return out


def queue_page(
    conn: Connection, who: Principal, now: datetime, f: QueueFilter, zone: ZoneInfo, page: int, size: int
) -> QueuePage:
    """Parcels waiting (or found), most urgent first; each lists the items its stations raised."""
    conds = _conditions(who, now, f, zone)
    key = _parcel_key().label("parcel")
    stage = func.min(queue_stage())
    grouped = (
        select(key, stage.label("stage"), func.min(reviews.c.priority).label("p"))
        .add_columns(func.min(reviews.c.due_at).label("due"), func.min(reviews.c.id).label("first"))
        .where(*conds)
        .group_by(key)
    )
    counts = conn.execute(
        select(
            func.count().label("items"),
            func.count(distinct(_parcel_key())).label("parcels"),
            func.count().filter(reviews.c.decision == "PULL").label("pulls"),
        ).where(*conds)
    ).one()
    out = QueuePage(total_parcels=int(counts.parcels), total_items=int(counts.items), pulls=int(counts.pulls))
    out.pages = max(1, -(-out.total_parcels // size))
    out.page = min(max(1, page), out.pages)
    sub = grouped.subquery()
    keys = [
        r.parcel
        for r in conn.execute(
            select(sub.c.parcel)
            .order_by(sub.c.stage, sub.c.p, sub.c.due, sub.c.first)
            .limit(size)
            .offset((out.page - 1) * size)
        )
    ]
    if not keys:
        return out
    members: dict[str, list[dict[str, Any]]] = {k: [] for k in keys}
    rows = conn.execute(
        select(reviews, _parcel_key().label("parcel"))
        .where(*conds, _parcel_key().in_(keys))
        .order_by(queue_stage(), reviews.c.priority, reviews.c.due_at, reviews.c.id)
    ).fetchall()
    for r in rows:
        members[r.parcel].append(item_summary(r))
    thumbs = _thumbs(conn, [i["event_key"] for items in members.values() for i in items])
    now_s = iso(now)
    for k in keys:
        items = members[k]
        lead = items[0]
        out.parcels.append(
            {
                "lead": lead,
                "items": items,
                "stations": sorted({i["station_id"] for i in items}),
                "reasons": list(dict.fromkeys(r for i in items for r in i["reasons"])),
                "overdue": any(i["due_at"] < now_s for i in items),
                "thumb": next((thumbs[i["event_key"]] for i in items if i["event_key"] in thumbs), None),
            }
        )
    return out


def queue_choices(conn: Connection, who: Principal, now: datetime) -> dict[str, list[str]]:
    """Values the filters offer: the sites, stations and categories of what waits in the officer's scope."""
    w = waiting(who, now)

    def values(col: Any) -> list[str]:
        return sorted(v for (v,) in conn.execute(select(col).distinct().where(w, col.is_not(None))) if v)

    return {
        "site": values(reviews.c.site_id),
        "station": values(reviews.c.station_id),
        "category": values(reviews.c.category),
        "state": list(STATES),
        "decision": list(DECISIONS),
    }


def next_item(conn: Connection, who: Principal, now: datetime, after: int, stage: int) -> int | None:
    """The item that follows `after` in queue order (the queue as it was when its page was opened),
    else the first one waiting; never `after` itself."""
    row = conn.execute(
        select(reviews.c.priority, reviews.c.due_at).where(
            reviews.c.id == after, site_filter(who, reviews.c.site_id)
        )
    ).first()
    if after and row is None:
        # Not an item of the caller's sites: its place in the queue is not theirs to learn.
        raise NotFound(f"no review item {after}")
    base = select(reviews.c.id).where(waiting(who, now), reviews.c.id != after)
    order = (queue_stage(), reviews.c.priority, reviews.c.due_at, reviews.c.id)
    if row is not None:
        st = queue_stage()
        later = or_(
            st > stage,
            and_(st == stage, reviews.c.priority > row.priority),
            and_(st == stage, reviews.c.priority == row.priority, reviews.c.due_at > row.due_at),
            and_(
                st == stage,
                reviews.c.priority == row.priority,
                reviews.c.due_at == row.due_at,
                reviews.c.id > after,
            ),
        )
        found = conn.execute(base.where(later).order_by(*order).limit(1)).scalar()
        if found is not None:
            return int(found)
    first = conn.execute(base.order_by(*order).limit(1)).scalar()
    return None if first is None else int(first)


def queue_signal(
    conn: Connection, who: Principal, now: datetime, since: int = 0, site: str = ""
) -> dict[str, int]:
    """What the live queue tells an open desk: how many items and PULLs wait, how many PULLs arrived
    after item `since`, and the newest PULL's id."""
    pull = reviews.c.decision == "PULL"
    row = conn.execute(
        select(
            func.count().label("items"),
            func.count().filter(pull).label("pulls"),
            func.count().filter(pull, reviews.c.id > since).label("new_pulls"),
            func.max(reviews.c.id).filter(reviews.c.decision == "PULL").label("newest_pull"),
            func.max(reviews.c.id).label("newest"),
        ).where(waiting(who, now), reviews.c.site_id == site if site else true())
    ).one()
    return {
        "items": int(row.items),
        "pulls": int(row.pulls),
        "new_pulls": int(row.new_pulls),
        "newest_pull": int(row.newest_pull or 0),
        "newest": int(row.newest or 0),
    }
