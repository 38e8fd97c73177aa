"""Daily report per site, line and station: read from rollups and indexes, aggregated by pure functions."""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from server.db import parse_iso, utcnow
from server.orders import order_state_counts
from server.schema import daily_counts, events, reviews, stations
from server.stations import station_states

CONFIRMED_OUTCOMES = frozenset({"detain", "seize", "refer"})
MISSED_DIVERTS = frozenset({"MISSED", "TIMEOUT", "NOT_SENT", "LATE", "UNKNOWN"})


def summarise_counts(counts: Counter[tuple[str, str]]) -> dict[str, Any]:
    """Turn (metric, key) counters into the report's headline figures."""
    by_metric: dict[str, dict[str, int]] = defaultdict(dict)
    for (metric, key), n in counts.items():
        by_metric[metric][key] = by_metric[metric].get(key, 0) + n
    decision = by_metric.get("decision", {})
    divert = by_metric.get("divert", {})
    order_status = by_metric.get("order_status", {})
    return {
        "parcels": by_metric.get("parcels", {}).get("", 0),
        "cleared": decision.get("CLEAR", 0),
        "held": decision.get("HOLD", 0),
        "pulled": decision.get("PULL", 0),
        "no_reads": by_metric.get("no_reads", {}).get("", 0),
        "realname_failures": by_metric.get("realname_failures", {}).get("", 0),
        "hits_by_reason": dict(sorted(by_metric.get("hit_reason", {}).items())),
        "hits_by_category": dict(sorted(by_metric.get("hit_category", {}).items())),
        # Hits per UTC hour of the day, 00 to 23.
        "hits_by_hour": [by_metric.get("hit_hour", {}).get(f"{h:02d}", 0) for h in range(24)],
        "pulls": {
            "requested": decision.get("PULL", 0),
            "diverted": divert.get("DIVERTED", 0),
            "missed": sum(v for k, v in divert.items() if k in MISSED_DIVERTS)
            + order_status.get("missed", 0),
        },
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


def daily_report(
    conn: Connection,
    day: date,
    sites: tuple[str, ...] | None,
    site: str | None,
    offline_after_s: float = 120.0,
) -> dict[str, Any]:
    """The report for `day` (UTC), limited to `site` and to the caller's `sites` (None: every site).

    Each station also carries its state now (online, last seen, devices down), whatever the day.
    """
    day_s = day.isoformat()
    st_query = select(stations.c.station_id, stations.c.site_id, stations.c.line_id)
    if site is not None:
        st_query = st_query.where(stations.c.site_id == site)
    if sites is not None:
        st_query = st_query.where(stations.c.site_id.in_(sites))
    station_rows = {r.station_id: r for r in conn.execute(st_query)}
    ids = list(station_rows)
    per_counts: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
    if ids:
        for r in conn.execute(
            select(
                daily_counts.c.station_id,
                daily_counts.c.metric,
                daily_counts.c.key,
                daily_counts.c.count.label("n"),
            ).where(daily_counts.c.day == day_s, daily_counts.c.station_id.in_(ids))
        ):
            per_counts[r.station_id][(r.metric, r.key)] += int(r.n)
    outcomes: dict[str, Counter[str]] = defaultdict(Counter)
    durations: dict[str, list[float]] = defaultdict(list)
    status: dict[str, list[tuple[str, str, bool]]] = defaultdict(list)
    if ids:
        review_scope = (reviews.c.day == day_s, reviews.c.station_id.in_(ids))
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
                events.c.day == day_s, events.c.type == "device_status", events.c.station_id.in_(ids)
            )
        ):
            payload = json.loads(ds.payload)
            status[ds.station_id].append((payload["device"], ds.at, bool(payload["up"])))
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    end = min(start + timedelta(days=1), utcnow())
    total: Counter[tuple[str, str]] = Counter()
    all_outcomes: Counter[str] = Counter()
    all_durations: list[float] = []
    live = {s["station_id"]: s for s in station_states(conn, utcnow(), offline_after_s, sites)}
    per_station = []
    for sid in sorted(ids):
        total.update(per_counts[sid])
        all_outcomes.update(outcomes[sid])
        all_durations.extend(durations[sid])
        meta = station_rows[sid]
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
    created, by_state = order_state_counts(
        conn, start, {sid: r.site_id for sid, r in station_rows.items()}, utcnow()
    )
    by_line: dict[tuple[str, str], Counter[tuple[str, str]]] = defaultdict(Counter)
    for sid in ids:
        by_line[(station_rows[sid].site_id, station_rows[sid].line_id)].update(per_counts[sid])
    lines = [{"site_id": k[0], "line_id": k[1], **summarise_counts(v)} for k, v in sorted(by_line.items())]
    return {
        "date": day_s,
        "site": site,
        **summarise_counts(total),
        **summarise_reviews(all_outcomes, all_durations),
        "orders": {"created": created, "by_state": dict(sorted(by_state.items()))},
        "lines": lines,
        "stations": per_station,
        "stations_offline": sum(1 for st in per_station if not st["online"]),
    }


def _liveness(state: dict[str, Any] | None) -> dict[str, Any]:
    # An inactive (revoked) station has no live state: shown offline, never seen.
    if state is None:
        return {"online": False, "last_seen_at": None, "devices_down": []}
    return {k: state[k] for k in ("online", "last_seen_at", "devices_down")}


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
]
PLAIN_COLUMNS = CSV_COLUMNS[:9]


def _csv_liveness(row: dict[str, Any]) -> list[object]:
    if "online" not in row:  # the total row: the count of offline stations is in the JSON report
        return ["", "", ""]
    return [str(row["online"]).lower(), row["last_seen_at"] or "", " ".join(row["devices_down"])]


def report_csv(report: dict[str, Any]) -> str:
    """One row per station plus a total row."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    rows = [
        *report["stations"],
        {**report, "station_id": "TOTAL", "site_id": report["site"] or "", "line_id": ""},
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
        )
    return buf.getvalue()
