"""A station process for the kill -9 tests: runs until killed (python -m tests.edge.crash_child MODE ...)."""

from __future__ import annotations

import itertools
import json
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge.agent import EdgeAgent
from edge.config import DevicesConfig, EdgeConfig, ServerLinkConfig, SorterConfig, StationConfig
from edge.feed import StationFeed
from edge.health import HealthBoard
from edge.store import EdgeStore
from edge.sync import SyncLink, SyncWorker
from edge.wire import PullOrderWire


def station_config(data_dir: Path, replay: Path, sorter_url: str) -> EdgeConfig:
    return EdgeConfig(
        station=StationConfig(id="SZX-HUB1-L3-XR1", site_id="SITE", line_id="L3", data_dir=data_dir),
        devices=DevicesConfig(scanner=f"fake://{replay}?speed=0"),
        sorter=SorterConfig(url=sorter_url, divert_budget_s=60),
    )


def run_station(data_dir: Path, sorter_url: str, tag: str, n: int) -> None:
    """Reads of codes that are no waybill: every parcel is held and diverted, sent by its code."""
    replay = data_dir.parent / f"reads-{tag}.jsonl"
    replay.write_text("".join(json.dumps({"codes": [f"K{tag}-{i}"]}) + "\n" for i in range(n)))
    agent = EdgeAgent(station_config(data_dir, replay, sorter_url))
    agent.start()
    print("started", flush=True)
    threading.Event().wait()


def run_orders(data_dir: Path) -> None:
    """Accepts one new pull order after another, as the order poll does."""
    store = EdgeStore(data_dir / "station.db")
    link = SyncLink("http://127.0.0.1:9", "unused", 1.0)
    worker = SyncWorker(store, link, ServerLinkConfig(), "S1", "b1", HealthBoard(), StationFeed())
    now = datetime.now(UTC)
    print("started", flush=True)
    for seq in itertools.count(store.orders_seq() + 1):
        order = PullOrderWire(
            order_id=f"o{seq}",
            seq=seq,
            scope="waybill",
            waybill=f"EA{seq:09d}CN",
            reason="tip-off",
            issuer="officer",
            created_at=now,
            expires_at=now + timedelta(days=1),
        )
        worker.accept_orders([order])


if __name__ == "__main__":
    mode, folder, *rest = sys.argv[1:]
    if mode == "station":
        run_station(Path(folder), rest[0], rest[1], int(rest[2]))
    else:
        run_orders(Path(folder))
