"""`parcelguard bench split-shipments`: detection on a planted scenario; ingest with and without the graph."""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from edge.wire import SyncRequest
from server.accounts import Principal, Role
from server.bench import BATCH, _settings, fresh_database, machine, parcel_events
from server.db import Database, iso
from server.ingest import ingest_batch
from server.links.clusters import consolidate, find_clusters
from server.links.scenario import Scenario, generate
from server.schema import link_cluster_members, link_clusters, link_edges, manifests, senders
from server.settings import LinksConfig, ServerSettings

EVENT_COLS = (
    "id", "key", "station_id", "boot_id", "seq", "type", "at", "day", "waybill", "tracking_id", "decision",
    "payload_hash", "payload", "received_at",
)  # fmt: skip
MANIFEST_COLS = (
    "waybill", "sender_token", "declared_name", "declared_category", "quantity", "inspected_on_receipt",
    "updated_at", "destination_token",
)  # fmt: skip
SENDER_COLS = (
    "sender_token", "id_type", "id_masked", "name_masked", "phone_token", "address_token", "sealed",
    "verified", "outlet", "courier", "agreement_customer", "qualification", "updated_at", "customer_token",
)  # fmt: skip
STATION_COLS = ("station_id", "site_id", "line_id", "active", "created_at")


def _rows(s: Scenario) -> list[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]]:
    """The scenario as the server holds it after import and ingest: stations, senders, manifests, events."""
    people: dict[str, tuple[Any, ...]] = {}
    for p in s.parcels:
        n = p.nodes
        org = n.get("org")
        row = (p.sender, "resident_id", "-", "-", n["phone"], n["address"], "-", True, n["outlet"], "",
               org is not None, "valid" if org else "", p.at, org)  # fmt: skip
        people.setdefault(p.sender, row)
    stations = sorted({(p.station, p.site) for p in s.parcels})
    events = [
        (i, f"{p.station}:b:{i}", p.station, "b", i, "parcel", p.at, p.at[:10], p.key, f"T{i}", "CLEAR",
         "0" * 64, "{}", p.at)
        for i, p in enumerate(s.parcels, 1)
    ]  # fmt: skip
    manifest_rows = [(p.key, p.sender, "", p.category, 1, True, p.at, p.nodes["dest"]) for p in s.parcels]
    return [
        ("stations", STATION_COLS, [(st, site, "l1", True, s.parcels[0].at) for st, site in stations]),
        ("senders", SENDER_COLS, list(people.values())),
        ("manifests", MANIFEST_COLS, manifest_rows),
        ("events", EVENT_COLS, events),
    ]


def load(db: Database, s: Scenario) -> None:
    """The scenario written as import and ingest leave it: COPY on PostgreSQL, executemany on SQLite."""
    tables = _rows(s)
    with db.write() as conn:
        if db.is_postgres:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            with raw.cursor() as cur:  # type: ignore[attr-defined]
                for table, cols, rows in tables:
                    with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
        else:
            for name, cols, rows in tables:
                marks = ", ".join("?" * len(cols))
                conn.exec_driver_sql(f"INSERT INTO {name} ({', '.join(cols)}) VALUES ({marks})", rows)
    if db.is_postgres:
        with db.write() as conn:
            conn.exec_driver_sql("ANALYZE")


def evaluate(s: Scenario, found: list[set[str]]) -> tuple[float, float]:
    """Recall of planted ants and precision of found clusters, matched at Jaccard >= 0.5."""
    owner = {key: i for i, ant in enumerate(s.planted) for key in ant}
    hit_planted: set[int] = set()
    good = 0
    for cluster in found:
        votes: dict[int, int] = {}
        for key in cluster:
            if key in owner:
                votes[owner[key]] = votes.get(owner[key], 0) + 1
        best = max(votes, key=votes.__getitem__, default=None)
        if best is None:
            continue
        ant = s.planted[best]
        if len(ant & cluster) / len(ant | cluster) >= 0.5:
            good += 1
            hit_planted.add(best)
    recall = len(hit_planted) / len(s.planted) if s.planted else 1.0
    precision = good / len(found) if found else 1.0
    return round(recall, 4), round(precision, 4)


