"""The desk's link pictures in Chromium: a consolidated split-shipment item, its cluster, a neighbourhood."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server import admin
from server.app import create_app
from server.db import Database, migrate
from server.links.job import run_links
from server.settings import ServerSettings
from tests.server.conftest import PASSWORD, Server, make_settings, serving
from tests.server.test_links import ants
from tests.server.test_web import check_page


@pytest.fixture
def linked(tmp_path: Path) -> Iterator[tuple[ServerSettings, str, dict[str, str]]]:
    """A live server whose database holds one split shipment found by the links job."""
    database = f"sqlite:///{tmp_path / 'server.db'}"
    migrate(database)
    settings = make_settings(database)
    admin.create_user(settings, "root", PASSWORD, "admin", ["*"])
    admin.create_user(settings, "olga", PASSWORD, "officer", ["site1"])
    root = {"Authorization": f"Bearer {admin.create_api_token(settings, 'root')}"}
    stations = [
        admin.register_station(settings, s, "site1", f"line{i}") for i, s in enumerate(("st-a", "st-b"))
    ]
    with TestClient(create_app(settings)) as client:
        a, b = ({"Authorization": f"Bearer {t}"} for t in stations)
        tokens = ants(Server(settings, client, root, a, b, {}))
    db = Database(database)
    assert run_links(db, settings)["opened"] == 1
    db.dispose()
    with serving(settings) as url:
        yield settings, url, tokens


@pytest.mark.browser
def test_cluster_and_neighbourhood_pictures(linked: Any, chromium: Any, screenshots: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _settings, url, tokens = linked
    wait = WebDriverWait(chromium, 15)
    chromium.set_window_size(1280, 1400)
    chromium.get(f"{url}/login?lang=en")
    chromium.find_element(By.ID, "username").send_keys("olga")
    chromium.find_element(By.ID, "password").send_keys(PASSWORD)
    chromium.find_element(By.ID, "password").submit()
    wait.until(lambda d: d.current_url.endswith("/desk"))
    # The queue holds one consolidated item for the six parcels, not six.
    rows = chromium.find_elements(By.CSS_SELECTOR, "table.queue tbody tr")
    assert len(rows) == 1 and "Suspected split shipment" in rows[0].text
    rows[0].find_element(By.TAG_NAME, "a").click()
    wait.until(lambda d: d.find_elements(By.ID, "open-cluster"))
    chromium.find_element(By.ID, "open-cluster").click()
    wait.until(lambda d: "/desk/links/clusters/" in d.current_url)
    check_page(chromium)
    senders = chromium.find_elements(By.CSS_SELECTOR, "svg g.node-sender")
    assert len(senders) == 3
    assert len(chromium.find_elements(By.CSS_SELECTOR, "table.grid tbody tr")) == 6
    chromium.save_screenshot(str(screenshots / "links-cluster.png"))
    # A sender node of the picture opens that sender's neighbourhood.
    senders[0].find_element(By.TAG_NAME, "a").click()
    wait.until(lambda d: "/desk/links/senders/" in d.current_url)
    check_page(chromium)
    assert chromium.current_url.rsplit("/", 1)[-1] in tokens.values()
    assert len(chromium.find_elements(By.CSS_SELECTOR, "svg g.node-sender")) >= 3
    chromium.get(chromium.current_url + "?lang=zh")
    assert "关联关系" in chromium.find_element(By.TAG_NAME, "h1").text
    chromium.save_screenshot(str(screenshots / "links-neighbourhood-zh.png"))
