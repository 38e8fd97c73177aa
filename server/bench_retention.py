"""`parcelguard bench retention`: a retention run over N old events against a bare DELETE of the same rows."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, func, select

from server.accounts import Principal, Role
from server.bench import _settings, fresh_database, machine
from server.db import Database, iso
from server.legal_holds import HoldRequest, held_set, place_hold
from server.partitions import retention_class_of
from server.retention_run import apply_retention
from server.schema import events, reviews
from server.settings import RetentionConfig, ServerSettings

EVENT_CLASSES = ["cleared_events", "hit_events", "station_events"]
COLUMNS = ("key", "station_id", "boot_id", "seq", "type", "at", "day", "waybill", "tracking_id", "decision",
           "payload_hash", "payload", "received_at", "site_id", "retention_class")  # fmt: skip
PAYLOAD = json.dumps({"reasons": [], "risk": 0.05, "classifier": "off", "note": "x" * 160})
HELD = 10
METHOD = (
    "N events of 10 stations, 90% cleared parcels, 8% hits with decided review items, 2% device events; "
    "nine in ten are 400 days old (past every period), one in ten from yesterday; ten old hits are under "
    "a legal hold. retention: apply_retention over the three event classes (chunked deletes, ledger, holds, "
    "audit entries). bare: one DELETE of exactly the same rows (events and their review items) in one "
    "transaction. Each repeat runs on a fresh copy of the same data, the two alternating; medians."
)


def _rows(n: int, now: datetime) -> Iterator[tuple[Any, ...]]:
    old, young = now - timedelta(days=400), now - timedelta(days=1)
    for i in range(n):
        at = young if i % 10 == 9 else old
        k = i % 50
        kind, decision = (
            ("device_status", None) if k == 1 else ("parcel", "HOLD" if k in (2, 3, 4, 5) else "CLEAR")
        )
        st = f"hub-{i % 10}"
        yield (f"{st}:b:{i}", st, "b", i, kind, iso(at), at.date().isoformat(), f"WB{i:010d}", f"T{i}",
               decision, "0" * 64, PAYLOAD, iso(at), "hub", retention_class_of(kind, decision))  # fmt: skip


def _review(key: str, i: int, day: str, at: str) -> dict[str, Any]:
    return {
        "event_key": key, "station_id": f"hub-{i % 10}", "site_id": "hub", "line_id": "l1",
        "waybill": f"WB{i:010d}", "tracking_id": f"T{i}", "decision": "HOLD", "reasons": "[]", "risk": 0.9,
        "priority": 10, "state": "released", "day": day, "created_at": at, "due_at": at,
    }  # fmt: skip


def load(db: Database, n: int, now: datetime) -> None:
    """Bulk-load the events (COPY on PostgreSQL, executemany on SQLite) and their review items."""
    rows = list(_rows(n, now))
    db.ensure_partitions({r[6] for r in rows})  # PostgreSQL: as ingest would have made them
    with db.write() as conn:
        if db.is_postgres:
            raw: Any = conn.connection.dbapi_connection
            with raw.cursor() as cur, cur.copy(f"COPY events ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            for i in range(0, n, 50_000):
                conn.execute(
                    events.insert(), [dict(zip(COLUMNS, r, strict=True)) for r in rows[i : i + 50_000]]
                )
        hits = [_review(r[0], r[3], r[6], r[5]) for r in rows if r[9] == "HOLD"]
        for i in range(0, len(hits), 20_000):
            conn.execute(reviews.insert(), hits[i : i + 20_000])
    who = Principal("user", "bench", Role.ADMIN, ("*",))
    with db.write() as conn:
        ids = conn.execute(
            select(reviews.c.id)
            .where(reviews.c.day < (now - timedelta(days=30)).date().isoformat())
            .limit(HELD)
        ).fetchall()
        for (rid,) in ids:
            place_hold(conn, who, HoldRequest(target_type="review", target_id=str(rid), reason="bench"), now)


def bare_delete(conn: Connection, cut_day: str, held_keys: list[str]) -> int:
    """The same rows as retention deletes, in one statement per table, nothing else."""
    conn.execute(delete(reviews).where(reviews.c.day < cut_day, reviews.c.event_key.not_in(held_keys)))
    return int(
        conn.execute(delete(events).where(events.c.day < cut_day, events.c.key.not_in(held_keys))).rowcount
    )


@contextmanager
def copies(engine: str, pg_url: str | None, n: int, now: datetime, count: int) -> Iterator[list[str]]:
    """`count` databases holding the same data: file copies on SQLite, loaded schemas on PostgreSQL."""
    if engine == "sqlite":
        with fresh_database(engine, pg_url) as url, tempfile.TemporaryDirectory() as tmp:
            db = Database(url)
            load(db, n, now)
            db.dispose()
            src = Path(url.removeprefix("sqlite:///"))
            out = []
            for i in range(count):
                dst = Path(tmp) / f"copy{i}.db"
                shutil.copyfile(src, dst)
                out.append(f"sqlite:///{dst}")
            yield out
        return
    with contextlib.ExitStack() as stack:
        urls = [stack.enter_context(fresh_database(engine, pg_url)) for _ in range(count)]
        for url in urls:
            db = Database(url)
            load(db, n, now)
            db.dispose()
        yield urls


def bench_engine(engine: str, pg_url: str | None, n: int, repeats: int, chunk: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    policy = RetentionConfig(
        cleared_events_days=30, hit_events_days=30, station_events_days=180, chunk_rows=chunk
    )
    t_load = time.perf_counter()
    with copies(engine, pg_url, n, now, 2 * repeats) as urls:
        load_s = time.perf_counter() - t_load
        ours: list[float] = []
        bare: list[float] = []
        deleted = bare_deleted = 0
        for i in range(repeats):
            settings: ServerSettings = _settings(urls[2 * i]).model_copy(update={"retention": policy})
            db = Database(urls[2 * i])
            t0 = time.perf_counter()
            report = apply_retention(db, settings, "bench", EVENT_CLASSES, clock=lambda: now)
            ours.append(time.perf_counter() - t0)
            deleted = sum(report.classes[c]["deleted"] for c in EVENT_CLASSES)
            db.dispose()
            db = Database(urls[2 * i + 1])
            with db.read() as conn:
                ids = sorted(held_set(conn).event_ids)
                held = [r[0] for r in conn.execute(select(events.c.key).where(events.c.id.in_(ids)))]
            t0 = time.perf_counter()
            with db.write() as conn:
                bare_deleted = bare_delete(conn, (now - timedelta(days=30)).date().isoformat(), held)
            bare.append(time.perf_counter() - t0)
            with db.read() as conn:
                left = conn.execute(select(func.count()).select_from(events)).scalar_one()
            db.dispose()
        # Both must have removed exactly the same rows, or the comparison means nothing.
        if deleted != bare_deleted:
            raise OSError(f"retention deleted {deleted} events, the bare DELETE {bare_deleted}")
    med, med_bare = statistics.median(ours), statistics.median(bare)
    return {
        "engine": engine,
        "events": n,
        "deleted": deleted,
        "kept": int(left),
        "chunk_rows": chunk,
        "repeats": repeats,
        "load_s": round(load_s, 1),
        "retention_s_median": round(med, 2),
        "bare_delete_s_median": round(med_bare, 2),
        "ratio_to_bare": round(med / med_bare, 2),
        "deleted_per_s": round(deleted / med),
        "projected_1e7_s": round(med * 1e7 / n, 1),
    }


def run_bench_retention(args: argparse.Namespace) -> int:
    if args.events < 1000:
        raise ValueError(f"--events {args.events}: at least 1000")
    if args.repeat < 1:
        raise ValueError(f"--repeat {args.repeat}: at least 1")
    engines = ["sqlite"] + (["postgresql"] if args.pg_url else [])
    results: dict[str, Any] = {"machine": machine(), "method": METHOD, "engines": {}}
    for eng in engines:
        out = bench_engine(eng, args.pg_url, args.events, args.repeat, args.chunk_rows)
        results["engines"][eng] = out
        print(json.dumps(out) if args.json else f"{eng}: {out}", flush=True)
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1))
    if not args.json:
        print(f"method: {METHOD}\nresults written to {path}")
    return 0


def register_bench_retention(bench: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = bench.add_parser(
        "retention", help="retention run over N old events against a bare DELETE of the same rows"
    )
    p.add_argument(
        "--events", type=int, default=100_000, help="events in the table (nine in ten past their period)"
    )
    p.add_argument("--repeat", type=int, default=3, help="runs of each, on fresh copies (medians)")
    p.add_argument("--chunk-rows", type=int, default=20_000, help="rows per retention transaction")
    p.add_argument("--pg-url", default=None, help="PostgreSQL URL to bench as well (throw-away schemas)")
    p.add_argument("--json", action="store_true", help="one JSON line per engine")
    p.add_argument("--out", default="artifacts/bench_retention.json", help="results file (JSON)")
    p.set_defaults(func=run_bench_retention)