def bench_detection(url: str, engine: str, parcels: int, seed: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    s = generate(parcels, seed, now)
    gen_s = time.perf_counter() - t0
    db = Database(url)
    t0 = time.perf_counter()
    load(db, s)
    load_s = time.perf_counter() - t0
    settings = _settings(url)
    t0 = time.perf_counter()
    with db.write() as conn:
        clusters = find_clusters(conn, settings.links, now)
        stored = consolidate(conn, clusters, settings, now)
    seconds = time.perf_counter() - t0
    keys = {i: p.key for i, p in enumerate(s.parcels, 1)}
    with db.read() as conn:
        members: dict[str, set[str]] = {}
        for cid, pid in conn.execute(link_cluster_members.select()).all():
            members.setdefault(cid, set()).add(keys[int(pid)])
        n_clusters = conn.execute(link_clusters.select()).all()
    db.dispose()
    recall, precision = evaluate(s, list(members.values()))
    return {
        "parcels": len(s.parcels),
        "planted_clusters": len(s.planted),
        "found_clusters": len(n_clusters),
        "review_items_opened": stored["opened"],
        "recall": recall,
        "precision": precision,
        "seconds": round(seconds, 2),
        "engine": engine,
        "generate_s": round(gen_s, 1),
        "load_s": round(load_s, 1),
    }


def _registry(db: Database, batches: int) -> None:
    """Senders and manifests behind the ingested waybills, as the registry holds them."""
    now = iso(datetime.now(UTC))
    with db.write() as conn:
        conn.execute(
            senders.insert(),
            [
                {"sender_token": f"S{i}", "id_type": "resident_id", "id_masked": "x", "name_masked": "x",
                 "phone_token": f"ph{i % 900}", "address_token": f"ad{i % 700}", "sealed": "x",
                 "verified": True, "outlet": f"o{i % 30}", "courier": "", "agreement_customer": False,
                 "qualification": "", "updated_at": now, "customer_token": None}
                for i in range(1000)
            ],
        )  # fmt: skip
        conn.execute(
            manifests.insert(),
            [
                {"waybill": f"WB{i:09d}", "sender_token": f"S{i % 1000}", "declared_name": "", "quantity": 1,
                 "declared_category": "footwear", "inspected_on_receipt": True, "updated_at": now,
                 "destination_token": f"d{i % 5000}"}
                for i in range(batches * BATCH)
            ],
        )  # fmt: skip


def bench_ingest_with_links(url: str, batches: int) -> dict[str, Any]:
    """ingest_batch with the graph kept and without, interleaved batch by batch in one database (medians)."""
    db = Database(url)
    _registry(db, 2 * batches)
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    on, off = _settings(url), _settings(url).model_copy(update={"links": LinksConfig(enabled=False)})
    who = Principal("station", "bench-a", Role.STATION, ("hub",), line_id="l1")
    timings: dict[bool, list[float]] = {True: [], False: []}
    # A shuffled, balanced order: periodic work of the engine (a WAL checkpoint every few batches)
    # must not fall on one setting, as it does with any fixed alternation.
    order = [True] * batches + [False] * batches
    random.Random(16).shuffle(order)
    for b, with_links in enumerate(order):
        evs = parcel_events("bench-a", "b", b * BATCH, BATCH, day)
        for ev in evs:
            ev["sender_token"] = f"S{ev['seq'] % 1000}"
            if ev["decision"] != "CLEAR" and ev["waybill"]:
                # Hits come with the classifier's view, nearest known counterfeit included.
                ev["classifier"] = "on"
                ev["classifications"] = [
                    {"image_sha256": "0" * 64, "category": "footwear", "category_prob": 0.9,
                     "counterfeit_score": 0.95, "model_version": "bench",
                     "gallery": [{"ref_id": f"ref{ev['seq'] % 20}", "similarity": 0.95}]}
                ]  # fmt: skip
        req = SyncRequest.model_validate({"station_id": "bench-a", "boot_id": "b", "events": evs})
        settings: ServerSettings = on if with_links else off
        t0 = time.perf_counter()
        with db.write() as conn:
            ingest_batch(conn, settings, who, req, datetime.now(UTC))
        timings[with_links].append(time.perf_counter() - t0)
    with db.read() as conn:
        n_edges = conn.execute(select(func.count()).select_from(link_edges)).scalar_one()
    db.dispose()
    med_on, med_off = statistics.median(timings[True]), statistics.median(timings[False])
    return {
        "batches_each": batches,
        "events_per_s_with_links": round(BATCH / med_on),
        "events_per_s_without": round(BATCH / med_off),
        "rate_ratio": round(med_off / med_on, 3),
        "edges_added": n_edges,
    }


def run(args: argparse.Namespace) -> int:
    engines = ["sqlite"] + (["postgresql"] if args.pg_url else [])
    for eng in engines:
        with fresh_database(eng, args.pg_url) as url:
            out = bench_detection(url, eng, args.parcels, args.seed)
        if args.ingest_batches:
            with fresh_database(eng, args.pg_url) as url:
                out["ingest"] = bench_ingest_with_links(url, args.ingest_batches)
        out["machine"] = machine()
        print(json.dumps(out) if args.json else f"{eng}: {out}", flush=True)
    return 0


def register(bench: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = bench.add_parser("split-shipments", help="split-shipment detection on a planted scenario")
    p.add_argument("--parcels", type=int, default=100_000, help="parcels in the generated scenario")
    p.add_argument("--seed", type=int, default=16, help="seed of the scenario generator")
    p.add_argument("--pg-url", default=None, help="PostgreSQL URL to bench as well (a throw-away schema)")
    p.add_argument(
        "--ingest-batches",
        type=int,
        default=0,
        help="also time ingest of N+N batches with and without the graph",
    )
    p.add_argument("--json", action="store_true", help="one JSON line per engine")
    p.set_defaults(func=run)
