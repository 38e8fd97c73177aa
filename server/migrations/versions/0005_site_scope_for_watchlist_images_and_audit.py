"""site scope for watchlist entries, evidence images and audit entries"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Entries made before scopes existed applied to every site: they stay network-wide.
    with op.batch_alter_table("watchlist", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scope", sa.String(length=8), nullable=False, server_default="network"))
        batch_op.add_column(sa.Column("scope_ref", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_watchlist_scope", ["scope", "scope_ref"], unique=False)
    op.create_table(
        "image_sites",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("sha256", "site_id"),
    )
    op.create_table(
        "audit_scope",
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("n", "site_id"),
    )
    op.create_index("ix_audit_scope_site", "audit_scope", ["site_id"], unique=False)
    _backfill(op.get_bind())


def _backfill(conn: sa.Connection) -> None:
    """Attribute what already exists where the site is known; the rest stays visible to all-sites holders."""
    meta = sa.MetaData()
    events = sa.Table("events", meta, autoload_with=conn)
    stations = sa.Table("stations", meta, autoload_with=conn)
    reviews = sa.Table("reviews", meta, autoload_with=conn)
    orders = sa.Table("orders", meta, autoload_with=conn)
    audit = sa.Table("audit_log", meta, autoload_with=conn)
    image_sites = sa.Table("image_sites", meta, autoload_with=conn)
    audit_scope = sa.Table("audit_scope", meta, autoload_with=conn)
    site_of = {
        r.station_id: r.site_id for r in conn.execute(sa.select(stations.c.station_id, stations.c.site_id))
    }
    pairs: set[tuple[str, str]] = set()
    query = sa.select(events.c.station_id, events.c.payload).where(events.c.type == "parcel")
    for row in conn.execute(query):
        site = site_of.get(row.station_id)
        if site is None:
            continue
        for img in json.loads(row.payload).get("images") or []:
            if isinstance(img, dict) and isinstance(img.get("sha256"), str):
                pairs.add((img["sha256"], site))
    if pairs:
        conn.execute(image_sites.insert(), [{"sha256": s, "site_id": site} for s, site in sorted(pairs)])
    scoped: set[tuple[int, str]] = set()
    review_site = {
        f"review:{r.id}": r.site_id for r in conn.execute(sa.select(reviews.c.id, reviews.c.site_id))
    }
    order_site = {
        r.order_id: r.site_id or "*" for r in conn.execute(sa.select(orders.c.order_id, orders.c.site_id))
    }
    for entry in conn.execute(sa.select(audit.c.n, audit.c.action, audit.c.target)):
        n, action, target = int(entry.n), str(entry.action), str(entry.target)
        if target in review_site:
            scoped.add((n, review_site[target]))
        elif action.startswith("station_") and target in site_of:
            scoped.add((n, site_of[target]))
        elif action.startswith("order_") and target in order_site:
            scoped.add((n, order_site[target]))
    if scoped:
        conn.execute(audit_scope.insert(), [{"n": n, "site_id": site} for n, site in sorted(scoped)])


def downgrade() -> None:
    op.drop_index("ix_audit_scope_site", table_name="audit_scope")
    op.drop_table("audit_scope")
    op.drop_table("image_sites")
    with op.batch_alter_table("watchlist", schema=None) as batch_op:
        batch_op.drop_index("ix_watchlist_scope")
        batch_op.drop_column("scope_ref")
        batch_op.drop_column("scope")
