"""`parcelguard bench desk`: the officer's queue page, live signal and next item at volume, against the
bare top-N queue query of the same rows, on SQLite and PostgreSQL."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from server.accounts import Principal, Role
from server.bench import fresh_database, machine
from server.db import Database, iso
from server.review_queue import QueueFilter, next_item, queue_choices, queue_page, queue_signal
from server.reviews import queue
from server.schema import events, reviews

METHOD = (
    "waiting review items seeded straight into a fresh database (pairs of stations per waybill, 10% PULL);"
    " each figure is the median of --repeat runs of one call in a read transaction; the baseline is the"
    " bare top-50 queue query over the same rows (what the desk ran before: no grouping, counts or pages)"
)
CHUNK = 2000


def seed(db: Database, n: int, now: datetime) -> None:
    day = now.date().isoformat()
    image = json.dumps({"images": [{"sha256": "a" * 64, "kind": "camera"}]})
    for start in range(0, n, CHUNK):
        rows = range(start, min(n, start + CHUNK))
        with db.write() as conn:
            conn.execute(
                events.insert(),
                [
                    {"key": f"s{i % 2}:b:{i}", "station_id": f"s{i % 2}", "boot_id": "b", "seq": i,
                     "type": "parcel", "at": iso(now), "day": day, "waybill": f"WB{i // 2:09d}",
                     "tracking_id": f"t{i}", "decision": "HOLD", "payload_hash": "x", "payload": image,
                     "received_at": iso(now), "site_id": "site1", "retention_class": "hit"}
                    for i in rows
                ],
            )  # fmt: skip
            conn.execute(
                reviews.insert(),
                [
                    {"event_key": f"s{i % 2}:b:{i}", "station_id": f"s{i % 2}", "site_id": "site1",
                     "line_id": "l1", "waybill": f"WB{i // 2:09d}", "tracking_id": f"t{i}",
                     "decision": "PULL" if i % 10 == 0 else "HOLD", "reasons": '["NO_READ"]',
                     "risk": (i % 100) / 100, "sender_token": None, "category": "footwear_clothing",
                     "priority": i % 200, "state": "open", "day": day, "created_at": iso(now),
                     "due_at": iso(now + timedelta(minutes=i % 2880))}
                    for i in rows
                ],
            )  # fmt: skip


def median_ms(db: Database, call: Callable[[Connection], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        with db.read() as conn:
            start = time.perf_counter()
            call(conn)
            times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 2)


def bench_engine(url: str, items: int, repeat: int) -> dict[str, Any]:
    db = Database(url)
    now = datetime.now(UTC)
    seed(db, items, now)
    who = Principal(kind="user", name="bench", role=Role.OFFICER, sites=("site1",))
    zone = ZoneInfo("Asia/Shanghai")
    every = QueueFilter()
    last_page = max(1, items // 2 // 50)
    out: dict[str, Any] = {"items": items, "parcels": (items + 1) // 2}
    out["baseline_top50_ms"] = median_ms(db, lambda c: queue(c, who, now, 50), repeat)
    out["page_first_ms"] = median_ms(db, lambda c: queue_page(c, who, now, every, zone, 1, 50), repeat)
    out["page_last_ms"] = median_ms(db, lambda c: queue_page(c, who, now, every, zone, last_page, 50), repeat)
    out["filter_choices_ms"] = median_ms(db, lambda c: queue_choices(c, who, now), repeat)
    out["live_signal_ms"] = median_ms(db, lambda c: queue_signal(c, who, now), repeat)
    out["next_item_ms"] = median_ms(db, lambda c: next_item(c, who, now, items // 2, 1), repeat)
    out["ratio_page_first_to_baseline"] = round(out["page_first_ms"] / max(out["baseline_top50_ms"], 1e-3), 1)
    db.engine.dispose()
    return out


def run_bench(args: argparse.Namespace) -> int:
    results: dict[str, Any] = {"machine": machine(), "method": METHOD, "engines": {}}
    engines = ["sqlite"] + (["postgresql"] if args.pg_url else [])
    for eng in engines:
        with fresh_database(eng, args.pg_url) as url:
            out = bench_engine(url, args.items, args.repeat)
        results["engines"][eng] = out
        print(json.dumps({"engine": eng, **out}))
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


def register_desk_bench(bench: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = bench.add_parser("desk", help="the officer's queue page, live signal and next item at volume")
    p.add_argument("--pg-url", default=None, help="PostgreSQL URL to bench as well (a throw-away schema)")
    p.add_argument("--items", type=int, default=20_000, help="waiting review items (two per waybill)")
    p.add_argument("--repeat", type=int, default=7, help="runs of each call; the median is reported")
    p.add_argument("--out", default="artifacts/bench_desk.json", help="results file (JSON)")
    p.set_defaults(func=run_bench)
