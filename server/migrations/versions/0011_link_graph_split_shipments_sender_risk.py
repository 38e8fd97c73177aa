"""link graph, split-shipment clusters and sender risk"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.String(length=40)
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("senders") as batch:
        batch.add_column(sa.Column("customer_token", sa.String(length=64), nullable=True))
    with op.batch_alter_table("manifests") as batch:
        batch.add_column(sa.Column("destination_token", sa.String(length=64), nullable=True))
    op.create_index("ix_senders_address", "senders", ["address_token"])
    op.create_index("ix_senders_customer", "senders", ["customer_token"])
    op.create_index("ix_manifests_destination", "manifests", ["destination_token"])
    op.create_table(
        "link_edges",
        sa.Column("parcel_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("token", sa.String(length=128), nullable=False),
        sa.Column("sender_token", sa.String(length=64), nullable=True),
        sa.Column("at", TS, nullable=False),
        sa.PrimaryKeyConstraint("parcel_id", "kind", "token"),
    )
    op.create_index("ix_link_edges_node", "link_edges", ["kind", "token"])
    op.create_table(
        "link_clusters",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("cluster_id", sa.String(length=36), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("parcels", sa.Integer(), nullable=False),
        sa.Column("senders", sa.Integer(), nullable=False),
        sa.Column("first_at", TS, nullable=False),
        sa.Column("last_at", TS, nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("explain", sa.Text(), nullable=False),
        sa.Column("review_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("cluster_id"),
    )
    op.create_table(
        "link_cluster_members",
        sa.Column("cluster_id", sa.String(length=36), nullable=False),
        sa.Column("parcel_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("cluster_id", "parcel_id"),
    )
    op.create_index("ix_link_cluster_members_parcel", "link_cluster_members", ["parcel_id"])
    op.create_table(
        "sender_risks",
        sa.Column("sender_token", sa.String(length=64), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("contributions", sa.Text(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("sender_token"),
    )


def downgrade() -> None:
    op.drop_table("sender_risks")
    op.drop_index("ix_link_cluster_members_parcel", table_name="link_cluster_members")
    op.drop_table("link_cluster_members")
    op.drop_table("link_clusters")
    op.drop_index("ix_link_edges_node", table_name="link_edges")
    op.drop_table("link_edges")
    op.drop_index("ix_manifests_destination", table_name="manifests")
    op.drop_index("ix_senders_customer", table_name="senders")
    op.drop_index("ix_senders_address", table_name="senders")
    with op.batch_alter_table("manifests") as batch:
        batch.drop_column("destination_token")
    with op.batch_alter_table("senders") as batch:
        batch.drop_column("customer_token")
