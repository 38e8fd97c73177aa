"""The stations page: each station of the user's sites, online or offline, last seen, device states."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.accounts import Principal
from server.db import utcnow
from server.deps import get_services
from server.stations import station_states
from server.web.common import PageDenied, error_page, need_user, render

router = APIRouter()


@router.get("/stations")
def stations_page(request: Request) -> Response:
    try:
        who = need_user(request)
        if not isinstance(who, Principal):
            return who
        site = (request.query_params.get("site") or "")[:64] or None
        if site is not None and not who.sees_site(site):
            raise PageDenied(403, f"site {site!r} is not one of yours")
    except PageDenied as exc:
        return error_page(request, exc.status, exc.message)
    svc = get_services(request)
    offline_after_s = svc.settings.stations.offline_after_s
    sites = (site,) if site is not None else (None if who.all_sites else who.sites)
    with svc.db.read() as conn:
        states = station_states(conn, utcnow(), offline_after_s, sites)
    return render(
        request,
        "stations.html",
        who,
        states=states,
        site=site,
        offline=sum(1 for s in states if not s["online"]),
        offline_after_s=int(offline_after_s),
    )
