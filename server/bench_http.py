"""`parcelguard bench server --http`: the real server process over HTTP: ingest of gzip batches of full parcel
events against a bare bulk insert of the same rows, order fan-out during full-rate ingest, backlog drain,
daily report."""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from edge.wire import SyncRequest
from server import admin
from server.bench import _pct, bare_day_scans, fresh_database, machine
from server.db import Database, insert_rows, iso
from server.ingest import EVENT_COLUMNS, prepare
from server.jurisdictions import DEFAULT_TIMEZONE
from server.schema import events
from server.settings import SECRET_ENV, ServerSettings, generate_key

BATCH = 1000
EDGES = 20
BACKLOG_TARGET = 400_000
INGEST_SITE, EDGE_SITE = "hub-a", "hub-b"
# The server files the ingest site's days in the default zone (no [server.sites] entry): so does the bare run.
SITE_ZONE = ZoneInfo(DEFAULT_TIMEZONE)
CATEGORIES = ("footwear", "bags", "watches", "electronics", "cosmetics", "clothing", "medicines", "toys")


def _sha(*parts: object) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()


def station_events(station: str, boot: str, start: int, n: int, day: datetime) -> list[dict[str, Any]]:
    """Full parcel events as a station writes them: codes read, sender token, the X-ray image (and for hits
    the camera photo) with the classifier's view of each, divert outcomes for pulls. 90% clear, 6% hold,
    2% pull, 2% no-read."""
    out = []
    for i in range(start, start + n):
        k = i % 50
        decision = "PULL" if k == 0 else "HOLD" if k < 4 else "CLEAR"
        reasons = (
            ["SENDER_BLACKLISTED", "INTERCEPT_ORDER"] if k == 0 else ["COUNTERFEIT_SUSPECT"] if k < 4 else []
        )
        waybill: str | None = f"SF{1_300_000_000_000 + i}"
        if k == 4:
            decision, reasons, waybill = "HOLD", ["NO_READ"], None
        category = CATEGORIES[i % len(CATEGORIES)]
        images = [
            {"sha256": _sha(station, i, "xray"), "kind": "xray", "content_type": "image/png",
             "size": 180_000 + i % 9000},
            {"sha256": _sha(station, i, "cam"), "kind": "camera", "content_type": "image/jpeg",
             "size": 95_000 + i % 7000},
        ][: 1 if decision == "CLEAR" else 2]  # fmt: skip
        classifications = [
            {
                "image_sha256": img["sha256"],
                "category": category,
                "category_prob": 0.91 if decision == "CLEAR" else 0.74,
                "counterfeit_score": 0.03 if decision == "CLEAR" else 0.86,
                "gallery": [] if decision == "CLEAR" else [
                    {"ref_id": f"ref-{i % 97:04d}", "similarity": 0.81, "label": f"{category} counterfeit"}
                ],
                "uncertain": False,
                "model_version": "mobilenetv3-heads-2026.11",
            }
            for img in images
        ]  # fmt: skip
        event: dict[str, Any] = {
            "type": "parcel",
            "key": f"{station}:{boot}:{i}",
            "station_id": station,
            "boot_id": boot,
            "seq": i,
            "at": (day + timedelta(milliseconds=(i * 853) % 86_000_000)).isoformat(),
            "tracking_id": f"{station}-{boot}-{i:09d}",
            "waybill": waybill,
            "codes": [waybill] if waybill else [],
            "decision": decision,
            "reasons": reasons,
            "risk": 0.93 if decision == "PULL" else 0.71 if decision == "HOLD" else 0.04,
            "sender_token": _sha("sender", i % 5000)[:32],
            "declared_category": category,
            "classifier": "onnx",
            "classifications": classifications,
            "images": images,
            "sorter_id": waybill,
        }
        if decision == "PULL":
            event["divert"] = {"outcome": "DIVERTED", "chute": "C7", "detail": ""}
        out.append(event)
    return out


def gzip_batches(station: str, boot: str, first_seq: int, batches: int, day: datetime) -> list[bytes]:
    """Request bodies prepared before the clock starts: the clients cost the server no CPU while timed."""
    bodies = []
    for b in range(batches):
        evs = station_events(station, boot, first_seq + b * BATCH, BATCH, day)
        body = {"station_id": station, "boot_id": boot, "registry_cursor": 0, "events": evs}
        bodies.append(gzip.compress(json.dumps(body).encode(), compresslevel=6))
    return bodies


