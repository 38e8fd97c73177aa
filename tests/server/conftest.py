"""Server test fixtures: a fresh database per test on SQLite and, where reachable, PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from fastapi.testclient import TestClient

from server import admin
from server.app import create_app
from server.db import migrate, normalise_url
from server.settings import ServerSettings, generate_key

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
def server(db_url: str) -> Iterator[Server]:
    settings = make_settings(db_url)
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
