"""The supervisor's report page: date range and filters, figures, SVG charts, per-station table, downloads."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import Connection, select

from server.accounts import Principal
from server.db import utcnow
from server.deps import get_services
from server.errors import BadInput
from server.reports import CSV_COLUMNS, report_csv, scoped_report, site_zones
from server.schema import stations
from server.web.catalog import Words
from server.web.charts import DONE, HELD, MISSED, PENDING, VOLUME, bar_chart, hour_chart, trend_chart
from server.web.common import PageDenied, error_page, need_user, pick_language, render
from server.web.words import words

router = APIRouter()


def places(conn: Connection, who: Principal) -> dict[str, list[str]]:
    """Sites the user may see, each with its lines."""
    query = select(stations.c.site_id, stations.c.line_id).distinct()
    if not who.all_sites:
        query = query.where(stations.c.site_id.in_(who.sites))
    out: dict[str, set[str]] = {}
    for r in conn.execute(query):
        out.setdefault(str(r.site_id), set()).add(str(r.line_id))
    return {k: sorted(v) for k, v in sorted(out.items())}


def parse_day(text: str | None, today: date, name: str = "date") -> date:
    if not text:
        return today
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise PageDenied(422, f"{name}: {text[:20]!r} is not a date (YYYY-MM-DD)") from exc


@dataclass(frozen=True)
class Filters:
    """What the report was asked for; printed with it and carried by its download links."""

    first: date
    last: date
    site: str | None
    line: str | None
    zone: str

    def query(self) -> str:
        return urlencode(
            {
                "date": self.first.isoformat(),
                "to": self.last.isoformat(),
                "site": self.site or "",
                "line": self.line or "",
            }
        )


@dataclass(frozen=True)
class Loaded:
    who: Principal
    report: dict[str, Any]
    filters: Filters
    places: dict[str, list[str]]


def load_or_refuse(request: Request) -> Loaded | Response:
    """The report the page's query asks for, or the login redirect or error page that answers instead."""
    try:
        who = need_user(request)
        if not isinstance(who, Principal):
            return who
        return load(request, who)
    except PageDenied as exc:
        return error_page(request, exc.status, exc.message)


def load(request: Request, who: Principal) -> Loaded:
    params = request.query_params
    site = (params.get("site") or "")[:64] or None
    line = (params.get("line") or "")[:64] or None
    if site is not None and not who.sees_site(site):
        raise PageDenied(403, f"site {site!r} is not one of yours")
    svc = get_services(request)
    zone_of = site_zones(svc.settings)
    zone = zone_of(site)
    # Without a date: today at the site, which for part of every day is not the UTC date.
    today = utcnow().astimezone(zone).date()
    first = parse_day(params.get("date"), today)
    last = parse_day(params.get("to"), first, "to")
    with svc.db.read() as conn:
        try:
            report = scoped_report(conn, svc.settings, who, first, last=last, site=site, line=line)
        except BadInput as exc:
            raise PageDenied(422, str(exc)) from exc
        where = places(conn, who)
    return Loaded(who, report, Filters(first, last, site, line, str(zone)), where)


def build_charts(report: dict[str, Any], t: Words) -> dict[str, str]:
    """Every chart of the page, coloured by meaning (see charts.py) and labelled in the page's language."""
    reasons = [(t.get(f"reason_{k}", k), v) for k, v in report["hits_by_reason"].items()]
    categories = [(t.of("category", k), v) for k, v in report["hits_by_category"].items()]
    outcomes = [(t.get(f"act_{k}") or t.of("state", k), v) for k, v in report["review_outcomes"].items()]
    pulls = report["pulls"]
    trend = report["trend"]
    days = [d["date"] for d in trend]
    return {
        "hour": hour_chart(t["hits_by_hour"], report["hits_by_hour"]),
        "reason": bar_chart(t["hits_by_reason"], sorted(reasons, key=lambda x: -x[1]), t["no_data"]),
        "category": bar_chart(t["hits_by_category"], sorted(categories, key=lambda x: -x[1]), t["no_data"]),
        "pulls": bar_chart(
            t["pulls"],
            [
                (t["requested"], pulls["requested"]),
                (t["diverted"], pulls["diverted"]),
                (t["missed"], pulls["missed"]),
                (t["pending"], pulls["pending"]),
            ],
            t["no_data"],
            colours=[VOLUME, DONE, MISSED, PENDING],
        ),
        "outcomes": bar_chart(t["review_outcomes"], sorted(outcomes, key=lambda x: -x[1]), t["no_data"]),
        "trend_hits": trend_chart(
            t["trend_hits"],
            days,
            [
                (t["held"], HELD, [d["held"] for d in trend]),
                (t["diverted"], DONE, [d["diverted"] for d in trend]),
                (t["pending"], PENDING, [d["pending"] for d in trend]),
                (t["missed"], MISSED, [d["missed"] for d in trend]),
            ],
            t["no_data"],
        ),
        "trend_parcels": trend_chart(
            t["trend_parcels"], days, [(t["parcels"], VOLUME, [d["parcels"] for d in trend])], t["no_data"]
        ),
    }


@router.get("/report")
def report_page(request: Request) -> Response:
    loaded = load_or_refuse(request)
    if not isinstance(loaded, Loaded):
        return loaded
    report, filters = loaded.report, loaded.filters
    t = words(pick_language(request))
    legend = [
        ("missed", MISSED, t["legend_missed"]),
        ("held", HELD, t["legend_held"]),
        ("done", DONE, t["legend_done"]),
        ("pending", PENDING, t["legend_pending"]),
        ("volume", VOLUME, t["legend_volume"]),
    ]
    return render(
        request,
        "report.html",
        loaded.who,
        report=report,
        figures=report,
        charts=build_charts(report, t),
        legend=legend,
        day=filters.first.isoformat(),
        day_to=filters.last.isoformat(),
        site=filters.site or "",
        line=filters.line or "",
        zone=filters.zone,
        places=loaded.places,
        query=filters.query(),
        printed_at=utcnow().astimezone(ZoneInfo(filters.zone)).strftime("%Y-%m-%d %H:%M"),
    )


@router.get("/report/download")
def report_download(request: Request) -> Response:
    loaded = load_or_refuse(request)
    if not isinstance(loaded, Loaded):
        return loaded
    report, filters = loaded.report, loaded.filters
    span = filters.first.isoformat() + (
        f"--{filters.last.isoformat()}" if filters.last != filters.first else ""
    )
    name = (
        f"parcelguard-report-{span}"
        + (f"-{filters.site}" if filters.site else "")
        + (f"-{filters.line}" if filters.line else "")
    )
    # Site and line come from the query: only plain characters reach the header.
    name = re.sub(r"[^A-Za-z0-9_.@-]", "_", name)
    fmt = request.query_params.get("format", "csv")
    if fmt == "json":
        body, kind, ext = json.dumps(report, ensure_ascii=False, indent=1), "application/json", "json"
    elif fmt == "csv":
        t = words(pick_language(request))
        headers = {c: t[f"csv_{c}"] for c in CSV_COLUMNS}
        body, kind, ext = report_csv(report, headers), "text/csv; charset=utf-8", "csv"
    elif fmt == "machine":
        body, kind, ext = report_csv(report), "text/csv; charset=utf-8", "machine.csv"
    else:
        return error_page(request, 422, "format: must be csv, machine or json")
    return Response(
        body, media_type=kind, headers={"Content-Disposition": f'attachment; filename="{name}.{ext}"'}
    )
