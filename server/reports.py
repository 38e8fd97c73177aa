"""Daily report per site, line and station: read from rollups and indexes, aggregated by pure functions."""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, select

from server.accounts import Principal
from server.db import parse_iso, utcnow
from server.errors import BadInput
from server.orders import order_state_counts
from server.rollup import DIVERTED, PENDING
from server.schema import daily_counts, events, reviews, stations
from server.settings import ServerSettings
from server.sites import site_zone
from server.stations import station_states

CONFIRMED_OUTCOMES = frozenset({"detain", "seize", "refer"})
MAX_DAYS = 92
TREND_FIGURES = ("parcels", "held", "pulled")


def pull_counts(divert: dict[str, int], requested: int) -> dict[str, int]:
    """requested = diverted + missed + pending: each pull is under one divert key, and every key but
    DIVERTED and PENDING (missed, timed out, not sent, late, unknown, none) is a pull not carried out."""
    diverted = divert.get(DIVERTED, 0)
    pending = divert.get(PENDING, 0)
    return {
        "requested": requested,
        "diverted": diverted,
        "missed": sum(v for k, v in divert.items() if k not in (DIVERTED, PENDING)),
        "pending": pending,
    }


def summarise_counts(counts: Counter[tuple[str, str]]) -> dict[str, Any]:
    """Turn (metric, key) counters into the report's headline figures."""
    by_metric: dict[str, dict[str, int]] = defaultdict(dict)
    for (metric, key), n in counts.items():
        by_metric[metric][key] = by_metric[metric].get(key, 0) + n
    decision = by_metric.get("decision", {})
    return {
        "parcels": by_metric.get("parcels", {}).get("", 0),
        "cleared": decision.get("CLEAR", 0),
        "held": decision.get("HOLD", 0),
        "pulled": decision.get("PULL", 0),
        "no_reads": by_metric.get("no_reads", {}).get("", 0),
        "realname_failures": by_metric.get("realname_failures", {}).get("", 0),
        "hits_by_reason": dict(sorted(by_metric.get("hit_reason", {}).items())),
        "hits_by_category": dict(sorted(by_metric.get("hit_category", {}).items())),
        # Hits per hour of the site's day, 00 to 23.
        "hits_by_hour": [by_metric.get("hit_hour", {}).get(f"{h:02d}", 0) for h in range(24)],
        "pulls": pull_counts(by_metric.get("divert", {}), decision.get("PULL", 0)),
        "operator_actions": dict(sorted(by_metric.get("operator", {}).items())),
    }


def summarise_reviews(outcomes: Counter[str], durations: list[float]) -> dict[str, Any]:
    """Items by outcome (or state while undecided) and decision times -> rate and median time."""
    decided_n = sum(n for k, n in outcomes.items() if k not in ("open", "claimed"))
    confirmed = sum(n for k, n in outcomes.items() if k in CONFIRMED_OUTCOMES)
    return {
        "review_items": sum(outcomes.values()),
        "review_outcomes": dict(sorted(outcomes.items())),
        "confirmed_hit_rate": round(confirmed / decided_n, 4) if decided_n else None,
        "median_seconds_to_decision": statistics.median(durations) if durations else None,
    }


def device_uptime(status: list[tuple[str, str, bool]], start: datetime, end: datetime) -> dict[str, float]:
    """Share of the observed part of [start, end) each device was up, from (device, at, up) reports.

    A device is observed from its first report of the day; before the first report nothing is assumed.
    """
    by_device: dict[str, list[tuple[datetime, bool]]] = defaultdict(list)
    for device, at_text, is_up in status:
        by_device[device].append((parse_iso(at_text), is_up))
    out: dict[str, float] = {}
    for device, points in by_device.items():
        points.sort()
        up_s = total_s = 0.0
        for i, (at, up) in enumerate(points):
            nxt = points[i + 1][0] if i + 1 < len(points) else end
            span = max(0.0, (min(nxt, end) - max(at, start)).total_seconds())
            total_s += span
            up_s += span if up else 0.0
        out[device] = round(up_s / total_s, 4) if total_s > 0 else (1.0 if points[-1][1] else 0.0)
    return out


ZoneOf = Callable[[str | None], tzinfo]


def _utc(_site: str | None) -> tzinfo:
    return UTC


def site_zones(settings: ServerSettings) -> ZoneOf:
    """Each site's time zone from the settings; None (orders of every site): the server's default."""

    def zone_of(site: str | None) -> tzinfo:
        return site_zone(settings, site) if site is not None else ZoneInfo(settings.timezone)

    return zone_of


