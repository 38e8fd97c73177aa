"""The supervisor's daily report page: pickers, figures, SVG charts, per-station table and downloads."""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import Connection, select

from server.accounts import Principal
from server.db import utcnow
from server.deps import get_services
from server.reports import daily_report, report_csv
from server.schema import stations
from server.web.charts import bar_chart, hour_chart
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


LINE_FIGURES = ("parcels", "cleared", "held", "pulled", "no_reads", "realname_failures", "hits_by_reason",
                "hits_by_category", "pulls", "operator_actions", "hits_by_hour")  # fmt: skip


def narrow_to_line(report: dict[str, Any], site: str | None, line: str) -> dict[str, Any]:
    """The report's parcel figures and stations for one line; review figures stay those of the site."""
    match = [x for x in report["lines"] if x["line_id"] == line and (site is None or x["site_id"] == site)]
    out = {**report, "line": line, "stations": [s for s in report["stations"] if s["line_id"] == line]}
    out["stations_offline"] = sum(1 for s in out["stations"] if not s.get("online", True))
    for key in LINE_FIGURES:
        values = [m[key] for m in match]
        if key == "hits_by_hour":
            out[key] = [sum(hours) for hours in zip(*values, strict=True)] if values else [0] * 24
        elif key in ("hits_by_reason", "hits_by_category", "pulls", "operator_actions"):
            merged: dict[str, int] = {}
            for v in values:
                for k, n in v.items():
                    merged[k] = merged.get(k, 0) + n
            out[key] = (
                merged
                if key != "pulls"
                else {k: merged.get(k, 0) for k in ("requested", "diverted", "missed")}
            )
        else:
            out[key] = sum(values)
    return out


def parse_day(text: str | None) -> date:
    if not text:
        return utcnow().date()
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise PageDenied(422, f"date: {text[:20]!r} is not a date (YYYY-MM-DD)") from exc


def load(request: Request, who: Principal) -> tuple[dict[str, Any], date, str | None, str | None, Any]:
    params = request.query_params
    day = parse_day(params.get("date"))
    site = (params.get("site") or "")[:64] or None
    line = (params.get("line") or "")[:64] or None
    if site is not None and not who.sees_site(site):
        raise PageDenied(403, f"site {site!r} is not one of yours")
    svc = get_services(request)
    with svc.db.read() as conn:
        report = daily_report(
            conn, day, None if who.all_sites else who.sites, site, svc.settings.stations.offline_after_s
        )
        where = places(conn, who)
        if line is not None:
            report = narrow_to_line(report, site, line)
    return report, day, site, line, (where, report["hits_by_hour"])


@router.get("/report")
def report_page(request: Request) -> Response:
    try:
        who = need_user(request)
        if not isinstance(who, Principal):
            return who
        report, day, site, line, (where, hourly) = load(request, who)
    except PageDenied as exc:
        return error_page(request, exc.status, exc.message)
    t = words(pick_language(request))
    figures = report
    reasons = [(t.get(f"reason_{k}", k), v) for k, v in figures["hits_by_reason"].items()]
    pulls = figures["pulls"]
    charts = {
        "hour": hour_chart(t["hits_by_hour"], hourly),
        "reason": bar_chart(t["hits_by_reason"], sorted(reasons, key=lambda x: -x[1]), t["no_data"]),
        "category": bar_chart(
            t["hits_by_category"],
            sorted(
                ((t.of("category", k), v) for k, v in figures["hits_by_category"].items()),
                key=lambda x: -x[1],
            ),
            t["no_data"],
        ),
        "pulls": bar_chart(
            t["pulls"],
            [
                (t["requested"], pulls["requested"]),
                (t["diverted"], pulls["diverted"]),
                (t["missed"], pulls["missed"]),
            ],
            t["no_data"],
        ),
        "outcomes": bar_chart(
            t["review_outcomes"],
            sorted(
                ((t.get(f"act_{k}") or t.of("state", k), v) for k, v in report["review_outcomes"].items()),
                key=lambda x: -x[1],
            ),
            t["no_data"],
        ),
    }
    query = urlencode({"date": day.isoformat(), "site": site or "", "line": line or ""})
    return render(
        request,
        "report.html",
        who,
        report=report,
        figures=figures,
        charts=charts,
        day=day.isoformat(),
        site=site or "",
        line=line or "",
        places=where,
        query=query,
    )


@router.get("/report/download")
def report_download(request: Request) -> Response:
    try:
        who = need_user(request)
        if not isinstance(who, Principal):
            return who
        report, day, site, line, _ = load(request, who)
    except PageDenied as exc:
        return error_page(request, exc.status, exc.message)
    name = (
        f"parcelguard-report-{day.isoformat()}" + (f"-{site}" if site else "") + (f"-{line}" if line else "")
    )
    # Site and line come from the query: only plain characters reach the header.
    name = re.sub(r"[^A-Za-z0-9_.@-]", "_", name)
    fmt = request.query_params.get("format", "csv")
    if fmt == "json":
        body, kind, ext = json.dumps(report, ensure_ascii=False, indent=1), "application/json", "json"
    elif fmt == "csv":
        body, kind, ext = report_csv(report), "text/csv; charset=utf-8", "csv"
    else:
        return error_page(request, 422, "format: must be csv or json")
    return Response(
        body, media_type=kind, headers={"Content-Disposition": f'attachment; filename="{name}.{ext}"'}
    )
