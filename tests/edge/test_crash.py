"""kill -9 of a real station process: no divert without a record, no order without its ack."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.agent import EdgeAgent
from edge.store import EdgeStore
from scanner_drivers.sorter.sim import SimulatedSorter
from tests.edge.crash_child import station_config

ROOT = Path(__file__).resolve().parents[2]
KILLS = 3


def spawn(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.edge.crash_child", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
    return proc


def kill_when(proc: subprocess.Popen[str], ready: Callable[[], bool], timeout_s: float = 30.0) -> None:
    end = time.monotonic() + timeout_s
    while not ready() and time.monotonic() < end and proc.poll() is None:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


@pytest.mark.slow
def test_kill_between_divert_and_record_leaves_no_unrecorded_divert(tmp_path: Path) -> None:
    rng = random.Random(5)
    sim = SimulatedSorter()
    url = sim.start()
    data = tmp_path / "edge"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    try:
        for round_ in range(KILLS):
            before = sim.diverts_received
            target = before + rng.randint(3, 40)
            proc = spawn("station", str(data), url, str(round_), "200")
            kill_when(proc, lambda t=target: sim.diverts_received >= t)  # type: ignore[misc]
            # Restart: the station settles what it intended but never saw the end of.
            agent = EdgeAgent(station_config(data, empty, url))
            agent.start(scanner=False)
            parcels = {
                body["sorter_id"]: body
                for (body,) in (
                    (json.loads(r[0]),)
                    for r in agent.store.query("SELECT body FROM events WHERE type = 'parcel'")
                )
            }
            missing = [sid for sid in sim.tracking_ids if sid not in parcels]
            assert missing == [], f"round {round_}: diverts with no parcel record: {missing[:5]}"
            settled = agent.store.divert_outcomes()
            assert all(settled[p["tracking_id"]] != "PENDING" for p in parcels.values())
            assert agent.store.open_intents() == []
            agent.stop()
    finally:
        sim.stop()


@pytest.mark.slow
def test_kill_between_order_store_and_ack_loses_no_ack(tmp_path: Path) -> None:
    rng = random.Random(6)
    data = tmp_path / "edge"
    data.mkdir()
    db = data / "station.db"

    def orders() -> int:
        try:
            with sqlite3.connect(db, timeout=1) as conn:
                return int(conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0])
        except sqlite3.Error:
            return 0

    for _ in range(KILLS):
        target = orders() + rng.randint(5, 60)
        kill_when(spawn("orders", str(data)), lambda t=target: orders() >= t)  # type: ignore[misc]
        store = EdgeStore(db)
        ids = {r[0] for r in store.query("SELECT order_id FROM orders")}
        acked = {
            r[0]
            for r in store.query(
                "SELECT json_extract(body, '$.order_id') FROM events"
                " WHERE type = 'order_status' AND json_extract(body, '$.state') = 'delivered'"
            )
        }
        assert ids and ids == acked, f"orders stored without their ack: {sorted(ids - acked)[:5]}"
        store.close()
