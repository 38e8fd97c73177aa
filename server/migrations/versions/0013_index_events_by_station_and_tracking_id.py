"""index events by station and tracking id: a divert outcome is counted on its pull's day"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_events_station_tracking", "events", ["station_id", "tracking_id"])


def downgrade() -> None:
    op.drop_index("ix_events_station_tracking", table_name="events")
