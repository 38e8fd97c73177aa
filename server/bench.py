"""`parcelguard bench server`: sync ingest rate, order fan-out latency to long-polling edges, report time."""

from __future__ import annotations

import argparse
import json
import platform
import socket
import statistics
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import sqlalchemy

from edge.wire import SyncRequest
from server import admin
from server.accounts import Principal, Role
from server.db import Database, iso, migrate, normalise_url
from server.ingest import ingest_batch
from server.reports import daily_report, site_zones
from server.schema import events
from server.settings import OrdersConfig, ServerSettings, generate_key

BATCH = 1000
EDGES = 20


def _settings(url: str) -> ServerSettings:
    return ServerSettings(
        database_url=url,
        secret_key=generate_key(),
        hmac_key=generate_key(),
        encryption_key=generate_key(),
        orders=OrdersConfig(network_wide=True),
    )


@contextmanager
def fresh_database(engine: str, pg_url: str | None) -> Iterator[str]:
    """A migrated empty database: a temporary SQLite file or a throw-away PostgreSQL schema."""
    if engine == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            migrate(url)
            yield url
        return
    assert pg_url
    schema = "bench_" + uuid.uuid4().hex[:10]
    eng = sqlalchemy.create_engine(normalise_url(pg_url))
    with eng.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = f"{pg_url}{'&' if '?' in pg_url else '?'}options=-csearch_path%3D{schema}"
    try:
        migrate(url)
        yield url
    finally:
        with eng.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        eng.dispose()


def parcel_events(station: str, boot: str, start: int, n: int, day: datetime) -> list[dict[str, Any]]:
    """Realistic mix: 90% clear, 6% hold, 2% pull, 2% no-read, spread over the day."""
    out = []
    for i in range(start, start + n):
        k = i % 50
        decision = "PULL" if k == 0 else "HOLD" if k < 4 else "CLEAR"
        reasons = ["SENDER_BLACKLISTED"] if k == 0 else ["COUNTERFEIT_SUSPECT"] if k < 4 else []
        if k == 4:
            decision, reasons = "HOLD", ["NO_READ"]
        out.append(
            {
                "type": "parcel",
                "key": f"{station}:{boot}:{i}",
                "station_id": station,
                "boot_id": boot,
                "seq": i,
                "at": (day + timedelta(seconds=(i * 7) % 86000)).isoformat(),
                "tracking_id": f"T{i}",
                "waybill": None if k == 4 else f"WB{i:09d}",
                "decision": decision,
                "reasons": reasons,
                "risk": 0.9 if decision != "CLEAR" else 0.05,
                "declared_category": "footwear" if k % 3 else "cosmetics",
                "classifier": "off",
            }
        )
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def bench_ingest(url: str, batches: int) -> dict[str, Any]:
    """Sync batches of 1,000 through the HTTP stack, against a bare executemany of the same rows."""
    from fastapi.testclient import TestClient

    from server.app import create_app

    s = _settings(url)
    token = admin.register_station(s, "bench-a", "hub", "l1")
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    per_batch: list[float] = []
    with TestClient(create_app(s)) as client:
        for b in range(batches):
            body = {
                "station_id": "bench-a",
                "boot_id": "b",
                "events": parcel_events("bench-a", "b", b * BATCH, BATCH, day),
            }
            t0 = time.perf_counter()
            r = client.post("/api/v1/sync", json=body, headers={"Authorization": f"Bearer {token}"})
            per_batch.append(time.perf_counter() - t0)
            if r.status_code != 200:
                raise OSError(f"sync failed: {r.status_code} {r.text[:200]}")
    # Bare comparison: the same number of rows inserted with one executemany per batch, nothing else.
    db = Database(url)
    bare: list[float] = []
    now = iso(datetime.now(UTC))
    for b in range(batches):
        fixed = {"station_id": "bare", "boot_id": "b", "type": "parcel", "at": now, "day": now[:10]}
        fixed.update(payload_hash="0" * 64, payload="{}", received_at=now, site_id="hub")
        fixed.update(retention_class="cleared")
        rows = [{"key": f"bare:{b}:{i}", "seq": i, **fixed} for i in range(BATCH)]
        t0 = time.perf_counter()
        with db.write() as conn:
            conn.execute(events.insert(), rows)
        bare.append(time.perf_counter() - t0)
    db.dispose()
    med, bare_med = statistics.median(per_batch), statistics.median(bare)
    return {
        "batches": batches,
        "events_per_s_median": round(BATCH / med),
        "batch_ms_median": round(med * 1000, 1),
        "batch_ms_p95": round(_pct(per_batch, 0.95) * 1000, 1),
        "bare_insert_events_per_s": round(BATCH / bare_med),
        "ratio_to_bare": round(med / bare_med, 2),
    }