class ServerProcess:
    """`parcelguard server run` as a child process on a free port, with the bench's secrets."""

    def __init__(self, settings: ServerSettings, workers: int, folder: Path) -> None:
        self.settings = settings
        self.workers = workers
        self.config = folder / "server.toml"
        self.config.write_text(
            "[server]\n"
            f"database_url = {json.dumps(settings.database_url)}\n"
            "[server.orders]\nmax_poll_seconds = 30.0\n"
        )
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> str:
        env = dict(os.environ)
        for key, name in SECRET_ENV.items():
            env[name] = getattr(self.settings, key).get_secret_value()
        cmd = [sys.executable, "-m", "edge.cli", "server", "run", "--config", str(self.config)]
        cmd += ["--port", str(self.port), "--workers", str(self.workers)]
        self.log = self.config.with_suffix(".log")
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log)
        base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise OSError(f"bench server exited with {self.proc.returncode} during start")
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    return base
            except httpx.TransportError:
                pass
            time.sleep(0.2)  # waiting for a child process to listen
        raise OSError("bench server did not become ready within 90 s")

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def post_batches(base: str, token: str, bodies: list[bytes]) -> list[float]:
    """One station's sync worker: each batch waits for the reply to the one before. Seconds per batch."""
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
    }
    took = []
    with httpx.Client(base_url=base, timeout=300) as client:
        for body in bodies:
            t0 = time.perf_counter()
            r = client.post("/api/v1/sync", content=body, headers=headers)
            took.append(time.perf_counter() - t0)
            if r.status_code != 200 or len(r.json()["accepted"]) != BATCH:
                raise OSError(f"sync refused or short: {r.status_code} {r.text[:300]}")
    return took


def run_clients(base: str, work: list[tuple[str, list[bytes]]]) -> float:
    """Every client posts its bodies at once; wall seconds from the common start to the last reply."""
    errors: list[BaseException] = []
    start = threading.Barrier(len(work) + 1)

    def client(token: str, bodies: list[bytes]) -> None:
        start.wait()
        try:
            post_batches(base, token, bodies)
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=client, args=w, daemon=True) for w in work]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - t0


class FanoutProbe:
    """20 edges long-polling for orders and an officer posting one every `every` s; latency from the
    officer's POST to each edge's receipt."""

    def __init__(self, base: str, edge_tokens: list[str], officer_token: str, every: float = 0.25) -> None:
        self.base, self.tokens, self.every = base, edge_tokens, every
        self.officer = {"Authorization": f"Bearer {officer_token}"}
        self.sent: dict[str, float] = {}
        self.latencies: list[float] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.posting = threading.Event()
        self.threads: list[threading.Thread] = []
        self.orders = 0
        self.floor: list[float] = []

    def _edge(self, token: str) -> None:
        after = 0
        with httpx.Client(base_url=self.base, timeout=60) as c:
            while not self.stop.is_set():
                try:
                    r = c.get("/api/v1/orders/poll", params={"after": after, "timeout": 5},
                              headers={"Authorization": f"Bearer {token}"})  # fmt: skip
                except httpx.TransportError:
                    continue
                got = time.perf_counter()
                for order in r.json().get("orders", []):
                    with self.lock:
                        if order["waybill"] in self.sent:
                            self.latencies.append(got - self.sent[order["waybill"]])
                    after = max(after, order["seq"])

    def _officer(self) -> None:
        with httpx.Client(base_url=self.base, timeout=60) as c:
            while not self.stop.is_set():
                if not self.posting.wait(0.1):
                    continue
                waybill = f"FAN{self.orders:06d}"
                with self.lock:
                    self.sent[waybill] = time.perf_counter()
                r = c.post("/api/v1/orders", json={"scope": "waybill", "waybill": waybill, "reason": "bench"},
                           headers=self.officer)  # fmt: skip
                if r.status_code != 201:
                    raise OSError(f"order failed: {r.status_code} {r.text[:200]}")
                self.orders += 1
                # Bare comparison under the same load: one plain authenticated round trip.
                t1 = time.perf_counter()
                c.get("/api/v1/auth/me", headers=self.officer)
                self.floor.append(time.perf_counter() - t1)
                self.stop.wait(self.every)

    def __enter__(self) -> FanoutProbe:
        self.threads = [threading.Thread(target=self._edge, args=(t,), daemon=True) for t in self.tokens]
        self.threads.append(threading.Thread(target=self._officer, daemon=True))
        for t in self.threads:
            t.start()
        time.sleep(1.0)  # every edge reaches its long poll before the first order
        return self

    def finish(self) -> None:
        """Stop posting orders (after at least one, however short the load was)."""
        deadline = time.monotonic() + 10
        while self.orders == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.posting.clear()

    def __exit__(self, *exc: object) -> None:
        self.finish()
        deadline = time.monotonic() + 10
        while len(self.latencies) < self.orders * len(self.tokens) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.stop.set()
        for t in self.threads:
            t.join(timeout=10)

    def figures(self) -> dict[str, Any]:
        ms = [v * 1000 for v in self.latencies]
        return {
            "fanout_orders": self.orders,
            "fanout_deliveries": len(ms),
            "fanout_expected_deliveries": self.orders * len(self.tokens),
            "fanout_p50_ms": round(statistics.median(ms), 1) if ms else None,
            "fanout_p99_ms": round(_pct(ms, 0.99), 1) if ms else None,
            "fanout_max_ms": round(max(ms), 1) if ms else None,
            "fanout_bare_round_trip_p50_ms": round(statistics.median(self.floor) * 1000, 1) if ms else None,
            "fanout_bare_round_trip_p99_ms": round(_pct(self.floor, 0.99) * 1000, 1) if ms else None,
        }


