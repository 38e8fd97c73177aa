"""Legal holds: placing and releasing them on review items, and what the held items keep from retention."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, select, update

from server.accounts import Principal
from server.db import iso, serialise_writers
from server.errors import BadInput, Conflict, NotFound
from server.schema import events, legal_holds, reviews
from server.scope import site_filter

# Taken by every hold placement and by every retention chunk (PostgreSQL): a chunk either sees a hold
# placed at the same moment or runs wholly before it, so a held item is never deleted under the hold.
HOLD_LOCK = 7_482_020
TargetType = Literal["review", "case"]


class HoldRequest(BaseModel):
    """A legal hold to place: on a review item (its id) or, once cases exist, on a case."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    target_type: TargetType = Field(
        description="review: a review item; case: a case (not on this server yet)"
    )
    target_id: str = Field(min_length=1, max_length=64, description="the item's id")
    reason: str = Field(min_length=1, max_length=2000, description="why it is held (case, authority, order)")


class ReleaseRequest(BaseModel):
    """Why a hold ends."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field(min_length=1, max_length=2000, description="why the hold is released")


def _row(r: Any) -> dict[str, Any]:
    return {**dict(r._mapping), "id": int(r.id), "active": r.released_at is None}


def _target_site(conn: Connection, who: Principal, target_type: str, target_id: str) -> str:
    """The site of the item to hold, when it exists and is one of the caller's."""
    if target_type == "case":
        # What a case depends on is decided where cases are built; until then a hold on one would
        # protect nothing, so it is refused rather than recorded.
        raise BadInput(
            "holds on cases are not available on this server yet; hold its review items", "no_cases"
        )
    if not (target_id.isascii() and target_id.isdigit()) or int(target_id) > 2**62:
        raise BadInput(f"review item id {target_id[:64]!r} is not a number", "bad_target")
    site = conn.execute(
        select(reviews.c.site_id).where(reviews.c.id == int(target_id), site_filter(who, reviews.c.site_id))
    ).scalar()
    if site is None:
        raise NotFound(f"no review item {target_id}")
    return str(site)


def place_hold(conn: Connection, who: Principal, req: HoldRequest, now: datetime) -> dict[str, Any]:
    """Record a hold in the caller's transaction; one live hold per item (a second is a conflict)."""
    serialise_writers(conn, HOLD_LOCK)
    target_id = req.target_id
    site = _target_site(conn, who, req.target_type, target_id)
    if req.target_type == "review":
        target_id = str(int(target_id))  # "007" and "7" are one item
    live = conn.execute(
        select(legal_holds.c.id).where(
            legal_holds.c.target_type == req.target_type,
            legal_holds.c.target_id == target_id,
            legal_holds.c.released_at.is_(None),
        )
    ).scalar()
    if live is not None:
        raise Conflict(f"{req.target_type} {target_id} is already held (hold {live})", "already_held")
    hold_id_key = conn.execute(
        legal_holds.insert().values(
            target_type=req.target_type,
            target_id=target_id,
            site_id=site,
            reason=req.reason,
            placed_by=who.name,
            placed_at=iso(now),
        )
    ).inserted_primary_key
    assert hold_id_key is not None
    hold_id = hold_id_key[0]
    return get_hold(conn, who, int(hold_id))


def get_hold(conn: Connection, who: Principal, hold_id: int) -> dict[str, Any]:
    row = conn.execute(
        select(legal_holds).where(legal_holds.c.id == hold_id, site_filter(who, legal_holds.c.site_id))
    ).first()
    if row is None:
        raise NotFound(f"no legal hold {hold_id}")
    return _row(row)


def release_hold(
    conn: Connection, who: Principal, hold_id: int, reason: str, now: datetime
) -> dict[str, Any]:
    """End a live hold in the caller's transaction; the item then ages out like any other."""
    hold = get_hold(conn, who, hold_id)
    if not hold["active"]:
        raise Conflict(f"hold {hold_id} was already released at {hold['released_at']}", "released")
    conn.execute(
        update(legal_holds)
        .where(legal_holds.c.id == hold_id)
        .values(released_by=who.name, released_at=iso(now), release_reason=reason)
    )
    return get_hold(conn, who, hold_id)


def list_holds(conn: Connection, who: Principal, active_only: bool, limit: int) -> list[dict[str, Any]]:
    query = select(legal_holds).where(site_filter(who, legal_holds.c.site_id))
    if active_only:
        query = query.where(legal_holds.c.released_at.is_(None))
    rows = conn.execute(query.order_by(legal_holds.c.id.desc()).limit(limit))
    return [_row(r) for r in rows]


@dataclass
class HeldSet:
    """Everything live holds keep: the rows retention must leave, by the key each class deletes by."""

    review_ids: set[int] = field(default_factory=set)
    event_ids: set[int] = field(default_factory=set)
    image_shas: set[str] = field(default_factory=set)
    sender_tokens: set[str] = field(default_factory=set)
    waybills: set[str] = field(default_factory=set)
    audit_targets: set[str] = field(default_factory=set)


def held_set(conn: Connection) -> HeldSet:
    """Resolve live holds to what they depend on: the item, its parcel's events (the hit and its
    follow-ups), the images those name, its sender record and manifest, and its audit entries."""
    out = HeldSet()
    live = conn.execute(
        select(legal_holds.c.id, legal_holds.c.target_id).where(
            legal_holds.c.released_at.is_(None), legal_holds.c.target_type == "review"
        )
    ).fetchall()
    out.audit_targets = {f"hold:{h.id}" for h in live}
    ids = {int(h.target_id) for h in live}
    if not ids:
        return out
    items = conn.execute(
        select(
            reviews.c.id,
            reviews.c.event_key,
            reviews.c.station_id,
            reviews.c.tracking_id,
            reviews.c.sender_token,
            reviews.c.waybill,
        ).where(reviews.c.id.in_(sorted(ids)))
    ).fetchall()
    parcels: set[tuple[str, str, str]] = set()
    for item in items:
        out.review_ids.add(int(item.id))
        out.audit_targets.add(f"review:{item.id}")
        if item.sender_token:
            out.sender_tokens.add(str(item.sender_token))
        if item.waybill:
            out.waybills.add(str(item.waybill))
            parcels.add((str(item.waybill), str(item.station_id), str(item.tracking_id)))
    # The hits themselves by key, and their follow-ups (divert outcome, the operator's open-box
    # result) through the indexed waybill: two set-based queries, each on its own index.
    wanted = select(
        events.c.id,
        events.c.type,
        events.c.payload,
        events.c.waybill,
        events.c.station_id,
        events.c.tracking_id,
    )
    rows = list(conn.execute(wanted.where(events.c.key.in_([i.event_key for i in items]))))
    if parcels:
        follow = wanted.where(events.c.waybill.in_(sorted({p[0] for p in parcels})))
        rows += [r for r in conn.execute(follow) if (r.waybill, r.station_id, r.tracking_id) in parcels]
    for ev in rows:
        out.event_ids.add(int(ev.id))
        if ev.type == "parcel":
            for img in json.loads(ev.payload).get("images") or []:
                if isinstance(img, dict) and isinstance(img.get("sha256"), str):
                    out.image_shas.add(img["sha256"])
    return out
