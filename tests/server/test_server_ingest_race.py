"""Concurrent batches through several real server processes on PostgreSQL: no event, review item or order
lost or doubled, the same batch racing itself stored once, one key with two payloads stored once (409)."""

from __future__ import annotations

import gzip
import json
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy

from server import admin
from server.audit import verify_audit
from server.bench_http import ServerProcess
from server.db import normalise_url
from server.settings import ServerSettings, generate_key

STATIONS = {"r1": "site1", "r2": "site1", "r3": "site1", "r4": "site2", "r5": "site2", "r6": "site2"}
BATCHES, PER_BATCH = 3, 60
SHARED = [f"SHARED{i:03d}" for i in range(8)]  # waybills every station pulls: one order per site each


def _event(station: str, seq: int, at: str) -> dict[str, Any]:
    k = seq % 10
    decision = "PULL" if k == 0 else "HOLD" if k == 1 else "CLEAR"
    waybill = SHARED[(seq // 10) % len(SHARED)] if decision == "PULL" else f"{station}-WB{seq:05d}"
    return {
        "type": "parcel", "key": f"{station}:b1:{seq}", "station_id": station, "boot_id": "b1", "seq": seq,
        "at": at, "tracking_id": f"t{seq}", "waybill": waybill, "decision": decision,
        "reasons": [] if decision == "CLEAR" else ["SENDER_BLACKLISTED"], "risk": 0.9 if k < 2 else 0.1,
        "classifier": "off",
    }  # fmt: skip


def _body(station: str, events: list[dict[str, Any]]) -> bytes:
    return gzip.compress(json.dumps({"station_id": station, "boot_id": "b1", "events": events}).encode())


@pytest.mark.slow
def test_concurrent_batches_through_three_processes(db_url: str, tmp_path: Path) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("several server processes need PostgreSQL")
    s = ServerSettings(
        database_url=db_url, secret_key=generate_key(), hmac_key=generate_key(), encryption_key=generate_key()
    )
    tokens = {st: admin.register_station(s, st, site, "l1") for st, site in STATIONS.items()}
    at = datetime.now(UTC).replace(microsecond=0).isoformat()
    work: list[tuple[str, bytes]] = []
    for st in STATIONS:
        for b in range(BATCHES):
            body = _body(st, [_event(st, b * PER_BATCH + i, at) for i in range(PER_BATCH)])
            work += [(st, body), (st, body)]  # the same batch racing itself
    # One key, two payloads, racing: exactly one is stored, the other refused. They differ in their day,
    # so they would land in different partitions, where no unique index could see both.
    other_day = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0).isoformat()
    twin = [_event("r1", 10_000, at), _event("r1", 10_000, other_day)]
    work += [("r1", _body("r1", [twin[0]])), ("r1", _body("r1", [twin[1]]))]
    replies: list[tuple[str, int, dict[str, Any]]] = []
    lock = threading.Lock()
    start = threading.Barrier(len(work))

    def post(station: str, body: bytes, client: httpx.Client) -> None:
        headers = {"Authorization": f"Bearer {tokens[station]}", "Content-Type": "application/json",
                   "Content-Encoding": "gzip"}  # fmt: skip
        start.wait()
        r = client.post("/api/v1/sync", content=body, headers=headers)
        with lock:
            replies.append((station, r.status_code, r.json()))

    with ServerProcess(s, 3, tmp_path) as base, httpx.Client(base_url=base, timeout=120) as client:
        threads = [threading.Thread(target=post, args=(st, body, client)) for st, body in work]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    codes = Counter(code for _st, code, _r in replies)
    assert codes == {200: len(work) - 1, 409: 1}, [r for r in replies if r[1] != 200]
    accepted = Counter(k for _st, code, r in replies if code == 200 for k in r["accepted"])
    expected = {f"{st}:b1:{n}" for st in STATIONS for n in range(BATCHES * PER_BATCH)} | {"r1:b1:10000"}
    assert set(accepted) == expected and set(accepted.values()) == {1}  # each key accepted exactly once
    for _st, code, r in replies:
        if code == 200:
            assert not set(r["accepted"]) & set(r["duplicates"])
    engine = sqlalchemy.create_engine(normalise_url(db_url))
    with engine.connect() as conn:
        keys = Counter(conn.exec_driver_sql("SELECT key FROM events").scalars())
        assert set(keys) == expected and set(keys.values()) == {1}
        hits = {k for k in expected if int(k.split(":")[2]) % 10 in (0, 1)}
        reviews = Counter(conn.exec_driver_sql("SELECT event_key FROM reviews").scalars())
        assert set(reviews) == hits and set(reviews.values()) == {1}
        orders = Counter(
            (w, site) for w, site in conn.exec_driver_sql("SELECT waybill, site_id FROM orders").all()
        )
        assert set(orders) == {(w, site) for w in SHARED for site in ("site1", "site2")}
        assert set(orders.values()) == {1}  # raced by three stations of each site: raised once
        raised = conn.exec_driver_sql("SELECT count(*) FROM audit_log WHERE action = 'order_raise'").scalar()
        assert raised == len(orders)
        parcels = conn.exec_driver_sql(
            "SELECT sum(count) FROM daily_counts WHERE metric = 'parcels'"
        ).scalar()
        assert parcels == len(expected)  # rollups counted each stored event once
        assert verify_audit(conn, s.secret_key.get_secret_value()).ok
    engine.dispose()
