"""The terminal's probes and metrics: no login needed, readiness says why not, counters follow parcels."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from edge.agent import EdgeAgent
from edge.classify import sha256_hex
from edge.config import (
    ClassifierConfig,
    DevicesConfig,
    EdgeConfig,
    ServerLinkConfig,
    StationConfig,
    TerminalConfig,
    TerminalOperator,
)
from edge.terminal import create_terminal_app
from tests.edge.test_classify_scope import tiny
from tests.edge.test_sync import World, reads, wait_for

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(http: TestClient) -> Samples:
    r = http.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def make(
    tmp: Path,
    operators: list[TerminalOperator],
    lines: list[str],
    classifier: ClassifierConfig | None = None,
    server: ServerLinkConfig | None = None,
    token: str | None = None,
) -> EdgeAgent:
    replay = tmp / "reads.jsonl"
    replay.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = EdgeConfig(
        station=StationConfig(id="S1", site_id="SITE1", line_id="L1", data_dir=tmp / "edge"),
        devices=DevicesConfig(scanner=f"fake://{replay}?speed=0"),
        terminal=TerminalConfig(port=0, operators=operators, allowed_hosts=["testserver"]),
        classifier=classifier or ClassifierConfig(),
        server=server or ServerLinkConfig(),
    )
    return EdgeAgent(cfg, token=token)


def test_probes_answer_without_login_and_readiness_says_why(
    tmp_path: Path, terminal_operators: list[TerminalOperator], seed_registry: Callable[..., None]
) -> None:
    agent = make(tmp_path, terminal_operators, [])
    stop = threading.Event()
    try:
        http = TestClient(create_terminal_app(agent, stop=stop))
        assert http.get("/api/health").status_code == 401  # everything else still needs the login
        assert http.get("/healthz").json() == {"status": "alive"}
        assert http.get("/readyz").json() == {"status": "ready", "reason": "ready"}
        # The host check applies to the probes too.
        assert http.get("/healthz", headers={"Host": "evil.example"}).status_code == 400
        stop.set()
        r = http.get("/readyz")
        assert r.status_code == 503 and r.json()["reason"] == "stopping"
    finally:
        agent.stop()
    stopped = TestClient(create_terminal_app(agent))
    assert stopped.get("/readyz").json()["reason"].startswith("local store not writable")
    # The database gone from under the station: the scrape says so instead of reporting zeros.
    for suffix in ("", "-wal", "-shm"):
        Path(f"{agent.store.path}{suffix}").unlink(missing_ok=True)
    unreadable = stopped.get("/metrics")
    assert unreadable.status_code == 503 and unreadable.json()["error"]["code"] == "store_unreadable"


def test_metrics_follow_parcels_and_sync(tmp_path: Path, terminal_operators: list[TerminalOperator]) -> None:
    (tmp_path / "server").mkdir()
    world = World(tmp_path / "server")
    running = True
    try:
        link = ServerLinkConfig(url=world.url, sync_interval_s=0.2, max_backoff_s=0.5, timeout_s=2)
        agent = make(tmp_path, terminal_operators, reads(world, 5), server=link, token=world.token)
        world.stop()  # first the station works alone: its outbox fills
        running = False
        http = TestClient(create_terminal_app(agent))
        # A second app (another registry) in the same process: no duplicate-metric clash.
        TestClient(create_terminal_app(agent)).get("/metrics")
        before = samples(http)
        assert not [k for k in before if k[0] == "parcelguard_station_parcels_total"]
        # The devices' states at start are already waiting to be sent; the parcels come on top.
        waiting = before[("parcelguard_station_outbox_depth", ())]
        assert ("parcelguard_station_sync_lag_seconds", ()) not in before
        agent.start()
        assert agent.scanner.join(20) and agent.drain(20)
        after = samples(http)
        decided = {k[1][0][1]: v for k, v in after.items() if k[0] == "parcelguard_station_parcels_total"}
        assert sum(decided.values()) == 5
        assert after[("parcelguard_station_outbox_depth", ())] >= waiting + 5
        assert after[("parcelguard_station_held_parcels_total", (("reason", "LATE"),))] == 0
        assert ("parcelguard_station_sync_lag_seconds", ()) not in after
        world.start()
        running = True
        wait_for(lambda: agent.store.outbox_size() == 0)
        synced = samples(http)
        assert synced[("parcelguard_station_outbox_depth", ())] == 0
        assert synced[("parcelguard_station_sync_lag_seconds", ())] >= 0
        agent.stop()
    finally:
        if running:
            world.stop()


def test_model_latency_is_observed_per_image(
    tmp_path: Path, terminal_operators: list[TerminalOperator]
) -> None:
    manifest = tiny.write_tiny_manifest(tmp_path / "model")
    classifier = ClassifierConfig(enabled=True, manifest=manifest)
    agent = make(tmp_path, terminal_operators, [], classifier=classifier)
    try:
        http = TestClient(create_terminal_app(agent))
        count = ("parcelguard_station_model_latency_seconds_count", ())
        assert samples(http)[count] == 0
        ok, png = cv2.imencode(".png", np.full((40, 40, 3), 120, np.uint8))
        assert ok
        data = png.tobytes()
        agent.classifier.run([(sha256_hex(data), "camera", data), (sha256_hex(data), "camera", data)])
        assert samples(http)[count] == 2
    finally:
        agent.stop()
