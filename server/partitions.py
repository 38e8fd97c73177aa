"""Daily partitions of `events` per retention class on PostgreSQL: list, create ahead of need, drop.

On PostgreSQL `events` is partitioned by LIST on `retention_class` ('hit', 'cleared'), and each class by
RANGE on `day` into one partition per day (`events_hit_20261201`) plus a DEFAULT partition that takes any
day without its own, so that no event is ever refused. Retention drops a whole day of one class instead of
deleting rows. SQLite keeps one plain table: every function here is a no-op or an empty answer there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection, text

from server.db import serialise_writers

RETENTION_CLASSES = ("hit", "cleared")
# Writers that create partitions take turns on this key, so two never race on one name.
PARTITION_LOCK = 7_482_013
DAY_NAME = re.compile(r"^events_(hit|cleared)_(\d{8})$")
DEFAULT_NAME = re.compile(r"^events_(hit|cleared)_default$")
LEAVES = (
    "WITH RECURSIVE tree(oid) AS ("
    " SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass('events')"
    " UNION ALL SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.oid)"
    " SELECT c.relname FROM tree JOIN pg_class c ON c.oid = tree.oid WHERE c.relkind = 'r'"
)


@dataclass(frozen=True)
class EventPartition:
    """One leaf partition of `events`: its table name, class and day (None for the DEFAULT partition)."""

    name: str
    retention_class: str
    day: date | None


PARTITION_TABLE = re.compile(r"^events_(hit|cleared)(_default|_\d{8})?$")


def not_a_partition(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic `include_object` hook: the partitions of `events` (and their indexes) live only in the
    database, made by migration 0007 and at ingest; the schema declares the parent table alone."""
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    return not (reflected and table is not None and PARTITION_TABLE.match(table))


def retention_class_of(event_type: str, decision: str | None) -> str:
    """'hit' for parcel events decided HOLD or PULL (kept longer by law), 'cleared' for everything else."""
    return "hit" if event_type == "parcel" and decision in ("HOLD", "PULL") else "cleared"


def is_partitioned(conn: Connection) -> bool:
    """Whether `events` in the current schema is a partitioned table (PostgreSQL after migration 0007)."""
    if conn.dialect.name != "postgresql":
        return False
    kind = conn.execute(text("SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass('events')")).scalar()
    return kind == "p"


def event_partitions(conn: Connection) -> list[EventPartition]:
    """Every leaf partition of `events`, by class then day (DEFAULT last within its class)."""
    if not is_partitioned(conn):
        return []
    # Leaves are two levels down: events -> events_<class> -> events_<class>_<day>. Read from the catalog
    # rather than pg_partition_tree(), which locks every partition until the transaction ends: an ingest
    # holding those locks while waiting for PARTITION_LOCK would deadlock with a partition creator.
    rows = conn.execute(text(LEAVES)).scalars()
    out: list[EventPartition] = []
    for name in rows:
        if m := DAY_NAME.match(name):
            d = m.group(2)
            out.append(EventPartition(name, m.group(1), date(int(d[:4]), int(d[4:6]), int(d[6:]))))
        elif m := DEFAULT_NAME.match(name):
            out.append(EventPartition(name, m.group(1), None))
    out.sort(key=lambda p: (p.retention_class, p.day is None, p.day or date.min))
    return out


def partition_name(retention_class: str, day: date) -> str:
    return f"events_{retention_class}_{day:%Y%m%d}"


def drop_event_partition(conn: Connection, name: str) -> None:
    """Drop one daily partition (all its rows) in the caller's transaction; refuses DEFAULT and strangers."""
    day_name = DAY_NAME.match(name)
    if day_name is None:
        raise ValueError(f"{name!r} is not a daily events partition (events_<hit|cleared>_YYYYMMDD)")
    if name not in {p.name for p in event_partitions(conn)}:
        raise LookupError(f"no events partition named {name!r}")
    # Detach first: dropping an attached partition would lock the whole of `events` for longer.
    parent = f"events_{day_name.group(1)}"
    conn.exec_driver_sql(f"ALTER TABLE {parent} DETACH PARTITION {name}")
    conn.exec_driver_sql(f"DROP TABLE {name}")


def ensure_event_partitions(conn: Connection, days: Iterable[date | str]) -> list[str]:
    """Create the daily partitions (both classes) of `days` and of the day after each, where missing;
    returns the names created. A day whose rows already sit in the DEFAULT partition is left there (a
    partition cannot be created over rows the DEFAULT holds) and keeps being stored there."""
    wanted: set[date] = set()
    for d in days:
        day = date.fromisoformat(d) if isinstance(d, str) else d
        wanted.update((day, day + timedelta(days=1)))  # one day ahead, so midnight never waits on DDL
    if not wanted or not is_partitioned(conn):
        return []
    have = {p.name for p in event_partitions(conn)}
    missing = [(c, d) for c in RETENTION_CLASSES for d in sorted(wanted) if partition_name(c, d) not in have]
    if not missing:
        return []
    serialise_writers(conn, PARTITION_LOCK)
    have = {p.name for p in event_partitions(conn)}  # again, now that creators take turns
    created: list[str] = []
    for cls, day in missing:
        name = partition_name(cls, day)
        if name in have:
            continue
        lo, hi = day.isoformat(), (day + timedelta(days=1)).isoformat()
        parked = conn.execute(
            text(f"SELECT 1 FROM events_{cls}_default WHERE day >= :lo AND day < :hi LIMIT 1"),
            {"lo": lo, "hi": hi},
        ).first()
        if parked is not None:
            continue
        conn.exec_driver_sql(
            f"CREATE TABLE {name} PARTITION OF events_{cls} FOR VALUES FROM ('{lo}') TO ('{hi}')"
        )
        created.append(name)
    return created
