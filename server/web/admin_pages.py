"""Administration pages over the existing APIs: users, stations, watchlist entries, and pull orders."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import Connection, exists, select

from server.accounts import USER_ROLES, Principal
from server.db import parse_iso, utcnow
from server.deps import get_services
from server.orders import list_orders
from server.schema import api_tokens, stations
from server.scope import site_filter, visible_users
from server.sites import site_zone
from server.watchlist import list_entries
from server.web.common import PageDenied, error_page, need_user, render
from server.web.desk import local_time

# Who may open each page is in server.authz.RULES; every list is bounded to the user's sites, and every
# change goes through the API route that checks it again.
router = APIRouter()


def _station_rows(conn: Connection, who: Principal) -> list[dict[str, Any]]:
    live_token = exists().where(
        api_tokens.c.station_id == stations.c.station_id, api_tokens.c.revoked_at.is_(None)
    )
    rows = conn.execute(
        select(stations, live_token.label("has_token"))
        .where(site_filter(who, stations.c.site_id))
        .order_by(stations.c.site_id, stations.c.station_id)
    )
    return [
        {
            "station_id": r.station_id,
            "site_id": r.site_id,
            "line_id": r.line_id,
            "last_seen_at": r.last_seen_at,
            "revoked": not r.has_token,
        }
        for r in rows
    ]


def _page(
    request: Request, template: str, load: Callable[[Connection, Principal], dict[str, Any]]
) -> Response:
    try:
        who = need_user(request)
        if not isinstance(who, Principal):
            return who
    except PageDenied as exc:
        return error_page(request, exc.status, exc.message)
    svc = get_services(request)
    with svc.db.read() as conn:
        data = load(conn, who)
    return render(request, template, who, **data)


@router.get("/admin/users")
def users_page(request: Request) -> Response:
    def load(conn: Connection, who: Principal) -> dict[str, Any]:
        rows = [
            {"username": r.username, "role": r.role, "sites": json.loads(r.sites), "active": bool(r.active)}
            for r in visible_users(conn, who)
        ]
        return {"users": rows, "roles": list(USER_ROLES), "view": "users"}

    return _page(request, "admin_users.html", load)


@router.get("/admin/stations")
def stations_admin_page(request: Request) -> Response:
    settings = get_services(request).settings

    def load(conn: Connection, who: Principal) -> dict[str, Any]:
        rows = _station_rows(conn, who)
        for r in rows:
            r["last_seen_local"] = local_time(r["last_seen_at"], site_zone(settings, r["site_id"]))
        return {"stations": rows, "view": "stations"}

    return _page(request, "admin_stations.html", load)


@router.get("/admin/watchlist")
def watchlist_page(request: Request) -> Response:
    settings = get_services(request).settings

    def load(conn: Connection, who: Principal) -> dict[str, Any]:
        sites = None if who.all_sites else who.sites
        return {"entries": list_entries(conn, 500, 0, sites, settings.regions), "view": "watchlist"}

    return _page(request, "admin_watchlist.html", load)


@router.get("/desk/orders")
def orders_page(request: Request) -> Response:
    settings = get_services(request).settings

    def load(conn: Connection, who: Principal) -> dict[str, Any]:
        now = utcnow()
        rows = list_orders(conn, now, None if who.all_sites else who.sites, limit=500)
        for o in rows:
            zone = site_zone(settings, o["site_id"] or "")
            o["created_local"] = local_time(o["created_at"], zone)
            o["expires_local"] = local_time(o["expires_at"], zone)
            o["live"] = not o["cancelled"] and parse_iso(o["expires_at"]) > now
            # Only a holder of every site withdraws a network-wide order (the API says the same).
            o["may_cancel"] = o["live"] and (o["site_id"] is not None or who.all_sites)
        return {"orders": rows, "view": "orders"}

    return _page(request, "desk_orders.html", load)
