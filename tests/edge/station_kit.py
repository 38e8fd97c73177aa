"""Helpers for the parcel-path tests: a station fed reads by hand, and what it recorded."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.agent import EdgeAgent
from edge.config import ClassifierConfig, DevicesConfig, EdgeConfig, SorterConfig, StationConfig
from edge.wire import DivertOutcomeEvent, ParcelEvent
from scanner_drivers.types import Code, ScanRead

Feed = queue.Queue[dict[str, Any]]


def make_agent(
    tmp_path: Path,
    seed: Callable[..., None],
    sorter_url: str | None,
    classifier: ClassifierConfig | None = None,
    **sorter: Any,
) -> EdgeAgent:
    replay = tmp_path / "none.jsonl"
    replay.write_text("", encoding="utf-8")
    cfg = EdgeConfig(
        station=StationConfig(id="SZX-HUB1-L3-XR1", site_id="SITE", line_id="L3", data_dir=tmp_path / "edge"),
        devices=DevicesConfig(scanner=f"fake://{replay}?speed=0"),
        sorter=SorterConfig(url=sorter_url, **sorter),
        classifier=classifier or ClassifierConfig(),
    )
    agent = EdgeAgent(cfg)
    seed(agent.store)
    return agent


def scan(*codes: str, ago_s: float = 0.0, carrier_id: str | None = None) -> ScanRead:
    return ScanRead(
        device="test",
        codes=tuple(Code(c, "code128", "test") for c in codes),
        at_utc=datetime.now(UTC).isoformat(),
        at_monotonic=time.monotonic() - ago_s,
        carrier_id=carrier_id,
    )


def parcels(agent: EdgeAgent) -> list[ParcelEvent]:
    return [e for e in agent.store.events(1000) if isinstance(e, ParcelEvent)]


def outcomes(agent: EdgeAgent) -> list[DivertOutcomeEvent]:
    return [e for e in agent.store.events(1000) if isinstance(e, DivertOutcomeEvent)]


def alerts(feed: Feed) -> list[dict[str, Any]]:
    out = []
    while not feed.empty():
        item = feed.get_nowait()
        if item["type"] == "alert":
            out.append(item)
    return out
