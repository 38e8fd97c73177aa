"""Store and forward against the real server: replays make no duplicates; a dead server loses nothing."""

from __future__ import annotations

import json
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from edge.agent import EdgeAgent
from edge.config import DevicesConfig, EdgeConfig, ServerLinkConfig, StationConfig
from edge.demo import ServerThread
from edge.scenario import build_scenario, write_imports
from edge.sync import SyncLink
from server import admin
from server.app import create_app
from server.jurisdictions import DEFAULT_TIMEZONE
from server.settings import ServerSettings

SITE = "SITE1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


class World:
    """A server (restartable on the same port and database) and one registered station."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.settings = ServerSettings(
            database_url=f"sqlite:///{tmp / 'server.db'}",
            secret_key=secrets.token_urlsafe(32),
            hmac_key=secrets.token_urlsafe(32),
            encryption_key=secrets.token_urlsafe(32),
        )
        self.thread: ServerThread | None = None
        self.url = f"http://127.0.0.1:{self.port}"
        self.start()
        admin.create_user(self.settings, "admin", secrets.token_urlsafe(12), "admin", [SITE])
        self.admin_token = admin.create_api_token(self.settings, "admin")
        # Models are published network-wide, so only an administrator of every site may do it.
        admin.create_user(self.settings, "hq-admin", secrets.token_urlsafe(12), "admin", ["*"])
        self.network_admin_token = admin.create_api_token(self.settings, "hq-admin")
        self.token = admin.register_station(self.settings, "S1", SITE, "L1")
        scenario = build_scenario(40, seed=3)
        self.scenario = scenario
        senders, manifests = write_imports(scenario, tmp / "imports")
        for kind, path in (("senders", senders), ("manifests", manifests)):
            self.api(
                "POST",
                f"/api/v1/{kind}/import",
                content=path.read_bytes(),
                headers={"Content-Type": "application/json"},
            )

    def start(self) -> None:
        self.thread = ServerThread(create_app(self.settings), "127.0.0.1", self.port)
        self.thread.start()

    def stop(self) -> None:
        assert self.thread is not None
        self.thread.stop()

    def api(self, method: str, path: str, **kw: Any) -> Any:
        r = httpx.request(
            method,
            self.url + path,
            headers={"Authorization": f"Bearer {self.admin_token}", **kw.pop("headers", {})},
            timeout=30,
            **kw,
        )
        assert r.status_code < 400, r.text
        return r.json()

    def parcels_stored(self) -> int:
        # Reports file days at the site: the server's default time zone here.
        day = datetime.now(ZoneInfo(DEFAULT_TIMEZONE)).date().isoformat()
        return int(self.api("GET", "/api/v1/reports/daily", params={"date": day})["parcels"])


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.stop()


def station(world: World, tmp: Path, lines: list[str]) -> EdgeAgent:
    replay = tmp / "reads.jsonl"
    replay.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = EdgeConfig(
        station=StationConfig(id="S1", site_id=SITE, line_id="L1", data_dir=tmp / "edge"),
        devices=DevicesConfig(scanner=f"fake://{replay}?speed=0"),
        server=ServerLinkConfig(url=world.url, sync_interval_s=0.2, max_backoff_s=0.5, timeout_s=2),
    )
    return EdgeAgent(cfg, token=world.token)


def reads(world: World, n: int) -> list[str]:
    return [json.dumps({"codes": p.codes}) for p in world.scenario.parcels[:n]]


@pytest.mark.slow
def test_server_down_then_back_loses_nothing(world: World, tmp_path: Path) -> None:
    agent = station(world, tmp_path, reads(world, 30))
    agent.start(scanner=False)
    assert agent.sync is not None and agent.sync.registry_synced.wait(20)
    world.stop()  # the network goes away; the station keeps deciding
    agent.start_scanner()
    assert agent.scanner.join(20)
    assert agent.drain(20)
    assert agent.parcels == 30
    wait_for(lambda: bool(agent.health.snapshot(0)["sync_error"]))  # sync rounds fail against the dead server
    assert agent.store.outbox_size() >= 30
    world.start()
    wait_for(lambda: agent.store.outbox_size() == 0)
    assert world.parcels_stored() == 30
    agent.stop()


@pytest.mark.slow
def test_replayed_batch_creates_no_duplicates(world: World, tmp_path: Path) -> None:
    agent = station(world, tmp_path, reads(world, 10))
    agent.start(scanner=False)
    agent.start_scanner()
    assert agent.scanner.join(20)
    assert agent.drain(20)
    assert agent.sync is not None
    wait_for(lambda: agent.store.outbox_size() == 0)
    assert world.parcels_stored() == 10
    bodies = [ev.model_dump_json() for ev in agent.store.events(100)]
    link = SyncLink(world.url, world.token, 10)
    reply = link.post_batch("S1", agent.boot_id, 0, bodies)  # the whole history again
    assert reply.accepted == [] and len(reply.duplicates) == len(bodies)
    half = link.post_batch("S1", agent.boot_id, 0, bodies[3:7])  # an overlapping tail
    assert len(half.duplicates) == 4
    assert world.parcels_stored() == 10
    link.close()
    agent.stop()


@pytest.mark.slow
def test_refused_event_is_parked_and_the_queue_moves_on(world: World, tmp_path: Path) -> None:
    agent = station(world, tmp_path, reads(world, 5))
    agent.start(scanner=False)
    agent.start_scanner()
    assert agent.scanner.join(20)
    assert agent.drain(20)
    assert agent.sync is not None
    wait_for(lambda: agent.store.outbox_size() == 0)
    first = agent.store.events(1)[0]
    # Same key, different payload: the server must refuse it (409), and the station parks it.
    forged = first.model_copy(update={"at": first.at.replace(year=2020)})
    agent.store.write(
        lambda db: db.execute(
            "INSERT INTO outbox (seq, key, body) VALUES (?,?,?)",
            [10_000, forged.key, forged.model_dump_json()],
        )
    )
    agent.sync.kick()
    wait_for(lambda: agent.store.outbox_size() == 0)
    parked = agent.store.query("SELECT key, error FROM dead_letter")
    assert parked[0][0] == first.key and "409" in parked[0][1]
    agent.stop()
