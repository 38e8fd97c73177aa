"""Events by retention class and day: PostgreSQL partitions made at ingest dropped whole; SQLite one table."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
import sqlalchemy
from alembic import command

from server.db import alembic_config, migrate, normalise_url
from server.partitions import (
    EventPartition,
    drop_event_partition,
    ensure_event_partitions,
    event_partitions,
    is_partitioned,
)

Factory = Callable[..., dict[str, Any]]
DAY1, DAY2 = "2026-11-20", "2026-11-21"


def _engine(url: str) -> sqlalchemy.Engine:
    return sqlalchemy.create_engine(normalise_url(url))


def _stored(url: str) -> list[tuple[str, str, str, str]]:
    """(key, site_id, retention_class, day) of every stored event, by key."""
    engine = _engine(url)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT key, site_id, retention_class, day FROM events ORDER BY key"
        ).all()
    engine.dispose()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def _two_days(server: Any, parcel: Factory, make_batch: Factory) -> None:
    events = [
        parcel("st-a", 1, at=f"{DAY1}T08:00:00+00:00"),
        parcel("st-a", 2, "HOLD", at=f"{DAY1}T09:00:00+00:00"),
        parcel("st-a", 3, "PULL", at=f"{DAY2}T23:59:59+00:00"),
        {
            "type": "device_status", "key": "st-a:b1:4", "station_id": "st-a", "boot_id": "b1", "seq": 4,
            "at": f"{DAY2}T10:00:00+00:00", "device": "xray", "up": True,
        },
    ]  # fmt: skip
    r = server.client.post("/api/v1/sync", json=make_batch("st-a", events), headers=server.station_a)
    assert r.status_code == 200, r.text


def test_events_carry_site_and_retention_class(server: Any, parcel: Factory, make_batch: Factory) -> None:
    _two_days(server, parcel, make_batch)
    assert _stored(server.settings.database_url) == [
        ("st-a:b1:1", "site1", "cleared", DAY1),
        ("st-a:b1:2", "site1", "hit", DAY1),
        ("st-a:b1:3", "site1", "hit", DAY2),
        ("st-a:b1:4", "site1", "cleared", DAY2),
    ]


def test_sqlite_keeps_one_table(server: Any, parcel: Factory, make_batch: Factory) -> None:
    if server.settings.database_url.startswith("postgresql"):
        pytest.skip("SQLite only")
    _two_days(server, parcel, make_batch)
    engine = _engine(server.settings.database_url)
    with engine.begin() as conn:
        assert not is_partitioned(conn)
        assert event_partitions(conn) == [] and ensure_event_partitions(conn, [DAY1]) == []
    engine.dispose()


def _leaf_of(conn: sqlalchemy.Connection) -> dict[str, str]:
    rows = conn.exec_driver_sql("SELECT key, tableoid::regclass::text FROM events").all()
    return {k: t for k, t in rows}


def test_partitions_made_at_ingest_and_dropped_whole(
    server: Any, parcel: Factory, make_batch: Factory
) -> None:
    if not server.settings.database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    _two_days(server, parcel, make_batch)
    engine = _engine(server.settings.database_url)
    with engine.begin() as conn:
        assert is_partitioned(conn)
        days = {date(2026, 11, d) for d in (20, 21, 22)}  # the batch's two days and the day after
        assert set(event_partitions(conn)) == {
            *(EventPartition(f"events_{c}_{d:%Y%m%d}", c, d) for c in ("hit", "cleared") for d in days),
            EventPartition("events_hit_default", "hit", None),
            EventPartition("events_cleared_default", "cleared", None),
        }
        assert _leaf_of(conn) == {
            "st-a:b1:1": "events_cleared_20261120",
            "st-a:b1:2": "events_hit_20261120",
            "st-a:b1:3": "events_hit_20261121",
            "st-a:b1:4": "events_cleared_20261121",
        }
        assert ensure_event_partitions(conn, [DAY1, DAY2]) == []  # nothing twice
        drop_event_partition(conn, "events_hit_20261120")
        with pytest.raises(ValueError):
            drop_event_partition(conn, "events_hit_default")
        with pytest.raises(ValueError):
            drop_event_partition(conn, "events; DROP TABLE users")
        with pytest.raises(LookupError):
            drop_event_partition(conn, "events_hit_20200101")
        assert sorted(_leaf_of(conn)) == ["st-a:b1:1", "st-a:b1:3", "st-a:b1:4"]
    engine.dispose()
    # The review item of the dropped hit stays (retention of reviews is its own class).
    assert server.client.get("/api/v1/reviews?state=open", headers=server.admin).status_code == 200


def test_a_day_without_partition_goes_to_default_and_stays(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    engine = _engine(db_url)
    with engine.begin() as conn:
        # A row written without ensure (as by a tool bypassing ingest) is never refused ...
        conn.exec_driver_sql(
            "INSERT INTO events (key, station_id, boot_id, seq, type, at, day, payload_hash, payload,"
            " received_at, site_id, retention_class) VALUES ('s:b:1', 's', 'b', 1, 'parcel',"
            " '2026-11-25T00:00:00+00:00', '2026-11-25', '', '{}', '', 'x', 'cleared')"
        )
        assert _leaf_of(conn) == {"s:b:1": "events_cleared_default"}
        # ... and its day then stays in DEFAULT for that class, while the other class gets its partition.
        assert ensure_event_partitions(conn, ["2026-11-25"]) == [
            "events_hit_20261125",
            "events_hit_20261126",
            "events_cleared_20261126",
        ]
    engine.dispose()


def test_migration_moves_existing_events(db_url: str) -> None:
    """0006 -> 0007 keeps every event, gives it its station's site and class; and back again."""
    command.downgrade(alembic_config(db_url), "0006")
    engine = _engine(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO stations (station_id, site_id, line_id, active, created_at) "
            "VALUES ('st-a', 'site1', 'l1', true, '')"
        )
        for seq, (ty, decision, day) in enumerate(
            [("parcel", "CLEAR", DAY1), ("parcel", "PULL", DAY1), ("divert_outcome", "PULL", DAY2)]
        ):
            conn.exec_driver_sql(
                "INSERT INTO events (key, station_id, boot_id, seq, type, at, day, decision, payload_hash,"
                f" payload, received_at) VALUES ('st-a:b:{seq}', 'st-a', 'b', {seq}, '{ty}',"
                f" '{day}T01:00:00', '{day}', '{decision}', 'h', '{{}}', '')"
            )
    migrate(db_url, "0007")
    assert _stored(db_url) == [
        ("st-a:b:0", "site1", "cleared", DAY1),
        ("st-a:b:1", "site1", "hit", DAY1),
        ("st-a:b:2", "site1", "cleared", DAY2),
    ]
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            assert {p.name for p in event_partitions(conn) if p.day} == {
                f"events_{c}_{d}" for c in ("hit", "cleared") for d in ("20261120", "20261121")
            }
            # New rows keep numbering after the moved ones.
            conn.exec_driver_sql(
                "INSERT INTO events (key, station_id, boot_id, seq, type, at, day, payload_hash, payload,"
                " received_at, site_id, retention_class) VALUES ('st-a:b:9', 'st-a', 'b', 9, 'parcel',"
                f" '{DAY1}T02:00:00', '{DAY1}', 'h', '{{}}', '', 'site1', 'cleared')"
            )
            ids = conn.exec_driver_sql("SELECT id FROM events ORDER BY id").scalars().all()
            assert ids == [1, 2, 3, 4]
            conn.exec_driver_sql("DELETE FROM events WHERE key = 'st-a:b:9'")
    command.downgrade(alembic_config(db_url), "0006")
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT key, day FROM events ORDER BY key").all()
        assert [tuple(r) for r in rows] == [("st-a:b:0", DAY1), ("st-a:b:1", DAY1), ("st-a:b:2", DAY2)]
    engine.dispose()
    migrate(db_url, "head")
