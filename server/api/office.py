"""Office endpoints: registry imports, watchlist entries, pull orders by officers, daily reports."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from edge.wire import PullOrderWire
from server.accounts import ALL_SITES, Principal
from server.api.responses import DailyReport, OrderItem, WatchEntry
from server.authz import Caller
from server.db import utcnow
from server.deps import ServicesDep
from server.errors import BadInput, Forbidden, NotFound
from server.idcheck import check_id_number
from server.notify import publish_orders_changed
from server.orders import OrderDraft, cancel_order, list_orders, store_order
from server.registry import import_rows, parse_rows
from server.reports import report_csv, scoped_report
from server.review_rules import has_substance
from server.schema import orders
from server.scope import own_sites, record
from server.watchlist import (
    WatchRequest,
    WatchUpdate,
    add_entry,
    check_may_set,
    get_entry,
    list_entries,
    resolve_scope,
    scope_sites,
    update_entry,
)

# Who may call each route is in server.authz.RULES; the handlers bound what callers see to their sites.
router = APIRouter(prefix="/api/v1", tags=["office"])


class ImportReply(BaseModel):
    """How many rows were stored and which were refused, by row number (1 = first data row)."""

    imported: int
    rejected: list[dict[str, Any]]


IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
        },
    }
}


async def _import(
    kind: Literal["senders", "manifests"], request: Request, who: Principal, svc: ServicesDep
) -> ImportReply:
    body = await request.body()
    rows = parse_rows(body, request.headers.get("content-type", ""))

    def work() -> dict[str, Any]:
        with svc.db.write() as conn:
            out = import_rows(conn, svc.privacy, kind, rows)
            record(
                conn, svc.secret, who.name, f"import_{kind}", kind, own_sites(who),
                {"imported": out["imported"], "rejected": len(out["rejected"])},
            )  # fmt: skip
            return out

    return ImportReply(**await run_in_threadpool(work))


@router.post(
    "/senders/import", response_model=ImportReply, openapi_extra=IMPORT_BODY, summary="Import sender records"
)
async def import_senders(request: Request, who: Caller, svc: ServicesDep) -> ImportReply:
    return await _import("senders", request, who, svc)


@router.post(
    "/manifests/import", response_model=ImportReply, openapi_extra=IMPORT_BODY, summary="Import manifests"
)
async def import_manifests(request: Request, who: Caller, svc: ServicesDep) -> ImportReply:
    return await _import("manifests", request, who, svc)


@router.post(
    "/watchlist", status_code=201, response_model=WatchEntry, summary="Add a blacklist or watchlist entry"
)
def add_watch(body: WatchRequest, who: Caller, svc: ServicesDep) -> dict[str, Any]:
    regions = svc.settings.regions
    scope, ref = resolve_scope(who, body.scope, body.scope_ref, regions)
    with svc.db.write() as conn:
        entry = add_entry(conn, svc.privacy, body, who.name, scope, ref)
        detail = {"list": body.list, "kind": body.kind, "scope": scope.value, "scope_ref": ref}
        record(
            conn,
            svc.secret,
            who.name,
            "watch_add",
            entry["entry_id"],
            scope_sites(scope, ref, regions),
            detail,
        )
    return entry


@router.get(
    "/watchlist", response_model=list[WatchEntry], summary="List watchlist entries (token and masked forms)"
)
def get_watch(
    who: Caller,
    svc: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> list[dict[str, Any]]:
    sites = None if who.all_sites else who.sites
    with svc.db.read() as conn:
        return list_entries(conn, limit, offset, sites, svc.settings.regions)


@router.patch(
    "/watchlist/{entry_id}",
    response_model=WatchEntry,
    summary="Change an entry's appeal status or withdraw it",
)
def patch_watch(entry_id: str, body: WatchUpdate, who: Caller, svc: ServicesDep) -> dict[str, Any]:
    regions = svc.settings.regions
    with svc.db.write() as conn:
        current = get_entry(conn, entry_id)
        sites = scope_sites(current["scope"], current["scope_ref"], regions)
        if not who.all_sites and ALL_SITES not in sites and not set(sites) & set(who.sites):
            raise NotFound(f"no watchlist entry {entry_id}")  # another site's entry is not shown at all
        check_may_set(who, current["scope"], current["scope_ref"], regions)
        entry = update_entry(conn, entry_id, body)
        record(
            conn, svc.secret, who.name, "watch_update", entry_id, sites, body.model_dump(exclude_none=True)
        )
    return entry


class OrderRequest(BaseModel):
    """An officer's interception order: one waybill, or every parcel of one sender."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    scope: Literal["waybill", "sender"] = Field(description="what the order stops")
    waybill: str | None = Field(None, pattern=r"^[A-Za-z0-9-]{4,64}$", description="waybill (scope=waybill)")
    sender_token: str | None = Field(
        None, pattern=r"^[0-9a-f]{64}$", description="sender token (scope=sender)"
    )
    id_type: Literal["resident_id", "passport", "usc_code", "other"] | None = Field(
        None, description="scope=sender without a token: the sender's ID type"
    )
    id_number: str | None = Field(None, max_length=64, description="scope=sender without a token: ID number")
    reason: str = Field(min_length=1, max_length=500, description="why the parcels must be pulled")
    site_id: str | None = Field(
        None, max_length=64, description="site to order; null orders the whole network"
    )
    expires_at: datetime | None = Field(
        None, description="when the order lapses (UTC); default from settings"
    )

    @model_validator(mode="after")
    def _scope(self) -> OrderRequest:
        if self.scope == "waybill" and not self.waybill:
            raise ValueError("waybill is required for scope=waybill")
        if self.scope == "sender" and not self.sender_token and not (self.id_type and self.id_number):
            raise ValueError("sender_token, or id_type and id_number, is required for scope=sender")
        if self.id_type and self.id_number and (problem := check_id_number(self.id_type, self.id_number)):
            raise ValueError(f"id_number: {problem}")
        return self


