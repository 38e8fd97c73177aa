"""cases, rights holders, notifications, samples, disposals and labelled examples"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "case_items",
        sa.Column("case_id", sa.BigInteger(), nullable=False),
        sa.Column("review_id", sa.BigInteger(), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("added_by", sa.String(length=64), nullable=False),
        sa.Column("added_at", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("case_id", "review_id"),
        sa.UniqueConstraint("review_id"),
    )
    op.create_table(
        "case_notifications",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("case_id", sa.BigInteger(), nullable=False),
        sa.Column("rights_holder_id", sa.BigInteger(), nullable=False),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=True),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.String(length=40), nullable=False),
        sa.Column("delivered_at", sa.String(length=40), nullable=True),
        sa.Column("send_error", sa.String(length=500), nullable=True),
        sa.Column("reply_due_at", sa.String(length=40), nullable=True),
        sa.Column("reply", sa.String(length=16), nullable=True),
        sa.Column("reply_at", sa.String(length=40), nullable=True),
        sa.Column("reply_note", sa.Text(), nullable=True),
        sa.Column("reply_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("case_notifications", schema=None) as batch_op:
        batch_op.create_index("ix_case_notifications_case", ["case_id"], unique=False)

    op.create_table(
        "case_samples",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("case_id", sa.BigInteger(), nullable=False),
        sa.Column("review_id", sa.BigInteger(), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("released_to", sa.String(length=200), nullable=False),
        sa.Column("receipt_reference", sa.String(length=128), nullable=False),
        sa.Column("released_by", sa.String(length=64), nullable=False),
        sa.Column("released_at", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("case_samples", schema=None) as batch_op:
        batch_op.create_index("ix_case_samples_case", ["case_id"], unique=False)

    op.create_table(
        "cases",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("state_since", sa.String(length=40), nullable=False),
        sa.Column("due_key", sa.String(length=32), nullable=True),
        sa.Column("due_at", sa.String(length=40), nullable=True),
        sa.Column("rights_holder_id", sa.BigInteger(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.String(length=40), nullable=False),
        sa.Column("closed_at", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index("ix_cases_site", ["site_id"], unique=False)
        batch_op.create_index("ix_cases_state_due", ["state", "due_at"], unique=False)

    op.create_table(
        "disposals",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("case_id", sa.BigInteger(), nullable=False),
        sa.Column("review_id", sa.BigInteger(), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("place", sa.String(length=300), nullable=False),
        sa.Column("done_on", sa.String(length=10), nullable=False),
        sa.Column("witnesses", sa.Text(), nullable=False),
        sa.Column("photos", sa.Text(), nullable=False),
        sa.Column("certificate_ref", sa.String(length=128), nullable=False),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("review_id"),
    )
    with op.batch_alter_table("disposals", schema=None) as batch_op:
        batch_op.create_index("ix_disposals_case", ["case_id"], unique=False)

    op.create_table(
        "labelled_examples",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("image_sha256", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("case_id", sa.BigInteger(), nullable=True),
        sa.Column("review_id", sa.BigInteger(), nullable=True),
        sa.Column("parcel", sa.String(length=200), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("image_sha256", "source", "label", name="uq_labelled_image_source_label"),
    )
    with op.batch_alter_table("labelled_examples", schema=None) as batch_op:
        batch_op.create_index("ix_labelled_kind_label", ["kind", "label"], unique=False)

    op.create_table(
        "rights_holders",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("brand", sa.String(length=128), nullable=False),
        sa.Column("contact_name", sa.String(length=128), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("address", sa.String(length=500), nullable=False),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("trademarks", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.String(length=40), nullable=False),
        sa.Column("updated_at", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("brand"),
    )


def downgrade() -> None:
    op.drop_table("rights_holders")
    with op.batch_alter_table("labelled_examples", schema=None) as batch_op:
        batch_op.drop_index("ix_labelled_kind_label")

    op.drop_table("labelled_examples")
    with op.batch_alter_table("disposals", schema=None) as batch_op:
        batch_op.drop_index("ix_disposals_case")

    op.drop_table("disposals")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_state_due")
        batch_op.drop_index("ix_cases_site")

    op.drop_table("cases")
    with op.batch_alter_table("case_samples", schema=None) as batch_op:
        batch_op.drop_index("ix_case_samples_case")

    op.drop_table("case_samples")
    with op.batch_alter_table("case_notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_case_notifications_case")

    op.drop_table("case_notifications")
    op.drop_table("case_items")
