"""Review items: the officer queue, evidence for one item, claims and decisions, gallery additions."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, case, or_, select, update

from server.accounts import Principal
from server.db import iso, parse_iso
from server.errors import BadInput, Conflict, NotFound
from server.review_rules import GALLERY_DECISIONS, ItemView, ReviewPolicy, apply_action, has_substance
from server.schema import events, gallery, manifests, orders, referrals, reviews, senders, watchlist
from server.scope import site_filter
from server.settings import ServerSettings
from server.sites import due_at
from server.watchlist import applies_at

IMAGE_URL = "/api/v1/images/{sha256}"


def _scope(principal: Principal) -> Any:
    return site_filter(principal, reviews.c.site_id)


def item_summary(row: Any) -> dict[str, Any]:
    return {
        "id": int(row.id),
        "event_key": row.event_key,
        "station_id": row.station_id,
        "site_id": row.site_id,
        "line_id": row.line_id,
        "waybill": row.waybill,
        "tracking_id": row.tracking_id,
        "decision": row.decision,
        "reasons": json.loads(row.reasons),
        "risk": row.risk,
        "sender_token": row.sender_token,
        "category": row.category,
        "priority": row.priority,
        "state": row.state,
        "created_at": row.created_at,
        "due_at": row.due_at,
        "claimed_by": row.claimed_by,
        "lease_until": row.lease_until,
        "outcome": row.outcome,
        "outcome_fields": json.loads(row.outcome_fields) if row.outcome_fields else None,
        "decided_by": row.decided_by,
        "decided_at": row.decided_at,
        "statutory_due_at": row.statutory_due_at,
    }


def waiting(principal: Principal, now: datetime) -> Any:
    """Items waiting for a decision that this officer may take: unclaimed, lapsed, or claimed by them."""
    return and_(
        or_(
            reviews.c.state.in_(("open", "inspecting", "detained")),
            and_(
                reviews.c.state == "claimed",
                or_(reviews.c.lease_until <= iso(now), reviews.c.claimed_by == principal.name),
            ),
        ),
        _scope(principal),
    )


def queue_stage() -> Any:
    """Items back from inspection come before fresh ones of the same priority."""
    return case((reviews.c.state == "inspecting", 0), else_=1)


def queue(conn: Connection, principal: Principal, now: datetime, limit: int = 100) -> list[dict[str, Any]]:
    """Items waiting for a decision: most urgent first, then the nearest deadline."""
    rows = conn.execute(
        select(reviews)
        .where(waiting(principal, now))
        .order_by(queue_stage(), reviews.c.priority, reviews.c.due_at, reviews.c.id)
        .limit(limit)
    ).fetchall()
    return [item_summary(r) for r in rows]


def followups(conn: Connection, principal: Principal, limit: int = 100) -> list[dict[str, Any]]:
    """Decided items with a statutory deadline (notify the rights holder, hand over), earliest first."""
    rows = conn.execute(
        select(reviews)
        .where(reviews.c.statutory_due_at.is_not(None), _scope(principal))
        .order_by(reviews.c.statutory_due_at, reviews.c.id)
        .limit(limit)
    ).fetchall()
    return [item_summary(r) for r in rows]


def _load(conn: Connection, item_id: int, principal: Principal) -> Any:
    row = conn.execute(select(reviews).where(reviews.c.id == item_id, _scope(principal))).first()
    if row is None:
        raise NotFound(f"no review item {item_id}")
    return row


def _settled_divert(conn: Connection, row: Any, divert: dict[str, Any] | None) -> dict[str, Any] | None:
    """A divert the station recorded as PENDING has its outcome in a later event of the same parcel."""
    if not divert or divert.get("outcome") != "PENDING":
        return divert
    found = conn.execute(
        select(events.c.payload)
        .where(
            events.c.day >= row.day,
            events.c.type == "divert_outcome",
            events.c.station_id == row.station_id,
            events.c.tracking_id == row.tracking_id,
        )
        .order_by(events.c.seq.desc())
        .limit(1)
    ).scalar()
    if found is None:
        return divert
    outcome = json.loads(found)
    return {"outcome": outcome["outcome"], "chute": outcome.get("chute"), "detail": outcome.get("detail", "")}


def evidence(
    conn: Connection, item_id: int, principal: Principal, regions: dict[str, list[str]]
) -> dict[str, Any]:
    """One item with its images, classifier output, masked sender record, declared contents and history.

    The sender's history holds only items of the caller's sites, and the list entries only those that
    apply at the item's site.
    """
    row = _load(conn, item_id, principal)
    out = item_summary(row)
    # A consolidated split-shipment item stands for a cluster, not for one event: it has no payload.
    stored = conn.execute(select(events.c.payload).where(events.c.key == row.event_key)).scalar()
    if stored is None and not row.event_key.startswith("cluster:"):
        raise NotFound(f"review item {item_id} has lost its event")
    payload = json.loads(stored or "{}")
    out["images"] = [
        {**img, "url": IMAGE_URL.format(sha256=img["sha256"])} for img in payload.get("images", [])
    ]
    out["classifications"] = payload.get("classifications", [])
    out["divert"] = _settled_divert(conn, row, payload.get("divert"))
    out["codes"] = payload.get("codes", [])
    out["sender"] = None
    out["sender_history"] = []
    out["sender_listed"] = []
    if row.sender_token:
        s = conn.execute(select(senders).where(senders.c.sender_token == row.sender_token)).first()
        if s is not None:
            out["sender"] = {
                "sender_token": s.sender_token,
                "id_type": s.id_type,
                "id_masked": s.id_masked,
                "name_masked": s.name_masked,
                "phone_masked": s.phone_masked,
                "verified": bool(s.verified),
                "verified_at": s.verified_at,
                "outlet": s.outlet,
                "courier": s.courier,
                "agreement_customer": bool(s.agreement_customer),
                "usc_code": s.usc_code,
                "qualification": s.qualification,
            }
        history = conn.execute(
            select(reviews)
            .where(reviews.c.sender_token == row.sender_token, reviews.c.id != row.id, _scope(principal))
            .order_by(reviews.c.id.desc())
            .limit(20)
        ).fetchall()
        out["sender_history"] = [item_summary(h) for h in history]
        out["sender_listed"] = [
            {
                "list": w.list,
                "kind": w.kind,
                "reason": w.reason,
                "expires_at": w.expires_at,
                "active": bool(w.active),
            }
            for w in conn.execute(
                select(watchlist).where(
                    watchlist.c.token == row.sender_token, applies_at([row.site_id], regions)
                )
            )
        ]
    out["manifest"] = None
    if row.waybill:
        m = conn.execute(select(manifests).where(manifests.c.waybill == row.waybill)).first()
        if m is not None:
            out["manifest"] = {
                "declared_name": m.declared_name,
                "declared_category": m.declared_category,
                "quantity": m.quantity,
                "inspected_on_receipt": bool(m.inspected_on_receipt),
            }
    return out


def review_policy(settings: ServerSettings, site_id: str) -> ReviewPolicy:
    """The rules' view of the configuration at one site: its jurisdiction's deadline for each decision."""
    return ReviewPolicy(
        lease=timedelta(minutes=settings.review.lease_minutes),
        legal_bases=tuple(settings.review.legal_bases),
        due=lambda action, at: due_at(settings, site_id, action, at),
    )


def act(
    conn: Connection,
    item_id: int,
    principal: Principal,
    action: str,
    now: datetime,
    settings: ServerSettings,
    fields: dict[str, str] | None = None,
    add_to_gallery: bool = False,
    gallery_label: str = "",
) -> dict[str, Any]:
    """Apply a claim, unclaim or decision; a conditional update lets only one concurrent officer win."""
    row = _load(conn, item_id, principal)
    view = ItemView(
        state=row.state,
        claimed_by=row.claimed_by,
        lease_until=parse_iso(row.lease_until) if row.lease_until else None,
        claimed_from=row.claimed_from,
    )
    nxt = apply_action(view, action, principal.name, now, review_policy(settings, row.site_id), fields)
    values: dict[str, Any] = {
        "state": nxt.state,
        "claimed_by": nxt.claimed_by,
        "lease_until": iso(nxt.lease_until) if nxt.lease_until else None,
        "claimed_from": nxt.claimed_from,
    }
    if nxt.outcome is not None:
        values.update(
            outcome=nxt.outcome,
            outcome_fields=json.dumps(fields or {}, ensure_ascii=False, sort_keys=True),
            decided_by=principal.name,
            decided_at=iso(now),
            statutory_due_at=iso(nxt.statutory_due_at) if nxt.statutory_due_at else None,
        )
    same = and_(
        reviews.c.id == item_id,
        reviews.c.state == row.state,
        reviews.c.claimed_by.is_(None) if row.claimed_by is None else reviews.c.claimed_by == row.claimed_by,
    )
    if conn.execute(update(reviews).where(same).values(**values)).rowcount != 1:
        raise Conflict("the item changed meanwhile; reload it", "changed")
    if add_to_gallery and nxt.outcome in GALLERY_DECISIONS:
        add_gallery_refs(conn, row, principal.name, gallery_label or row.category or "counterfeit", now)
    return item_summary(_load(conn, item_id, principal))


MAX_BULK = 200


def bulk_release(
    conn: Connection,
    ids: list[int],
    principal: Principal,
    reason: str,
    now: datetime,
    settings: ServerSettings,
) -> list[dict[str, Any]]:
    """Release low-risk HOLD items of one site together, each claimed and released under one reason.

    All or nothing: one item that is not an open low-risk HOLD, or is of another site, refuses the lot.
    """
    reason = reason.strip()
    if not 1 <= len(set(ids)) <= MAX_BULK or len(set(ids)) != len(ids):
        raise BadInput(f"give 1 to {MAX_BULK} different item ids", "bad_ids")
    if not has_substance(reason):
        raise BadInput("the reason says nothing; write why these parcels may go", "no_substance")
    rows = [_load(conn, i, principal) for i in ids]
    sites = sorted({r.site_id for r in rows})
    if len(sites) > 1:
        raise BadInput(
            f"a bulk release stays within one site; these items are of {', '.join(sites)}", "sites"
        )
    limit = settings.review.bulk_release_max_risk
    for r in rows:
        mine = r.state == "claimed" and r.claimed_by == principal.name
        if r.decision != "HOLD" or r.risk > limit or not (r.state == "open" or mine):
            raise Conflict(
                f"item {r.id} is not an open HOLD of risk {limit:.2f} or less; release it on its own page",
                "not_bulk",
            )
    out = []
    for r in rows:
        if r.state == "open":
            act(conn, int(r.id), principal, "claim", now, settings)
        out.append(act(conn, int(r.id), principal, "release", now, settings, {"note": reason}))
    return out


def operator_results(conn: Connection, item: dict[str, Any]) -> list[dict[str, Any]]:
    """What operators confirmed at the terminals for this parcel: pulled, not found, open-box results."""
    same_parcel = and_(events.c.station_id == item["station_id"], events.c.tracking_id == item["tracking_id"])
    match = or_(same_parcel, events.c.waybill == item["waybill"]) if item["waybill"] else same_parcel
    rows = conn.execute(
        select(events.c.station_id, events.c.payload)
        .where(events.c.type == "operator", match)
        .order_by(events.c.at, events.c.id)
        .limit(50)
    )
    out = []
    for r in rows:
        body = json.loads(r.payload)
        out.append(
            {
                "station_id": r.station_id,
                "action": body["action"],
                "result": body.get("result", ""),
                "operator": body.get("operator", ""),
                "at": body["at"],
            }
        )
    return out


def add_gallery_refs(conn: Connection, row: Any, actor: str, label: str, now: datetime) -> int:
    """Reference the item's images in the counterfeit gallery edges download; repeated adds are ignored."""
    # A consolidated split-shipment item stands for a cluster, not for one event: it has no payload.
    stored = conn.execute(select(events.c.payload).where(events.c.key == row.event_key)).scalar()
    if stored is None and not row.event_key.startswith("cluster:"):
        raise NotFound(f"review item {row.id} has lost its event")
    payload = json.loads(stored or "{}")
    added = 0
    for img in payload.get("images", []):
        if img.get("kind") == "label":
            # The shipping label says nothing about the goods: never a counterfeit reference.
            continue
        exists = conn.execute(
            select(gallery.c.ref_id).where(gallery.c.image_sha256 == img["sha256"], gallery.c.label == label)
        ).first()
        if exists:
            continue
        conn.execute(
            gallery.insert().values(
                ref_id=str(uuid.uuid4()),
                image_sha256=img["sha256"],
                label=label[:128],
                category=row.category,
                kind=img.get("kind"),
                review_id=row.id,
                added_by=actor,
                created_at=iso(now),
            )
        )
        added += 1
    return added


def audit_targets(conn: Connection, item: dict[str, Any]) -> list[str]:
    """Audit targets about one item: the item, its sender's record, pull orders for its waybill or sender."""
    targets = [f"review:{item['id']}"]
    if item["sender_token"]:
        targets.append(f"sender:{item['sender_token']}")
    related = []
    if item["waybill"]:
        related.append(orders.c.waybill == item["waybill"])
    if item["sender_token"]:
        related.append(orders.c.sender_token == item["sender_token"])
    if related:
        targets += [str(r.order_id) for r in conn.execute(select(orders.c.order_id).where(or_(*related)))]
    targets += [f"referral:{n}" for n in referrals_naming(conn, int(item["id"]))]
    return targets


def referrals_naming(conn: Connection, item_id: int) -> list[int]:
    """Ids of the referrals that include this item, newest first."""
    # item_ids is a JSON list; LIKE narrows, the exact check decides (12 must not match 120).
    rows = conn.execute(
        select(referrals.c.id, referrals.c.item_ids)
        .where(referrals.c.item_ids.like(f"%{item_id}%"))
        .order_by(referrals.c.id.desc())
    )
    return [int(r.id) for r in rows if item_id in json.loads(r.item_ids)]
