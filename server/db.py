"""Engine construction for SQLite and PostgreSQL, programmatic Alembic migrations, and UTC time helpers."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain `postgresql://` URLs; leave everything else alone."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def make_engine(url: str) -> Engine:
    """An engine tuned for the server: WAL and immediate write transactions on SQLite."""
    url = normalise_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _tune_sqlite(engine)
        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when a transaction begins (see _on_begin).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A deferred transaction that reads and then writes can fail with "database is locked"
        # without waiting; IMMEDIATE takes the write lock up front and honours busy_timeout.
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """The engine plus read/write transaction helpers; one per app."""

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url)
        self.dialect = self.engine.dialect.name

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn = conn.execution_options(sqlite_begin="DEFERRED")
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        self.engine.dispose()


# Advisory lock keys: writers of these sequences take turns on PostgreSQL, so that sequence order is
# commit order and a reader resuming "after N" never skips a row committed late.
ORDER_LOCK = 7_482_010
REGISTRY_LOCK = 7_482_011
# Lock space (first half of a two-part key) of the login limit, keyed by user name and by address.
LOGIN_LOCK_SPACE = 7_482_012
# Lock space of ingest, keyed by station: one batch per station at a time across every server process.
INGEST_LOCK_SPACE = 7_482_014


def serialise_writers(conn: Connection, key: int) -> None:
    """Hold `key` until this transaction ends (PostgreSQL); SQLite already has one writer at a time."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({int(key)})")


def _key32(name: str) -> int:
    """A stable signed 32-bit key for a name (the second half of a two-part advisory lock)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big", signed=True)


def serialise_on_names(conn: Connection, space: int, names: list[str]) -> None:
    """Hold a lock per name until this transaction ends (PostgreSQL), so that writers on the same
    name take turns while writers on other names do not wait. Locks are taken in key order so two
    writers sharing two names cannot deadlock. SQLite needs nothing: its write transactions begin
    IMMEDIATE and so already run one at a time."""
    if conn.dialect.name != "postgresql":
        return
    # The two-part form keeps these keys apart from the single-key sequence locks above.
    for key in sorted({_key32(n) for n in names}):
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({int(space)}, {key})")


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


def migrate(url: str, revision: str = "head") -> None:
    """Bring the database at `url` up to `revision`."""
    log.info("applying migrations up to %s", revision)
    command.upgrade(alembic_config(url), revision)


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime) -> str:
    """Stored form of a time: UTC ISO 8601 with microseconds, so text order is time order."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value)