def scoped_report(
    conn: Connection,
    settings: ServerSettings,
    who: Principal,
    first: date,
    *,
    last: date | None = None,
    site: str | None = None,
    line: str | None = None,
    station: str | None = None,
) -> dict[str, Any]:
    """`daily_report` as `who` may see it (their sites), with the server's liveness rule and time zones."""
    return daily_report(
        conn,
        first,
        None if who.all_sites else who.sites,
        site,
        settings.stations.offline_after_s,
        last=last,
        line=line,
        station=station,
        zone_of=site_zones(settings),
    )


def local_midnight(day: date, zone: tzinfo) -> datetime:
    """The start of `day` at a site in `zone`, as an aware time."""
    return datetime.combine(day, datetime.min.time()).replace(tzinfo=zone)


def check_range(first: date, last: date) -> None:
    if last < first:
        raise BadInput(f"date range: {last} is before {first}", "bad_range")
    if (last - first).days + 1 > MAX_DAYS:
        raise BadInput(f"date range: at most {MAX_DAYS} days, not {(last - first).days + 1}", "bad_range")


def trend_row(day: str, counts: Counter[tuple[str, str]]) -> dict[str, Any]:
    """One day of the daily trend: volume, hits and what became of the pulls."""
    summary = summarise_counts(counts)
    return {"date": day, **{k: summary[k] for k in TREND_FIGURES}, **summary["pulls"]}


def daily_report(
    conn: Connection,
    day: date,
    sites: tuple[str, ...] | None,
    site: str | None,
    offline_after_s: float = 120.0,
    *,
    last: date | None = None,
    line: str | None = None,
    station: str | None = None,
    zone_of: ZoneOf = _utc,
) -> dict[str, Any]:
    """The report for the site-local days `day` to `last` (default: `day` alone), limited to `site`,
    `line` and `station` and to the caller's `sites` (None: every site).

    Days are those the events were filed under at ingest, in each site's time zone (`zone_of(site)`;
    `zone_of(None)`: the server's default, for orders of every site). Each station also carries its
    state now (online, last seen, devices down), whatever the days.
    """
    last = day if last is None else last
    check_range(day, last)
    first_s, last_s = day.isoformat(), last.isoformat()
    # Days as a set, not a range: with day = ANY(...) the (day, type, ...) indexes seek on both columns.
    days = [(day + timedelta(days=i)).isoformat() for i in range((last - day).days + 1)]
    st_query = select(stations.c.station_id, stations.c.site_id, stations.c.line_id)
    if site is not None:
        st_query = st_query.where(stations.c.site_id == site)
    if sites is not None:
        st_query = st_query.where(stations.c.site_id.in_(sites))
    if line is not None:
        st_query = st_query.where(stations.c.line_id == line)
    if station is not None:
        st_query = st_query.where(stations.c.station_id == station)
    station_rows = {r.station_id: r for r in conn.execute(st_query)}
    ids = list(station_rows)
    per_counts: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
    per_day: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
    if ids:
        for r in conn.execute(
            select(
                daily_counts.c.day,
                daily_counts.c.station_id,
                daily_counts.c.metric,
                daily_counts.c.key,
                daily_counts.c.count.label("n"),
            ).where(daily_counts.c.day.in_(days), daily_counts.c.station_id.in_(ids))
        ):
            per_counts[r.station_id][(r.metric, r.key)] += int(r.n)
            per_day[r.day][(r.metric, r.key)] += int(r.n)
    outcomes: dict[str, Counter[str]] = defaultdict(Counter)
    durations: dict[str, list[float]] = defaultdict(list)
    status: dict[str, list[tuple[str, str, bool]]] = defaultdict(list)
    if ids:
        review_scope = (reviews.c.day.in_(days), reviews.c.station_id.in_(ids))
        for rv in conn.execute(
            select(reviews.c.station_id, reviews.c.state, reviews.c.outcome, func.count().label("n"))
            .where(*review_scope)
            .group_by(reviews.c.station_id, reviews.c.state, reviews.c.outcome)
        ):
            outcomes[rv.station_id][rv.outcome or rv.state] += int(rv.n)
        # Decided items only: officers decide hundreds a day, not the millions of scans.
        for rv in conn.execute(
            select(reviews.c.station_id, reviews.c.created_at, reviews.c.decided_at).where(
                *review_scope, reviews.c.decided_at.is_not(None)
            )
        ):
            delta = parse_iso(rv.decided_at) - parse_iso(rv.created_at)
            durations[rv.station_id].append(delta.total_seconds())
        for ds in conn.execute(
            select(events.c.station_id, events.c.at, events.c.payload).where(
                events.c.day.in_(days), events.c.type == "device_status", events.c.station_id.in_(ids)
            )
        ):
            payload = json.loads(ds.payload)
            status[ds.station_id].append((payload["device"], ds.at, bool(payload["up"])))
    now = utcnow()
    total: Counter[tuple[str, str]] = Counter()
    all_outcomes: Counter[str] = Counter()
    all_durations: list[float] = []
    live = {s["station_id"]: s for s in station_states(conn, now, offline_after_s, sites)}
    per_station = []
    for sid in sorted(ids):
        total.update(per_counts[sid])
        all_outcomes.update(outcomes[sid])
        all_durations.extend(durations[sid])
        meta = station_rows[sid]
        zone = zone_of(meta.site_id)
        start = local_midnight(day, zone)
        end = min(local_midnight(last + timedelta(days=1), zone), now)
        per_station.append(
            {
                "station_id": sid,
                "site_id": meta.site_id,
                "line_id": meta.line_id,
                **summarise_counts(per_counts[sid]),
                **summarise_reviews(outcomes[sid], durations[sid]),
                "device_uptime": device_uptime(status[sid], start, end),
                **_liveness(live.get(sid)),
            }
        )
    created = 0
    by_state: Counter[str] = Counter()
    order_zone = zone_of(site)
    for i in range((last - day).days + 1):
        n, states = order_state_counts(
            conn,
            local_midnight(day + timedelta(days=i), order_zone),
            {sid: r.site_id for sid, r in station_rows.items()},
            now,
        )
        created += n
        by_state.update(states)
    by_line: dict[tuple[str, str], Counter[tuple[str, str]]] = defaultdict(Counter)
    for sid in ids:
        by_line[(station_rows[sid].site_id, station_rows[sid].line_id)].update(per_counts[sid])
    lines = [{"site_id": k[0], "line_id": k[1], **summarise_counts(v)} for k, v in sorted(by_line.items())]
    return {
        "date": first_s,
        "date_to": last_s,
        "site": site,
        "line": line,
        "station": station,
        **summarise_counts(total),
        **summarise_reviews(all_outcomes, all_durations),
        "orders": {"created": created, "by_state": dict(sorted(by_state.items()))},
        "trend": [trend_row(d, per_day[d]) for d in days],
        "lines": lines,
        "stations": per_station,
        "stations_offline": sum(1 for st in per_station if not st["online"]),
    }


