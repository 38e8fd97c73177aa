"""The officer's review desk: the queue in pages with filters and a live signal, and one hit."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import Connection, or_, select
from starlette.concurrency import run_in_threadpool

from server.accounts import Principal, Role
from server.db import parse_iso, utcnow
from server.deps import get_services
from server.errors import ApiError
from server.evidence.referrals import referrals_of_item
from server.jurisdictions import CN_DEADLINES
from server.links.clusters import cluster_of_review
from server.links.risk import risk_of
from server.review_queue import QueueFilter, queue_choices, queue_page, queue_signal
from server.review_rules import ALLOWED_FROM, AUTHORITIES, CLAIMABLE, DECISIONS, REQUIRED_FIELDS
from server.reviews import audit_targets, evidence, operator_results
from server.schema import audit_log, gallery, orders, reviews
from server.scope import audit_filter
from server.settings import ServerSettings
from server.sites import deadline_rule, site_zone
from server.web.common import PageDenied, current_user, error_page, need_user, render
from server.web.words import words

# Who may open the desk is in server.authz.RULES; what it shows is bounded to the officer's sites.
router = APIRouter()
FILTERS = ("site", "station", "reason", "category", "state", "decision")
IMAGE_URL = "/api/v1/images/{sha256}"
# The live queue: how often an open desk looks for news, and how long one stream lasts before the
# browser reconnects (it does so by itself), so that a closed session or a restart is noticed.
STREAM_POLL_S = 2.0
STREAM_LIFE_S = 300.0


def local_time(value: str | None, zone: ZoneInfo) -> str:
    """A stored UTC time as the site reads it: YYYY-MM-DD HH:MM in the site's zone."""
    if not value:
        return ""
    return parse_iso(value).astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _day(text: str, name: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise PageDenied(422, f"{name}: {text[:20]!r} is not a date (YYYY-MM-DD)") from None


def read_filter(request: Request) -> tuple[QueueFilter, int]:
    params = request.query_params
    chosen = {k: (params.get(k) or "").strip()[:64] for k in FILTERS}
    page_text = params.get("page") or "1"
    page = int(page_text) if page_text.isdigit() and len(page_text) < 7 else 1
    f = QueueFilter(
        **chosen,
        day_from=_day((params.get("from") or "").strip(), "from"),
        day_to=_day((params.get("to") or "").strip(), "to"),
        text=(params.get("q") or "").strip()[:64],
    )
    return f, page


def page_link(f: QueueFilter, page: int) -> str:
    values = {k: getattr(f, k) for k in FILTERS if getattr(f, k)}
    if f.text:
        values["q"] = f.text
    if f.day_from:
        values["from"] = f.day_from.isoformat()
    if f.day_to:
        values["to"] = f.day_to.isoformat()
    values["page"] = str(page)
    return "/desk?" + urlencode(values)


@router.get("/desk")
def desk(request: Request) -> Response:
    try:
        who = need_user(request)
        if not isinstance(who, Principal):
            return who
        f, page = read_filter(request)
        svc = get_services(request)
        settings = svc.settings
        zone = site_zone(settings, f.site)
        now = utcnow()
        with svc.db.read() as conn:
            found = queue_page(conn, who, now, f, zone, page, settings.review.page_size)
            options = queue_choices(conn, who, now)
            signal = queue_signal(conn, who, now, site=f.site)
        for parcel in found.parcels:
            for item in parcel["items"]:
                item["due_local"] = local_time(item["due_at"], site_zone(settings, item["site_id"]))
            lead = parcel["lead"]
            parcel["bulk"] = (
                lead["decision"] == "HOLD"
                and lead["state"] == "open"
                and lead["risk"] <= settings.review.bulk_release_max_risk
            )
        return render(
            request,
            "desk.html",
            who,
            found=found,
            options=options,
            chosen=f,
            zone=zone.key,
            prev_link=page_link(f, found.page - 1) if found.page > 1 else "",
            next_link=page_link(f, found.page + 1) if found.page < found.pages else "",
            can_act=who.role is Role.OFFICER,
            bulk_max=settings.review.bulk_release_max_risk,
            # Every reason code the pages have words for (the catalog's reason_<CODE> entries).
            reason_codes=sorted(k.removeprefix("reason_") for k in words("en") if k.startswith("reason_")),
            page_json=json.dumps({"signal": signal}).replace("<", "\\u003c"),
        )
    except PageDenied as exc:
        return error_page(request, exc.status, exc.message)


@router.get("/desk/stream")
async def desk_stream(request: Request) -> Response:
    """Server-sent events: the queue's counts and its newest PULL, each time they change.

    `once=1` answers with the current counts as one event and closes (for a script's check).
    """
    try:
        who = await run_in_threadpool(need_user, request)
    except PageDenied as exc:
        return error_page(request, exc.status, exc.message)
    if not isinstance(who, Principal):
        return who
    svc = get_services(request)
    since_text = request.query_params.get("since") or "0"
    since = int(since_text) if since_text.isdigit() and len(since_text) < 19 else 0
    once = request.query_params.get("once") == "1"
    # The stream follows the desk's site filter, so the badge counts what the page shows.
    site = (request.query_params.get("site") or "")[:64]
    if site and not who.sees_site(site):
        return error_page(request, 403, f"site {site!r} is not one of yours")

    def read() -> dict[str, int] | None:
        # A session closed or expired while the desk stayed open ends the stream.
        if current_user(request) is None:
            return None
        with svc.db.read() as conn:
            return queue_signal(conn, who, utcnow(), since, site)

    async def stream() -> AsyncIterator[str]:
        yield "retry: 3000\n\n"
        last: dict[str, int] | None = None
        ends = time.monotonic() + STREAM_LIFE_S
        while time.monotonic() < ends and not await request.is_disconnected():
            signal = await run_in_threadpool(read)
            if signal is None:
                yield "event: logout\ndata: {}\n\n"
                return
            if signal != last:
                yield f"event: queue\ndata: {json.dumps(signal)}\n\n"
                last = signal
                if once:
                    return
            else:
                yield ": idle\n\n"
            try:
                await asyncio.sleep(STREAM_POLL_S)
            except asyncio.CancelledError:
                return

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


def audit_trail(conn: Connection, who: Principal, item: dict[str, Any]) -> list[dict[str, Any]]:
    """Entries about this item, its sender's record, and pull orders for its waybill or sender.

    Only entries whose sites are all the caller's: another site's reveal of the same sender, or its
    order for the same waybill, stays with that site.
    """
    targets = audit_targets(conn, item)
    rows = conn.execute(
        select(audit_log).where(audit_log.c.target.in_(targets), audit_filter(who)).order_by(audit_log.c.n)
    )
    return [
        {"n": int(r.n), "at": r.at, "actor": r.actor, "action": r.action, "detail": json.loads(r.detail)}
        for r in rows
    ]


def related_orders(conn: Connection, item: dict[str, Any], limit: int | None = None) -> list[dict[str, Any]]:
    """Pull orders for the item's waybill or sender, newest first."""
    related = []
    if item["waybill"]:
        related.append(orders.c.waybill == item["waybill"])
    if item["sender_token"]:
        related.append(orders.c.sender_token == item["sender_token"])
    if not related:
        return []
    rows = conn.execute(select(orders).where(or_(*related)).order_by(orders.c.seq.desc()).limit(limit))
    return [
        {
            "order_id": r.order_id,
            "scope": r.scope,
            "reason": r.reason,
            "issuer": r.issuer,
            "site_id": r.site_id,
            "created_at": r.created_at,
            "expires_at": r.expires_at,
            "cancelled_at": r.cancelled_at,
            "cancelled_by": r.cancelled_by,
            "cancel_reason": r.cancel_reason,
        }
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


def deadlines(settings: ServerSettings, item: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The item's deadlines as its site reads them: the decision's, and the legal follow-up's with its
    rule and source; and the rule each decision would start."""
    site = item["site_id"]
    zone = site_zone(settings, site)
    out: dict[str, Any] = {
        "zone": zone.key,
        "decide_by": local_time(item["due_at"], zone),
        "decide_overdue": item["state"] in (*CLAIMABLE, "claimed") and parse_iso(item["due_at"]) < now,
        "statutory": None,
        "rules": {},
    }
    if item["statutory_due_at"]:
        rule = deadline_rule(settings, site, item["outcome"] or "")
        out["statutory"] = {
            "key": item["outcome"],
            "builtin": rule is not None and rule == CN_DEADLINES.get(item["outcome"] or ""),
            "due": local_time(item["statutory_due_at"], zone),
            "overdue": parse_iso(item["statutory_due_at"]) < now,
            "label": rule.label if rule else "",
            "source": rule.source if rule else "",
        }
    for decision in DECISIONS:
        rule = deadline_rule(settings, site, decision)
        if rule is not None:
            out["rules"][decision] = {
                "label": rule.label,
                # The built-in rule has its label in the page's words; a configured one shows as set.
                "builtin": rule == CN_DEADLINES.get(decision),
                "source": rule.source,
                "hours": rule.hours,
                "days": rule.days,
                "working_days": rule.working_days,
            }
    return out


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
        now = utcnow()
        with svc.db.read() as conn:
            item = evidence(conn, item_id, who, svc.settings.regions)
            trail = audit_trail(conn, who, item)
            thumbs = gallery_thumbs(conn, item)
            results = operator_results(conn, item)
            item_orders = related_orders(conn, item, limit=20)
            claimed_from = conn.execute(
                select(reviews.c.claimed_from).where(reviews.c.id == item_id)
            ).scalar()
            referrals = referrals_of_item(conn, who, item_id)
            # The link graph: the cluster a consolidated item stands for, the sender's risk and why.
            cluster_id = cluster_of_review(conn, item_id)
            sender_risk = risk_of(conn, item["sender_token"]) if item["sender_token"] else None
        zone = site_zone(svc.settings, item["site_id"])
        for r in results:
            r["at_local"] = local_time(r["at"], zone)
        for o in item_orders:
            o["expires_local"] = local_time(o["expires_at"], zone)
            o["live"] = o["cancelled_at"] is None and parse_iso(o["expires_at"]) > now
        for a in trail:
            a["at_local"] = local_time(a["at"], zone)
        xray = next((i for i in item["images"] if i["kind"].startswith("xray")), None)
        # The goods photo when there is one, else the label camera's view of the package.
        photo = next((i for i in item["images"] if i["kind"] == "camera"), None) or next(
            (i for i in item["images"] if i["kind"] == "label"), None
        )
        page_data = {
            "id": item["id"],
            "state": item["state"],
            # Where the item stood in the queue when the page was opened: "next" continues from there.
            "stage": 0 if item["state"] == "inspecting" or claimed_from == "inspecting" else 1,
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
            results=results,
            item_orders=item_orders,
            due=deadlines(svc.settings, item, now),
            decisions=allowed_decisions(item, who, claimed_from),
            required=REQUIRED_FIELDS,
            authorities=sorted(AUTHORITIES),
            # The evidence card (desk_evidence.html): referral and reply are the officer's to record.
            referrals=referrals,
            evidence_target={"item_ids": [item_id]},
            can_refer=who.role is Role.OFFICER and item["outcome"] == "refer" and not referrals,
            can_reply=who.role is Role.OFFICER,
            legal_bases=svc.settings.review.legal_bases,
            page_json=json.dumps(page_data, ensure_ascii=False).replace("<", "\\u003c"),
            cluster_id=cluster_id,
            sender_risk=sender_risk,
        )
    except PageDenied as exc:
        return error_page(request, exc.status, exc.message)
    except ApiError as exc:
        return error_page(request, exc.status, exc.message)