def _sender_token(svc: ServicesDep, body: OrderRequest) -> str:
    if body.sender_token:
        return body.sender_token
    assert body.id_type and body.id_number
    return svc.privacy.sender_token(body.id_type, body.id_number)


@router.post("/orders", status_code=201, response_model=PullOrderWire, summary="Issue a pull order")
def create_order(body: OrderRequest, who: Caller, svc: ServicesDep) -> dict[str, Any]:
    if not who.sees_site(body.site_id):
        raise Forbidden("your sites do not include " + (body.site_id or "the whole network"))
    now = utcnow()
    expires = body.expires_at or now + timedelta(hours=svc.settings.orders.default_ttl_hours)
    if expires.tzinfo is None:
        raise BadInput("expires_at must carry a time zone", "naive_time")
    if expires <= now:
        raise BadInput("expires_at is in the past", "expired")
    draft = OrderDraft(
        scope=body.scope,
        waybill=body.waybill if body.scope == "waybill" else None,
        sender_token=_sender_token(svc, body) if body.scope == "sender" else None,
        reason=body.reason,
        issuer=f"user:{who.name}",
        site_id=body.site_id,
        expires_at=expires,
    )
    with svc.db.write() as conn:
        order = store_order(conn, draft, now)
        if order is None:
            raise BadInput("an equal live order already exists", "duplicate_order")
        record(
            conn,
            svc.secret,
            who.name,
            "order_issue",
            order.order_id,
            [body.site_id or "*"],
            {"scope": body.scope, "site": body.site_id},
        )
        publish_orders_changed(conn)
    svc.notifier.notify()
    return order.model_dump(mode="json")


class CancelRequest(BaseModel):
    """Why a pull order is withdrawn (kept with the order and in the audit log)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field(min_length=1, max_length=500, description="why the parcels need not be pulled")


@router.post(
    "/orders/{order_id}/cancel",
    response_model=OrderItem,
    summary="Cancel a live pull order; stations stop pulling for it",
)
def post_cancel_order(
    order_id: Annotated[str, Path(max_length=64, description="the order's id")],
    body: CancelRequest,
    who: Caller,
    svc: ServicesDep,
) -> dict[str, Any]:
    if not has_substance(body.reason):
        raise BadInput("the reason says nothing; write why the order is withdrawn", "no_substance")
    now = utcnow()
    sites = None if who.all_sites else who.sites
    with svc.db.write() as conn:
        site = conn.execute(select(orders.c.site_id).where(orders.c.order_id == order_id)).first()
        if site is None or (site.site_id is not None and not who.sees_site(site.site_id)):
            raise NotFound(f"no pull order {order_id[:40]!r}")
        if site.site_id is None and not who.all_sites:
            # A network-wide order is the network's: only a holder of every site withdraws it.
            raise Forbidden("a network-wide order is cancelled by a user holding every site ('*')")
        row = cancel_order(conn, order_id, who.name, body.reason, now)
        record(
            conn, svc.secret, who.name, "order_cancel", order_id, [row.site_id or "*"],
            {"reason": body.reason, "scope": row.scope, "site": row.site_id},
        )  # fmt: skip
        publish_orders_changed(conn)
        out = list_orders(conn, now, sites, only=order_id)[0]
    svc.notifier.notify()
    return out


@router.get("/orders", response_model=list[OrderItem], summary="Orders with each station's state")
def get_orders(
    who: Caller, svc: ServicesDep, limit: Annotated[int, Query(ge=1, le=5000)] = 500
) -> list[dict[str, Any]]:
    with svc.db.read() as conn:
        return list_orders(conn, utcnow(), None if who.all_sites else who.sites, limit=limit)


@router.get(
    "/reports/daily",
    summary="Daily report per site, line and station (JSON or CSV)",
    responses={
        200: {"model": DailyReport, "content": {"text/csv": {"schema": {"type": "string"}}}},
    },
)
def get_daily_report(
    who: Caller,
    svc: ServicesDep,
    date_: Annotated[date, Query(alias="date", description="first day (the site's own), YYYY-MM-DD")],
    site: Annotated[str | None, Query(max_length=64, description="limit to one site")] = None,
    format: Annotated[Literal["json", "csv"], Query(description="json or csv")] = "json",
    to: Annotated[date | None, Query(description="last day of a range (default: the first)")] = None,
    line: Annotated[str | None, Query(max_length=64, description="limit to one line")] = None,
    station: Annotated[str | None, Query(max_length=64, description="limit to one station")] = None,
) -> Response:
    if site is not None and not who.sees_site(site):
        raise Forbidden(f"site {site!r} is not one of yours")
    with svc.db.read() as conn:
        report = scoped_report(conn, svc.settings, who, date_, last=to, site=site, line=line, station=station)
    if format == "csv":
        return PlainTextResponse(report_csv(report), media_type="text/csv")
    return JSONResponse(report)
