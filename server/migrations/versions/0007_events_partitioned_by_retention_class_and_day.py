"""events carry their site and retention class; on PostgreSQL they are partitioned by class and day"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    "id, key, station_id, boot_id, seq, type, at, day, waybill, tracking_id, decision, payload_hash, "
    "payload, received_at"
)
# Same rule as server.partitions.retention_class_of, written out so this revision never changes meaning.
CLASS_OF = "CASE WHEN e.type = 'parcel' AND e.decision IN ('HOLD', 'PULL') THEN 'hit' ELSE 'cleared' END"
SITE_OF = "COALESCE((SELECT s.site_id FROM stations s WHERE s.station_id = e.station_id), '')"
INDEXES = (
    ("ix_events_day_type", ["day", "type", "station_id"], False),
    ("ix_events_station_seq", ["station_id", "boot_id", "seq"], False),
    ("ix_events_waybill", ["waybill"], False),
)


def _plain_events(name: str, new: bool) -> None:
    extra = [
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("retention_class", sa.String(8), nullable=False),
    ]
    op.create_table(
        name,
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("station_id", sa.String(length=64), nullable=False),
        sa.Column("boot_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("at", sa.String(length=40), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("waybill", sa.String(length=64), nullable=True),
        sa.Column("tracking_id", sa.String(length=64), nullable=True),
        sa.Column("decision", sa.String(length=8), nullable=True),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("received_at", sa.String(length=40), nullable=False),
        *(extra if new else []),
        sa.PrimaryKeyConstraint("id"),
        *([] if new else [sa.UniqueConstraint("key")]),
    )


def _create_indexes() -> None:
    for name, cols, unique in INDEXES:
        op.create_index(name, "events", cols, unique=unique)
    # Unique keys of a partitioned table must hold the partition key; idempotency by `key` alone is kept
    # by ingest (one writer per station at a time, set-based check), this index is the backstop.
    op.create_index("ix_events_key", "events", ["key", "site_id", "retention_class", "day"], unique=True)


def upgrade() -> None:
    conn = op.get_bind()
    for name, _cols, _u in INDEXES:
        op.drop_index(name, table_name="events")
    op.rename_table("events", "events_unpartitioned")
    if conn.dialect.name == "postgresql":
        # Constraint names are per schema: the new table takes these.
        op.execute(
            "ALTER TABLE events_unpartitioned RENAME CONSTRAINT events_pkey TO events_unpartitioned_pkey"
        )
        op.execute(
            "ALTER TABLE events_unpartitioned RENAME CONSTRAINT events_key_key TO events_unpartitioned_key"
        )
        _partitioned_events(conn)
    else:
        _plain_events("events", new=True)
    op.execute(
        f"INSERT INTO events ({COLUMNS}, site_id, retention_class) "
        f"SELECT {COLUMNS}, {SITE_OF}, {CLASS_OF} FROM events_unpartitioned e"
    )
    if conn.dialect.name == "postgresql":
        op.execute("ALTER SEQUENCE events_id_seq OWNED BY events.id")
    op.drop_table("events_unpartitioned")
    _create_indexes()


def _partitioned_events(conn: sa.Connection) -> None:
    """events -> LIST(retention_class) -> events_hit, events_cleared -> RANGE(day) -> a day each + DEFAULT."""
    op.execute(
        "CREATE TABLE events ("
        " id BIGINT NOT NULL DEFAULT nextval('events_id_seq'),"
        " key VARCHAR(200) NOT NULL, station_id VARCHAR(64) NOT NULL, boot_id VARCHAR(64) NOT NULL,"
        " seq BIGINT NOT NULL, type VARCHAR(16) NOT NULL, at VARCHAR(40) NOT NULL, day VARCHAR(10) NOT NULL,"
        " waybill VARCHAR(64), tracking_id VARCHAR(64), decision VARCHAR(8),"
        " payload_hash VARCHAR(64) NOT NULL, payload TEXT NOT NULL, received_at VARCHAR(40) NOT NULL,"
        " site_id VARCHAR(64) NOT NULL, retention_class VARCHAR(8) NOT NULL,"
        " PRIMARY KEY (id, retention_class, day)"
        ") PARTITION BY LIST (retention_class)"
    )
    for cls in ("hit", "cleared"):
        op.execute(
            f"CREATE TABLE events_{cls} PARTITION OF events FOR VALUES IN ('{cls}') PARTITION BY RANGE (day)"
        )
        op.execute(f"CREATE TABLE events_{cls}_default PARTITION OF events_{cls} DEFAULT")
    days = conn.execute(sa.text("SELECT DISTINCT day FROM events_unpartitioned ORDER BY day")).scalars().all()
    for day in days:
        start = str(day)
        end = conn.execute(
            sa.text("SELECT to_char(CAST(:d AS date) + 1, 'YYYY-MM-DD')"), {"d": start}
        ).scalar()
        for cls in ("hit", "cleared"):
            op.execute(
                f"CREATE TABLE events_{cls}_{start.replace('-', '')} PARTITION OF events_{cls} "
                f"FOR VALUES FROM ('{start}') TO ('{end}')"
            )


def downgrade() -> None:
    conn = op.get_bind()
    op.drop_index("ix_events_key", table_name="events")
    for name, _cols, _u in INDEXES:
        op.drop_index(name, table_name="events")
    op.rename_table("events", "events_partitioned")
    if conn.dialect.name == "postgresql":
        op.execute("ALTER TABLE events_partitioned RENAME CONSTRAINT events_pkey TO events_partitioned_pkey")
    _plain_events("events", new=False)
    if conn.dialect.name == "postgresql":
        op.execute("ALTER TABLE events ALTER COLUMN id SET DEFAULT nextval('events_id_seq')")
    op.execute(f"INSERT INTO events ({COLUMNS}) SELECT {COLUMNS} FROM events_partitioned")
    if conn.dialect.name == "postgresql":
        op.execute("ALTER SEQUENCE events_id_seq OWNED BY events.id")
        op.execute("DROP SEQUENCE IF EXISTS events_id_seq1")
    op.drop_table("events_partitioned")
    for name, cols, unique in INDEXES:
        op.create_index(name, "events", cols, unique=unique)