class _ServerThread:
    """A real uvicorn server on a free local port, in a thread."""

    def __init__(self, settings: ServerSettings) -> None:
        import uvicorn

        from server.app import create_app

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise OSError("bench server did not start")
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def bench_fanout(url: str, orders: int, two_processes: bool) -> dict[str, Any]:
    """20 edges long-poll; each new order's latency from the officer's POST to every edge's receipt."""
    s = _settings(url)
    admin.create_user(s, "bench-officer", "bench password 123", "officer", ["*"])
    officer = {"Authorization": f"Bearer {admin.create_api_token(s, 'bench-officer')}"}
    tokens = [admin.register_station(s, f"edge-{i:02d}", "hub", "l1") for i in range(EDGES)]
    latencies: list[float] = []
    sent_at: dict[str, float] = {}
    lock = threading.Lock()
    stop = threading.Event()
    with (
        _ServerThread(s) as base_a,
        _ServerThread(s.model_copy()) if two_processes else nullcontext(base_a) as base_b,
    ):

        def edge(token: str) -> None:
            after = 0
            with httpx.Client(base_url=base_b, timeout=40) as c:
                while not stop.is_set():
                    r = c.get("/api/v1/orders/poll", params={"after": after, "timeout": 5},
                              headers={"Authorization": f"Bearer {token}"})  # fmt: skip
                    got = time.perf_counter()
                    for order in r.json()["orders"]:
                        with lock:
                            if order["waybill"] in sent_at:
                                latencies.append(got - sent_at[order["waybill"]])
                        after = max(after, order["seq"])

        threads = [threading.Thread(target=edge, args=(t,), daemon=True) for t in tokens]
        for t in threads:
            t.start()
        time.sleep(1.0)  # let every edge reach its long poll before the first order
        floor: list[float] = []
        with httpx.Client(base_url=base_a, timeout=40) as c:
            for i in range(orders):
                body = {"scope": "waybill", "waybill": f"FAN{i:06d}", "reason": "bench"}
                with lock:
                    sent_at[body["waybill"]] = time.perf_counter()
                r = c.post("/api/v1/orders", json=body, headers=officer)
                if r.status_code != 201:
                    raise OSError(f"order failed: {r.status_code} {r.text[:200]}")
                # Bare comparison: one plain authenticated round trip to the same server.
                t1 = time.perf_counter()
                c.get("/api/v1/auth/me", headers=officer)
                floor.append(time.perf_counter() - t1)
                time.sleep(0.3)
        deadline = time.monotonic() + 10
        while len(latencies) < orders * EDGES and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
    ms = [v * 1000 for v in latencies]
    return {
        "edges": EDGES,
        "orders": orders,
        "deliveries": len(ms),
        "expected_deliveries": orders * EDGES,
        "median_ms": round(statistics.median(ms), 1) if ms else None,
        "p99_ms": round(_pct(ms, 0.99), 1) if ms else None,
        "max_ms": round(max(ms), 1) if ms else None,
        "bare_round_trip_ms": round(statistics.median(floor) * 1000, 1),
        "ratio_to_bare": round(statistics.median(ms) / (statistics.median(floor) * 1000), 2) if ms else None,
        "servers": 2 if two_processes else 1,
    }


def bare_day_scans(db: Database, day: str, runs: int = 3) -> list[float]:
    """Bare comparison of a report: seconds to count the day's parcels by scanning the events table."""
    took = []
    for _ in range(runs):
        t0 = time.perf_counter()
        with db.read() as conn:
            conn.execute(
                sqlalchemy.select(events.c.station_id, events.c.decision, sqlalchemy.func.count())
                .where(events.c.day == day)
                .group_by(events.c.station_id, events.c.decision)
            ).fetchall()
        took.append(time.perf_counter() - t0)
    return took


def bench_report(url: str, total: int) -> dict[str, Any]:
    """Ingest `total` parcel events for one day across 10 stations, then time the daily report."""
    s = _settings(url)
    stations = [f"hub-{i}" for i in range(10)]
    for st in stations:
        admin.register_station(s, st, "hub", "l1")
    # Yesterday at the site: reports file days in the site's time zone.
    today = datetime.now(ZoneInfo(s.timezone)).replace(hour=0, minute=0, second=0, microsecond=0)
    day = today - timedelta(days=1)
    db = Database(url)
    t_load = time.perf_counter()
    per_station = total // len(stations)
    for st in stations:
        who = Principal("station", st, Role.STATION, ("hub",), line_id="l1")
        for start in range(0, per_station, BATCH):
            req = SyncRequest.model_validate(
                {
                    "station_id": st,
                    "boot_id": "b",
                    "events": parcel_events(st, "b", start, min(BATCH, per_station - start), day),
                }
            )
            db.ensure_partitions({d.date().isoformat() for d in (day, day + timedelta(days=1))})
            with db.write() as conn:
                ingest_batch(conn, s, who, req, datetime.now(UTC))
    load_s = time.perf_counter() - t_load
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        with db.read() as conn:
            report = daily_report(conn, day.date(), None, None, zone_of=site_zones(s))
        times.append(time.perf_counter() - t0)
    bare = bare_day_scans(db, day.date().isoformat())
    db.dispose()
    if report["parcels"] != per_station * len(stations):
        raise OSError(f"report counted {report['parcels']} parcels, expected {per_station * len(stations)}")
    med = statistics.median(times)
    return {
        "events": per_station * len(stations),
        "load_s": round(load_s, 1),
        "report_ms_median": round(med * 1000, 1),
        "report_ms_max": round(max(times) * 1000, 1),
        "bare_scan_ms_median": round(statistics.median(bare) * 1000, 1),
        "ratio_to_bare": round(med / statistics.median(bare), 3),
    }


