"""Server test fixtures: a fresh database per test on SQLite and, where reachable, PostgreSQL.

`world` adds two sites' worth of data built through the real APIs, for the site-scope tests: site1 has
stations st-a and st-b, site2 has st-c. Each site has one review item with its own sender and evidence
image, a site-scoped watchlist entry, a pull order and a user; a third sender is named by items of both.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pytest
import sqlalchemy
from fastapi.testclient import TestClient

from server import admin
from server.app import create_app
from server.db import migrate, normalise_url
from server.evidence.signing import create_signing_key
from server.jurisdictions import DEFAULT_TIMEZONE
from server.settings import EvidenceConfig, ServerSettings, generate_key
from server.sites import local_day

ENGINES = ["sqlite", "postgres"]


@pytest.fixture(params=ENGINES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database: a SQLite file, or a private schema on the PostgreSQL server."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'server.db'}"
        migrate(url)
        yield url
        return
    base: str = request.getfixturevalue("pg_url")
    schema = "t_" + uuid.uuid4().hex[:12]
    engine = sqlalchemy.create_engine(normalise_url(base))
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in base else "?"
    url = f"{base}{sep}options=-csearch_path%3D{schema}"
    try:
        migrate(url)
        yield url
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        engine.dispose()


def site_day(at: str | datetime) -> str:
    """The day (YYYY-MM-DD) a time falls on at a site of the default time zone, as reports file it."""
    when = datetime.fromisoformat(at) if isinstance(at, str) else at
    return local_day(when, ZoneInfo(DEFAULT_TIMEZONE))


@contextmanager
def serving(settings: ServerSettings) -> Iterator[str]:
    """The app on a real uvicorn server on a free local port, for browsers; yields its base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started:
                break
            thread.join(0.02)
        yield url
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def make_settings(url: str, **overrides: object) -> ServerSettings:
    return ServerSettings(
        database_url=url,
        secret_key=generate_key(),
        hmac_key=generate_key(),
        encryption_key=generate_key(),
        **overrides,  # type: ignore[arg-type,unused-ignore]
    )


@dataclass
class Server:
    """A running app on a fresh database with an admin token and two stations of one site."""

    settings: ServerSettings
    client: TestClient
    admin: dict[str, str]
    station_a: dict[str, str]
    station_b: dict[str, str]
    station_c: dict[str, str]

    def user(self, name: str, role: str, sites: list[str]) -> dict[str, str]:
        admin.create_user(self.settings, name, "a long password 123", role, sites)
        return {"Authorization": f"Bearer {admin.create_api_token(self.settings, name)}"}


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[Server]:
    # An evidence signing key, as a deployed server has one: bundle and referral routes work.
    key = tmp_path / "keys" / "evidence.pem"
    create_signing_key(key)
    evidence = EvidenceConfig(signing_key_file=key, sender_unit="某市邮政管理局")
    settings = make_settings(db_url, evidence=evidence)
    admin.create_user(settings, "root", "a long password 123", "admin", ["*"])
    root = admin.create_api_token(settings, "root")
    a = admin.register_station(settings, "st-a", "site1", "line1")
    b = admin.register_station(settings, "st-b", "site1", "line2")
    c = admin.register_station(settings, "st-c", "site2", "line1")
    with TestClient(create_app(settings)) as client:
        yield Server(
            settings,
            client,
            {"Authorization": f"Bearer {root}"},
            {"Authorization": f"Bearer {a}"},
            {"Authorization": f"Bearer {b}"},
            {"Authorization": f"Bearer {c}"},
        )


@pytest.fixture
def parcel() -> Callable[..., dict[str, Any]]:
    """Factory of ParcelEvent dicts in wire form; the same arguments give the same event."""
    at = datetime.now(UTC).replace(microsecond=0).isoformat()

    def build(
        station: str, seq: int, decision: str = "CLEAR", boot: str = "b1", **extra: Any
    ) -> dict[str, Any]:
        ev: dict[str, Any] = {
            "type": "parcel",
            "key": f"{station}:{boot}:{seq}",
            "station_id": station,
            "boot_id": boot,
            "seq": seq,
            "at": at,
            "tracking_id": f"t{seq}",
            "waybill": f"WB{seq:06d}",
            "decision": decision,
            "reasons": [] if decision == "CLEAR" else ["SENDER_BLACKLISTED"],
            "risk": 0.1 if decision == "CLEAR" else 0.9,
            "classifier": "off",
        }
        ev.update(extra)
        return ev

    return build


def batch(station: str, events: list[dict[str, Any]], cursor: int = 0, boot: str = "b1") -> dict[str, Any]:
    return {"station_id": station, "boot_id": boot, "registry_cursor": cursor, "events": events}


@pytest.fixture
def make_batch() -> Callable[..., dict[str, Any]]:
    return batch


# --- two sites ------------------------------------------------------------------------------------

SITES = ("site1", "site2")
STATION = {"site1": "st-a", "site2": "st-c"}
IDS = {"site1": "11010519491231002X", "site2": "110105198001010016", "both": "440304199001011233"}
PHONES = {"site1": "13800000001", "site2": "13800000002"}
PASSWORD = "a long password 123"
SENDERS_CSV = (
    "id_type,id_number,name,phone,address,verified,verified_at,outlet,courier,agreement_customer,usc_code,"
    "qualification\n" + "".join(f"resident_id,{n},Name {k},,,true,,O1,C1,false,,\n" for k, n in IDS.items())
)


