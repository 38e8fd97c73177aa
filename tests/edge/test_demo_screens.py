"""The three screens on the demo's own data, in headless Chromium: terminal, review desk, report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge.demo import DemoHandles, DemoOptions, run_demo
from tests.server.test_web import browser_log_in


@pytest.mark.slow
@pytest.mark.browser
def test_screens_on_the_demo(tmp_path: Path, chromium: Any, screenshots: Path) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(chromium, 20, ignored_exceptions=(StaleElementReferenceException,))
    seen: dict[str, Any] = {}

    def log_in(url: str, user: str, password: str) -> None:
        browser_log_in(chromium, wait, url, user, "en", password)

    def look(demo: DemoHandles) -> None:
        url, logins = demo.server_url, demo.logins
        # Operator terminal of station A: the parcels it screened, from its own database, after login.
        chromium.get(f"{demo.terminals[0]}/?lang=en")
        operator, pin = demo.terminal_login
        assert pin.isdigit() and len(pin) == 6
        wait.until(ec.presence_of_element_located((By.ID, "pin")))
        chromium.find_element(By.ID, "operator").send_keys(operator)
        chromium.find_element(By.ID, "pin").send_keys(pin)
        chromium.find_element(By.ID, "pin").submit()
        wait.until(ec.text_to_be_present_in_element((By.ID, "operator"), operator))
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#parcel-rows tr")) >= 10)
        chromium.save_screenshot(str(screenshots / "demo-terminal-station-a.png"))

        # Officer: the queue holds the demo's hits; a pulled parcel shows its X-ray and label photo.
        log_in(url, "demo-officer", logins["demo-officer"])
        chromium.get(f"{url}/desk?lang=en")
        links = wait.until(ec.presence_of_all_elements_located((By.CSS_SELECTOR, "a[href^='/desk/items/']")))
        seen["queue"] = len(links)
        chromium.save_screenshot(str(screenshots / "demo-desk-queue.png"))
        links[0].click()
        wait.until(lambda d: d.find_element(By.ID, "xray-viewer").get_attribute("data-ready") == "true")
        wait.until(lambda d: d.execute_script("return document.getElementById('photo').naturalWidth") > 0)
        chromium.find_element(By.ID, "reveal-reason").send_keys("demo check of the reveal audit")
        chromium.find_element(By.ID, "reveal-form").find_element(By.TAG_NAME, "button").click()
        # The full record shows at once and stays; opened again, the item lists the reveal in its audit trail.
        wait.until(lambda d: "*" not in d.find_element(By.ID, "sender-id").text)
        seen["revealed_id"] = chromium.find_element(By.ID, "sender-id").text
        chromium.execute_script("window.scrollTo(0, 0)")
        chromium.save_screenshot(str(screenshots / "demo-desk-hit.png"))
        chromium.refresh()
        wait.until(ec.text_to_be_present_in_element((By.ID, "audit"), "demo check of the reveal audit"))

        # Supervisor: the day's figures are the ones the demo summary reported.
        log_in(url, "demo-supervisor", logins["demo-supervisor"])
        chromium.get(f"{url}/report?lang=en")
        seen["parcels"] = wait.until(ec.presence_of_element_located((By.ID, "fig-parcels"))).text
        chromium.save_screenshot(str(screenshots / "demo-report.png"))

    summary = run_demo(
        DemoOptions(parcels=60, port=0, workdir=tmp_path, classifier=False, quiet=True, on_ready=look)
    )
    assert summary["consistent"]
    assert seen["queue"] >= 1
    # The full 18-character ID number, shown only after the reveal (its check digit may be X).
    assert len(seen["revealed_id"]) == 18 and seen["revealed_id"][:17].isdigit()
    assert seen["parcels"] == str(summary["parcels"])
