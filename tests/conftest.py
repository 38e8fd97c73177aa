"""Shared fixtures: the repository root, the shared sample data and the PostgreSQL switch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def pg_url() -> str:
    """URL of the PostgreSQL server for the engine-parametrised tests.

    Without PARCELGUARD_TEST_PG these cases are skipped (and say so); with
    PARCELGUARD_REQUIRE_PG=1, as in CI, a missing or unreachable server is a failure.
    """
    url = os.environ.get("PARCELGUARD_TEST_PG", "")
    required = os.environ.get("PARCELGUARD_REQUIRE_PG") == "1"
    if not url:
        if required:
            pytest.fail("PARCELGUARD_REQUIRE_PG=1 but PARCELGUARD_TEST_PG is not set")
        pytest.skip("PostgreSQL cases skipped: set PARCELGUARD_TEST_PG to run them")
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # any driver error means the server is not usable
        if required:
            pytest.fail(f"PostgreSQL required but unreachable at {url}: {exc}")
        pytest.skip(f"PostgreSQL cases skipped: {url} unreachable ({exc})")
    return url