def machine() -> dict[str, Any]:
    import os
    import sqlite3

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "sqlite": sqlite3.sqlite_version,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# parcelguard server benchmark",
        "",
        f"Machine: {json.dumps(results['machine'])}",
        "",
        "| engine | ingest ev/s (1,000/batch) | vs bare insert | fan-out median ms | p99 ms | deliveries |"
        " report ms | events | vs bare scan |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    empty: dict[str, Any] = defaultdict(lambda: "-")
    for eng, r in results["engines"].items():
        i, f, rep = r.get("ingest", empty), r.get("fanout", empty), r.get("report", empty)
        lines.append(
            f"| {eng} | {i['events_per_s_median']} | {i['ratio_to_bare']}x slower | {f['median_ms']} |"
            f" {f['p99_ms']} |"
            f" {f['deliveries']}/{f['expected_deliveries']} | {rep['report_ms_median']} | {rep['events']} |"
            f" {rep['ratio_to_bare']}x |"
        )
    lines += ["", "Method: " + results["method"], ""]
    return "\n".join(lines)


METHOD = (
    "ingest: POST /api/v1/sync through FastAPI (TestClient, in process), batches of 1,000 parcel events, "
    "median per batch; bare = one executemany of 1,000 rows into the events table. fan-out: a real uvicorn "
    "server (two servers on PostgreSQL: orders posted to one, edges polling the other, so delivery crosses "
    "LISTEN/NOTIFY), 20 edge threads long-polling over HTTP, latency from the officer's POST to each edge's "
    "receipt; bare = one authenticated GET round trip. report: daily_report over N events from 10 stations "
    "ingested through the sync code path, median of 5; bare = GROUP BY scan of the events table for that day."
)


def run_bench(args: argparse.Namespace) -> int:
    if args.http:
        from server.bench_http import run_http_bench

        return run_http_bench(args)
    engines = ["sqlite"] + (["postgresql"] if args.pg_url else [])
    results: dict[str, Any] = {"machine": machine(), "method": METHOD, "engines": {}}
    size = 1_000_000 if args.full else args.events
    parts = set(args.parts.split(","))
    if not parts <= {"ingest", "fanout", "report"}:
        raise ValueError(f"--parts: unknown part in {args.parts!r}; use ingest,fanout,report")
    for eng in engines:
        out: dict[str, Any] = {}
        if "ingest" in parts:
            with fresh_database(eng, args.pg_url) as url:
                out["ingest"] = bench_ingest(url, args.batches)
        if "fanout" in parts:
            with fresh_database(eng, args.pg_url) as url:
                out["fanout"] = bench_fanout(url, args.orders, two_processes=eng == "postgresql")
        if "report" in parts:
            with fresh_database(eng, args.pg_url) as url:
                out["report"] = bench_report(url, size)
        results["engines"][eng] = out
        print(eng, json.dumps(out))
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=1))
    out_path.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))
    return 0


def register_bench(bench: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = bench.add_parser(
        "server", help="sync ingest, order fan-out and daily report timings on SQLite/PostgreSQL"
    )
    p.add_argument(
        "--pg-url", default=None, help="PostgreSQL URL to bench as well (a throw-away schema is used)"
    )
    p.add_argument("--batches", type=int, default=20, help="sync batches of 1,000 events")
    p.add_argument("--orders", type=int, default=20, help="orders fanned out to the 20 edges")
    p.add_argument("--events", type=int, default=100_000, help="events behind the daily report")
    p.add_argument("--full", action="store_true", help="a million events behind the daily report")
    p.add_argument("--parts", default="ingest,fanout,report", help="comma-separated subset to run")
    http = p.add_argument_group("--http: the real server process over HTTP (server/bench_http.py)")
    http.add_argument("--http", action="store_true", help="bench `parcelguard server run` over HTTP instead")
    http.add_argument("--json", action="store_true", help="print only the JSON lines, one per engine")
    http.add_argument("--clients", type=int, default=2, help="stations posting at once (each --batches)")
    http.add_argument(
        "--workers", type=int, default=0, help="server processes (default 2 on PostgreSQL, 1 on SQLite)"
    )
    http.add_argument(
        "--backlog-events", type=int, default=100_000, help="backlog of one station (400,000 in the target)"
    )
    http.add_argument(
        "--report-events",
        type=int,
        default=200_000,
        help="events of the day behind the report (10^6 in the target)",
    )
    p.add_argument(
        "--out", default="artifacts/bench_server.json", help="results file (JSON; Markdown beside it)"
    )
    p.set_defaults(func=run_bench)
    from server.links.bench import register as register_split_shipments

    register_split_shipments(bench)
