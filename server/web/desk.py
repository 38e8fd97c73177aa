"""The officer's review desk: the queue with filters and search, and one hit with evidence and audit trail."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import Connection, or_, select

from server.accounts import Principal, Role
from server.db import utcnow
from server.deps import get_services
from server.errors import ApiError
from server.links.clusters import cluster_of_review
from server.links.risk import risk_of
from server.review_rules import ALLOWED_FROM, AUTHORITIES, CLAIMABLE, DECISIONS, REQUIRED_FIELDS
from server.reviews import evidence, item_summary, queue
from server.schema import audit_log, gallery, orders, reviews
from server.scope import audit_filter, site_filter
from server.web.common import PageDenied, error_page, need_user, render

# Who may open the desk is in server.authz.RULES; what it shows is bounded to the officer's sites.
router = APIRouter()
FILTERS = ("site", "reason", "category", "state")
IMAGE_URL = "/api/v1/images/{sha256}"


def search_items(conn: Connection, who: Principal, text: str, limit: int = 100) -> list[dict[str, Any]]:
    """Items of any state whose waybill or sender token starts with `text`, newest first."""
    pattern = text.replace("\\", "").replace("%", "").replace("_", "\\_") + "%"
    query = (
        select(reviews)
        .where(
            or_(
                reviews.c.waybill.like(pattern, escape="\\"),
                reviews.c.sender_token.like(pattern, escape="\\"),
            )
        )
        .where(site_filter(who, reviews.c.site_id))
        .order_by(reviews.c.id.desc())
        .limit(limit)
    )
    return [item_summary(r) for r in conn.execute(query)]


def filter_items(items: list[dict[str, Any]], chosen: dict[str, str]) -> list[dict[str, Any]]:
    def keep(item: dict[str, Any]) -> bool:
        for key, value in chosen.items():
            if not value:
                continue
            if key == "reason" and value not in item["reasons"]:
                return False
            if key == "site" and item["site_id"] != value:
                return False
            if key in ("category", "state") and item[key] != value:
                return False
        return True

    return [i for i in items if keep(i)]


def choices(items: list[dict[str, Any]]) -> dict[str, list[str]]:
    return {
        "site": sorted({i["site_id"] for i in items}),
        "reason": sorted({r for i in items for r in i["reasons"]}),
        "category": sorted({i["category"] for i in items if i["category"]}),
        "state": sorted({i["state"] for i in items}),
    }


@router.get("/desk")
def desk(request: Request) -> Response:
    try:
        who = need_user(request)
        if not isinstance(who, Principal):
            return who
        params = request.query_params
        text = (params.get("q") or "").strip()[:64]
        chosen = {k: (params.get(k) or "")[:64] for k in FILTERS}
        svc = get_services(request)
        with svc.db.read() as conn:
            waiting = queue(conn, who, utcnow(), 500)
            found = search_items(conn, who, text) if text else None
        base = found if found is not None else waiting
        return render(
            request,
            "desk.html",
            who,
            items=filter_items(base, chosen),
            options=choices(base),
            chosen=chosen,
            q=text,
            searching=found is not None,
        )
    except PageDenied as exc:
        return error_page(request, exc.status, exc.message)


def audit_trail(conn: Connection, who: Principal, item: dict[str, Any]) -> list[dict[str, Any]]:
    """Entries about this item, its sender's record, and pull orders for its waybill or sender.

    Only entries whose sites are all the caller's: another site's reveal of the same sender, or its
    order for the same waybill, stays with that site.
    """
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
    rows = conn.execute(
        select(audit_log).where(audit_log.c.target.in_(targets), audit_filter(who)).order_by(audit_log.c.n)
    )
    return [
        {"n": int(r.n), "at": r.at, "actor": r.actor, "action": r.action, "detail": json.loads(r.detail)}
        for r in rows
    ]


def gallery_thumbs(conn: Connection, item: dict[str, Any]) -> dict[str, str]:
    ref_ids = {g["ref_id"] for c in item["classifications"] for g in c.get("gallery", [])}
    if not ref_ids:
        return {}
    rows = conn.execute(select(gallery.c.ref_id, gallery.c.image_sha256).where(gallery.c.ref_id.in_(ref_ids)))
    return {str(r.ref_id): IMAGE_URL.format(sha256=r.image_sha256) for r in rows}


def allowed_decisions(item: dict[str, Any], who: Principal, claimed_from: str | None) -> list[str]:
    """What this officer may decide now; a claimed item follows the state it was claimed from."""
    state = item["state"]
    if state == "claimed":
        if item["claimed_by"] != who.name:
            return []
        return [d for d in DECISIONS if d in ALLOWED_FROM.get(claimed_from or "open", frozenset())]
    if state in CLAIMABLE:
        return [d for d in DECISIONS if d in ALLOWED_FROM.get(state, frozenset())]
    return []


@router.get("/desk/items/{item_ref}")
def desk_item(request: Request, item_ref: str) -> Response:
    try:
        who = need_user(request)
        if not isinstance(who, Principal):
            return who
        # Parsed here, not by FastAPI, so that a mistyped address gets the page, not a JSON error.
        item_id = int(item_ref) if item_ref.isdigit() and len(item_ref) < 19 else 0
        if not 1 <= item_id <= 2**62:
            return error_page(request, 404, f"no review item {item_ref[:40]!r}")
        svc = get_services(request)
        with svc.db.read() as conn:
            item = evidence(conn, item_id, who, svc.settings.regions)
            trail = audit_trail(conn, who, item)
            thumbs = gallery_thumbs(conn, item)
            claimed_from = conn.execute(
                select(reviews.c.claimed_from).where(reviews.c.id == item_id)
            ).scalar()
            # The link graph: the cluster a consolidated item stands for, the sender's risk and why.
            cluster_id = cluster_of_review(conn, item_id)
            sender_risk = risk_of(conn, item["sender_token"]) if item["sender_token"] else None
        xray = next((i for i in item["images"] if i["kind"].startswith("xray")), None)
        # The goods photo when there is one, else the label camera's view of the package.
        photo = next((i for i in item["images"] if i["kind"] == "camera"), None) or next(
            (i for i in item["images"] if i["kind"] == "label"), None
        )
        page_data = {
            "id": item["id"],
            "state": item["state"],
            "claimed_by": item["claimed_by"],
            "me": who.name,
            "waybill": item["waybill"],
            "sender_token": item["sender_token"],
            "site_id": item["site_id"],
            "required": REQUIRED_FIELDS,
            "can_act": who.role is Role.OFFICER,
        }
        return render(
            request,
            "desk_item.html",
            who,
            item=item,
            xray=xray,
            photo=photo,
            trail=trail,
            thumbs=thumbs,
            decisions=allowed_decisions(item, who, claimed_from),
            required=REQUIRED_FIELDS,
            authorities=sorted(AUTHORITIES),
            page_json=json.dumps(page_data, ensure_ascii=False).replace("<", "\\u003c"),
            cluster_id=cluster_id,
            sender_risk=sender_risk,
        )
    except PageDenied as exc:
        return error_page(request, exc.status, exc.message)
    except ApiError as exc:
        return error_page(request, exc.status, exc.message)
