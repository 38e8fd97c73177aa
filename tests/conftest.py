"""Shared fixtures: the repository root, the shared sample data and the PostgreSQL switch."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
NO_BROWSER = not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists())
# The flags keep a headless Chromium from reaching out to the network at start.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    "--window-size=1400,1000",
)


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Any]:
    """Debian's headless Chromium through chromedriver; downloads land in `driver.downloads`."""
    if NO_BROWSER:
        pytest.skip("browser tests need Debian's chromium and chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        opts.add_argument(flag)
    downloads = tmp_path / "downloads"
    downloads.mkdir(exist_ok=True)
    opts.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    driver.downloads = downloads  # type: ignore[attr-defined]
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshots(repo_root: Path) -> Path:
    """Where browser tests save what each page looked like (git-ignored)."""
    out = repo_root / "artifacts" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out
