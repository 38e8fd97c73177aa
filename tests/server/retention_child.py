"""A retention run for the kill -9 test: python -m tests.server.retention_child DATABASE_URL DAYS_AHEAD."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

from server.db import Database
from server.retention_run import apply_retention
from server.settings import RetentionConfig, ServerSettings


def main(url: str, days_ahead: int) -> None:
    # Secrets come from the environment, as for the server.
    settings = ServerSettings(database_url=url, retention=RetentionConfig(chunk_rows=100))
    later = datetime.now(UTC) + timedelta(days=days_ahead)
    apply_retention(Database(url), settings, "killed-run", clock=lambda: later)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
