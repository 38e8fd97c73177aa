"""referrals to authorities: the package sent and the reply received"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "referrals",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("item_ids", sa.Text(), nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=True),
        sa.Column("sites", sa.Text(), nullable=False),
        sa.Column("authority", sa.String(length=32), nullable=False),
        sa.Column("case_reference", sa.String(length=200), nullable=False),
        sa.Column("legal_basis", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("key_sha256", sa.String(length=64), nullable=False),
        sa.Column("package", sa.LargeBinary(), nullable=False),
        sa.Column("package_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.String(length=40), nullable=False),
        sa.Column("receipt_ref", sa.String(length=200), nullable=True),
        sa.Column("received_at", sa.String(length=40), nullable=True),
        sa.Column("authority_case_number", sa.String(length=200), nullable=True),
        sa.Column("reply_by", sa.String(length=64), nullable=True),
        sa.Column("reply_at", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_referrals_case", "referrals", ["case_id"])


def downgrade() -> None:
    op.drop_index("ix_referrals_case", table_name="referrals")
    op.drop_table("referrals")