def _liveness(state: dict[str, Any] | None) -> dict[str, Any]:
    # An inactive (revoked) station has no live state: shown offline, never seen.
    if state is None:
        return {"online": False, "last_seen_at": None, "devices_down": []}
    return {k: state[k] for k in ("online", "last_seen_at", "devices_down")}


# Machine columns: names and order are kept for scripts; new columns only ever go at the end.
CSV_COLUMNS = [
    "station_id",
    "site_id",
    "line_id",
    "parcels",
    "cleared",
    "held",
    "pulled",
    "no_reads",
    "realname_failures",
    "pulls_requested",
    "pulls_diverted",
    "pulls_missed",
    "review_items",
    "confirmed_hit_rate",
    "median_seconds_to_decision",
    "device_uptime_min",
    "online",
    "last_seen_at",
    "devices_down",
    "pulls_pending",
]
PLAIN_COLUMNS = CSV_COLUMNS[:9]
# Excel reads a CSV as the system's code page unless it starts with a byte order mark.
UTF8_BOM = "\ufeff"


def _csv_liveness(row: dict[str, Any]) -> list[object]:
    if "online" not in row:  # the total row: the count of offline stations is in the JSON report
        return ["", "", ""]
    return [str(row["online"]).lower(), row["last_seen_at"] or "", " ".join(row["devices_down"])]


def report_csv(report: dict[str, Any], headers: dict[str, str] | None = None) -> str:
    """One row per station plus a total row, under the machine column names, or under `headers`
    (machine name -> heading in the reader's language) with a UTF-8 byte order mark for Excel."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    if headers is None:
        writer.writerow(CSV_COLUMNS)
    else:
        buf.write(UTF8_BOM)
        writer.writerow([headers[c] for c in CSV_COLUMNS])
    rows = [
        *report["stations"],
        {
            **report,
            "station_id": "TOTAL",
            "site_id": report["site"] or "",
            "line_id": report.get("line") or "",
        },
    ]
    for r in rows:
        uptimes = r.get("device_uptime") or {}
        pulls = r["pulls"]
        writer.writerow(
            [r[c] for c in PLAIN_COLUMNS]
            + [pulls["requested"], pulls["diverted"], pulls["missed"], r["review_items"]]
            + [
                r["confirmed_hit_rate"],
                r["median_seconds_to_decision"],
                min(uptimes.values()) if uptimes else "",
            ]
            + _csv_liveness(r)
            + [pulls["pending"]]
        )
    return buf.getvalue()
