"""gallery references know their image kind"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Edges compare a reference only with images of the same kind (a photo never with an X-ray).
    with op.batch_alter_table("gallery", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("gallery", schema=None) as batch_op:
        batch_op.drop_column("kind")