def png(tag: str) -> bytes:
    """A real 16x16 PNG, different for every tag: uploads pass the server's image gate."""
    pixels = np.frombuffer(hashlib.sha256(tag.encode()).digest() * 8, np.uint8).reshape(16, 16)
    ok, encoded = cv2.imencode(".png", pixels)
    assert ok
    return encoded.tobytes()


@dataclass
class World:
    """What was built, by site: ids to address and markers to look for."""

    item: dict[str, int] = field(default_factory=dict)
    shared_item: dict[str, int] = field(default_factory=dict)
    waybill: dict[str, str] = field(default_factory=dict)
    sender: dict[str, str] = field(default_factory=dict)
    image: dict[str, str] = field(default_factory=dict)
    watch: dict[str, str] = field(default_factory=dict)
    watch_token: dict[str, str] = field(default_factory=dict)
    order_waybill: dict[str, str] = field(default_factory=dict)
    user: dict[str, str] = field(default_factory=dict)
    station_headers: dict[str, dict[str, str]] = field(default_factory=dict)
    station: dict[str, str] = field(default_factory=lambda: dict(STATION))
    ids: dict[str, str] = field(default_factory=lambda: dict(IDS))
    senders_csv: str = SENDERS_CSV
    password: str = PASSWORD


def _event(station: str, seq: int, waybill: str, sender: str, image: bytes) -> dict[str, Any]:
    return {
        "type": "parcel",
        "key": f"{station}:w1:{seq}",
        "station_id": station,
        "boot_id": "w1",
        "seq": seq,
        "at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "tracking_id": f"t{station}{seq}",
        "waybill": waybill,
        "decision": "HOLD",
        "reasons": ["SENDER_WATCHLISTED"],
        "risk": 0.8,
        "classifier": "off",
        "sender_token": sender,
        "images": [
            {
                "sha256": hashlib.sha256(image).hexdigest(),
                "kind": "xray",
                "content_type": "image/png",
                "size": len(image),
            }
        ],
    }


def build_world(server: Any) -> World:
    """Build both sites' data as the all-sites admin and the stations would."""
    c, root = server.client, server.admin
    world = World(station_headers={"site1": server.station_a, "site2": server.station_c})
    r = c.post(
        "/api/v1/senders/import", content=SENDERS_CSV.encode(), headers={**root, "Content-Type": "text/csv"}
    )
    assert r.json()["imported"] == 3, r.text
    privacy = c.app.state.services.privacy
    tokens = {k: privacy.sender_token("resident_id", n) for k, n in IDS.items()}
    for site in SITES:
        station, headers = STATION[site], world.station_headers[site]
        world.sender[site] = tokens[site]
        world.waybill[site] = f"WBSITE{site[-1]}A"
        image = png(site)
        world.image[site] = hashlib.sha256(image).hexdigest()
        events = [
            _event(station, 1, world.waybill[site], tokens[site], image),
            _event(station, 2, f"WBSITE{site[-1]}B", tokens["both"], image),
        ]
        batch = {"station_id": station, "boot_id": "w1", "registry_cursor": 0, "events": events}
        assert c.post("/api/v1/sync", json=batch, headers=headers).is_success
        put = c.put(
            f"/api/v1/images/{world.image[site]}",
            content=image,
            headers={**headers, "Content-Type": "image/png"},
        )
        assert put.status_code == 201, put.text
        watch = {
            "list": "watchlist",
            "kind": "phone",
            "value": PHONES[site],
            "reason": f"watch of {site}",
            "source": "case 1",
            "scope": "site",
            "scope_ref": site,
        }
        entry = c.post("/api/v1/watchlist", json=watch, headers=root)
        assert entry.status_code == 201, entry.text
        world.watch[site], world.watch_token[site] = entry.json()["entry_id"], entry.json()["token"]
        world.order_waybill[site] = f"WBORDER{site[-1]}"
        order = {"scope": "waybill", "waybill": world.order_waybill[site], "reason": "r", "site_id": site}
        assert c.post("/api/v1/orders", json=order, headers=root).status_code == 201
        world.user[site] = f"t-{site}"
        admin.create_user(server.settings, world.user[site], PASSWORD, "officer", [site])
    items = c.get("/api/v1/reviews", headers=root).json()
    for item in items:
        if item["waybill"] in world.waybill.values():
            world.item[item["site_id"]] = item["id"]
        else:
            world.shared_item[item["site_id"]] = item["id"]
    assert set(world.item) == set(SITES) == set(world.shared_item)
    return world


def make_caller(server: Any, role: str, sites: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """A user of `role` holding `sites`: headers with a bearer token, and headers with a browser session."""
    name = f"{role}-{'all' if sites == ['*'] else '-'.join(sites)}"
    bearer = server.user(name, role, sites)
    r = server.client.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    server.client.cookies.clear()  # the shared client must stay anonymous unless told otherwise
    return bearer, {"cookie": f"pg_session={r.cookies['pg_session']}"}


@pytest.fixture
def world(server: Server) -> World:
    """Two sites' data (see `World`) on the fresh database of `server`."""
    return build_world(server)


@pytest.fixture
def caller(server: Server) -> Callable[[str, list[str]], tuple[dict[str, str], dict[str, str]]]:
    """Factory: a user of a role and sites, as (bearer headers, session cookie headers)."""
    return lambda role, sites: make_caller(server, role, sites)