def bare_rates(url: str, bodies: list[bytes]) -> dict[str, int]:
    """The same rows the server stores, inserted bare in one transaction per 1,000: the engine's bulk path
    (PostgreSQL COPY, sqlite3 executemany) and SQLAlchemy's executemany."""
    batches = []
    now = iso(datetime.now(UTC))
    for body in bodies:
        req = SyncRequest.model_validate_json(gzip.decompress(body))
        batches.append([prepare(ev, INGEST_SITE, now, SITE_ZONE).row for ev in req.events])
    db = Database(url)
    out: dict[str, int] = {}
    for name in ("bulk", "sqlalchemy"):
        with db.write() as conn:
            conn.execute(events.delete())
        t0 = time.perf_counter()
        for rows in batches:
            with db.write() as conn:
                if name == "bulk":
                    insert_rows(conn, "events", EVENT_COLUMNS, rows)
                else:
                    conn.execute(events.insert(), [dict(zip(EVENT_COLUMNS, r, strict=True)) for r in rows])
        out[name] = round(len(batches) * BATCH / (time.perf_counter() - t0))
    db.dispose()
    return out


def report_times(base: str, admin_token: str, day: str, url: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {admin_token}"}
    times, parcels = [], 0
    with httpx.Client(base_url=base, timeout=120) as c:
        for _ in range(5):
            t0 = time.perf_counter()
            r = c.get("/api/v1/reports/daily", params={"date": day}, headers=headers)
            times.append(time.perf_counter() - t0)
            if r.status_code != 200:
                raise OSError(f"report failed: {r.status_code} {r.text[:200]}")
            parcels = int(r.json()["parcels"])
    db = Database(url)
    bare = bare_day_scans(db, day)
    db.dispose()
    return {
        "report_events": parcels,
        "report_ms": round(statistics.median(times) * 1000, 1),
        "report_bare_scan_ms": round(statistics.median(bare) * 1000, 1),
    }


def bench_engine(engine: str, pg_url: str | None, args: argparse.Namespace) -> dict[str, Any]:
    workers = args.workers or (2 if engine == "postgresql" else 1)
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    ingest_stations = [f"in-{i:02d}" for i in range(args.clients)]
    per_client = [gzip_batches(st, "b1", 0, args.batches, day) for st in ingest_stations]
    backlog = gzip_batches("backlog", "b1", 0, max(1, args.backlog_events // BATCH), day)
    result: dict[str, Any] = {"engine": engine, "workers": workers, "clients": args.clients}
    result["gzip_kb_per_batch"] = round(statistics.median(len(b) for b in per_client[0]) / 1024, 1)
    with fresh_database(engine, pg_url) as url, tempfile.TemporaryDirectory() as tmp:
        s = ServerSettings(
            database_url=url,
            secret_key=generate_key(),
            hmac_key=generate_key(),
            encryption_key=generate_key(),
        )
        tokens = {
            st: admin.register_station(s, st, INGEST_SITE, "l1") for st in [*ingest_stations, "backlog"]
        }
        edges = [admin.register_station(s, f"edge-{i:02d}", EDGE_SITE, "l1") for i in range(EDGES)]
        admin.create_user(s, "bench-officer", "bench password 123", "admin", ["*"])
        officer = admin.create_api_token(s, "bench-officer")
        with ServerProcess(s, workers, Path(tmp)) as base, FanoutProbe(base, edges, officer) as fan:
            fan.posting.set()
            wall = run_clients(base, [(tokens[st], per_client[i]) for i, st in enumerate(ingest_stations)])
            t0 = time.perf_counter()
            post_batches(base, tokens["backlog"], backlog)
            drain = time.perf_counter() - t0
            fan.finish()
        with ServerProcess(s, workers, Path(tmp)) as base:
            top_up = max(0, args.report_events - args.clients * args.batches * BATCH - len(backlog) * BATCH)
            extra = [
                (
                    admin.register_station(s, f"rep-{i}", INGEST_SITE, "l1"),
                    gzip_batches(f"rep-{i}", "b1", 0, n, day),
                )
                for i, n in enumerate(_split(top_up // BATCH, 2))
                if n
            ]
            if extra:
                run_clients(base, extra)
            result.update(report_times(base, officer, day.date().isoformat(), url))
        result["ingest_events_per_s"] = round(args.clients * args.batches * BATCH / wall)
        result.update(fan.figures())
        result["backlog_events"] = len(backlog) * BATCH
        result["backlog_drain_s"] = round(drain, 1)
        if len(backlog) * BATCH < BACKLOG_TARGET:
            result["backlog_drain_s_400k_extrapolated"] = round(
                drain * BACKLOG_TARGET / (len(backlog) * BATCH), 1
            )
    with fresh_database(engine, pg_url) as bare_url:
        rates = bare_rates(bare_url, [b for bodies in per_client for b in bodies])
    result["bare_events_per_s"] = rates["bulk"]
    result["bare_method"] = "COPY" if engine == "postgresql" else "sqlite3 executemany"
    result["bare_sqlalchemy_executemany_events_per_s"] = rates["sqlalchemy"]
    result["ratio_bare_to_ingest"] = round(rates["bulk"] / result["ingest_events_per_s"], 2)
    return result


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def run_http_bench(args: argparse.Namespace) -> int:
    engines = ["sqlite"] + (["postgresql"] if args.pg_url else [])
    results = [bench_engine(eng, args.pg_url, args) for eng in engines]
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps({"machine": machine(), "method": METHOD, "engines": results}, indent=1))
    if not args.json:
        print(f"machine: {json.dumps(machine())}\nmethod: {METHOD}")
    # The last lines: one JSON object per engine.
    for r in results:
        print(json.dumps(r))
    return 0


METHOD = (
    "a real `parcelguard server run` process (--workers N) on a fresh database; ingest: C clients, each its "
    "own station, post gzip batches of 1,000 full parcel events (prepared before the clock starts) one after "
    "another, events/s over the wall time of all; bare: the same rows inserted in the same run into a fresh "
    "database, 1,000 per transaction, by COPY (PostgreSQL) or sqlite3 executemany (SQLite), and by "
    "SQLAlchemy executemany; fan-out: 20 stations of another site long-poll while an officer posts an order "
    "every 0.25 s during the ingest and backlog phases, latency from the POST to each station's receipt; "
    "backlog: one station posts N events in batches of 1,000, each after the reply to the one before; "
    "report: GET /api/v1/reports/daily over every event of the day (topped up over HTTP to the asked N), "
    "median of 5, beside a bare GROUP BY scan of the same events."
)
