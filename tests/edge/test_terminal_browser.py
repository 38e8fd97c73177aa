"""Operator terminal in headless Chromium: log in, a parcel arrives, the alert sounds, P and 2 confirm it."""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge.agent import EdgeAgent
from edge.config import (
    DevicesConfig,
    EdgeConfig,
    SorterConfig,
    StationConfig,
    TerminalConfig,
    TerminalOperator,
)
from edge.terminal import TerminalServer
from scanner_drivers.sorter.sim import SimulatedSorter
from tests.server.test_page_words import english_words

W_GOOD, W_BLACK = "EE123456785CN", "RR473124829GB"

pytestmark = [pytest.mark.browser]

# Relative luminance contrast (WCAG 2) of an element's text against its nearest opaque background.
CONTRAST_JS = """
function lum(c) {
  const m = c.match(/[\\d.]+/g).map(Number);
  const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(m[0]) + 0.7152 * f(m[1]) + 0.0722 * f(m[2]);
}
function bg(el) {
  while (el) {
    const c = getComputedStyle(el).backgroundColor;
    const m = c.match(/[\\d.]+/g);
    if (m && (m.length < 4 || Number(m[3]) > 0.9)) return c;
    el = el.parentElement;
  }
  return "rgb(255,255,255)";
}
const out = [];
for (const el of document.querySelectorAll(arguments[0])) {
  if (!el.offsetParent) continue;
  const a = lum(getComputedStyle(el).color), b = lum(bg(el));
  out.push([el.textContent.trim().slice(0, 30), (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)]);
}
return out;
"""

UNLABELLED_JS = """
const bad = [];
for (const el of document.querySelectorAll("input, select, textarea")) {
  const named = el.labels.length || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby");
  if (!named) bad.push(el.id || el.name || el.outerHTML.slice(0, 60));
}
for (const el of document.querySelectorAll("button, a[href]")) {
  if (!(el.textContent.trim() || el.getAttribute("aria-label"))) bad.push(el.outerHTML.slice(0, 60));
}
return bad;
"""


@pytest.fixture
def browser(chromium: Any) -> Any:
    return chromium


@pytest.fixture
def shots(screenshots: Path) -> Path:
    return screenshots


def build_agent(
    tmp_path: Path, sorter_url: str, seed: Callable[..., None], operators: list[TerminalOperator]
) -> EdgeAgent:
    replay = tmp_path / "reads.jsonl"
    lines = [{"codes": [W_GOOD]}, {"codes": []}, {"codes": [W_BLACK]}]
    replay.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    cfg = EdgeConfig(
        station=StationConfig(
            id="SZX-HUB1-L3-XR1", site_id="SZX-HUB1", line_id="L3", data_dir=tmp_path / "e"
        ),
        devices=DevicesConfig(scanner=f"fake://{replay}?speed=0", camera="images:///var/spool/no-camera"),
        sorter=SorterConfig(url=sorter_url, deadline_s=2.0),
        terminal=TerminalConfig(language="zh", port=0, operators=operators),
    )
    agent = EdgeAgent(cfg)
    seed(agent.store, black_declared="footwear_clothing")
    return agent


def log_in_page(browser: Any, wait: Any, url: str, operator: str, pin: str) -> None:
    """Types the operator id and PIN on the login page and waits for the terminal."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    wait.until(ec.presence_of_element_located((By.ID, "pin")))
    field = browser.find_element(By.ID, "operator")
    field.clear()
    field.send_keys(operator)
    browser.find_element(By.ID, "pin").send_keys(pin)
    browser.find_element(By.ID, "pin").submit()
    wait.until(ec.presence_of_element_located((By.ID, "parcel-rows")))


def test_parcel_arrives_alert_sounds_and_pull_is_confirmed_by_keys(
    tmp_path: Path,
    browser: Any,
    shots: Path,
    seed_registry: Callable[..., None],
    terminal_operators: list[TerminalOperator],
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    sorter = SimulatedSorter()
    sorter.start()
    agent = build_agent(tmp_path, sorter.url, seed_registry, terminal_operators)
    server = TerminalServer(agent, "127.0.0.1", 0, confirm_within_s=45)
    server.start()
    from selenium.common.exceptions import StaleElementReferenceException

    wait = WebDriverWait(browser, 15, ignored_exceptions=(StaleElementReferenceException,))
    try:
        browser.get(server.url + "/?lang=en")
        # No session: the login page, in the chosen language. A wrong PIN says so and stays there.
        wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h2"), "Operator login"))
        assert browser.execute_script(UNLABELLED_JS) == []
        browser.find_element(By.ID, "operator").send_keys("op7")
        browser.find_element(By.ID, "pin").send_keys("0000")
        browser.find_element(By.ID, "pin").submit()
        err = wait.until(ec.visibility_of_element_located((By.ID, "error")))
        assert "Wrong operator ID or PIN" in err.text and "/login" in browser.current_url
        browser.save_screenshot(str(shots / "terminal-login.png"))
        log_in_page(browser, wait, server.url, "op7", "4821")
        assert browser.find_element(By.ID, "operator").text == "op7"
        # The page is live before any parcel: the health panel comes from the stream.
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#health li[data-device=scanner]")))
        assert browser.find_element(By.ID, "no-parcels").is_displayed()
        agent.start()

        alert = wait.until(ec.visibility_of_element_located((By.ID, "alert")))
        wait.until(ec.text_to_be_present_in_element((By.ID, "alert-waybill"), W_BLACK))
        assert "Sender blacklisted" in alert.text and "P1" in browser.find_element(By.ID, "alert-chute").text
        assert browser.find_element(By.ID, "alert-countdown").text.endswith("s")
        wait.until(lambda d: int(d.find_element(By.TAG_NAME, "body").get_attribute("data-beeps") or 0) >= 1)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#parcel-rows tr")) == 3)
        rows = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#parcel-rows tr")]
        assert W_BLACK in rows[0] and "PULL" in rows[0] and "no waybill" in rows[1] and W_GOOD in rows[2]
        # The divert's outcome arrives after the parcel (the controller confirms later) and updates its row.
        first_row = (By.CSS_SELECTOR, "#parcel-rows tr:first-child")
        wait.until(ec.text_to_be_present_in_element(first_row, "diverted → P1"))
        # The full-width alert really spans the screen.
        assert alert.size["width"] >= browser.execute_script("return window.innerWidth") - 20
        browser.save_screenshot(str(shots / "terminal-pull-alert.png"))

        # Accessibility basics while the alert is up: names, contrast, a visible focus ring.
        assert browser.execute_script(UNLABELLED_JS) == []
        for text, ratio in browser.execute_script(
            CONTRAST_JS, "#alert-waybill, #alert-title, .chip, .parcels td, .health .state, .keys span"
        ):
            assert ratio >= 4.5, f"contrast {ratio:.2f} too low for {text!r}"
        focused = browser.switch_to.active_element
        assert focused.get_attribute("data-action") == "pulled"
        assert browser.execute_script("return getComputedStyle(arguments[0]).outlineStyle", focused) != "none"

        # One key: P = pulled; the open-box step follows; 2 = counterfeit.
        browser.find_element(By.TAG_NAME, "body").send_keys("p")
        wait.until(lambda d: "pulled" in d.find_element(By.ID, "alert").get_attribute("class"))
        wait.until(ec.visibility_of_element_located((By.ID, "result-form")))
        # The same alert again (a stream that reconnected replays what it missed): the parcel was
        # pulled already, so the open-box form being filled in stays.
        pulled_tid = browser.find_element(By.TAG_NAME, "body").get_attribute("data-alert")
        agent.feed.publish({"type": "alert", "kind": "pull", "tracking_id": pulled_tid, "waybill": W_BLACK})
        # Events arrive in order: once the order notice after it shows, the replayed alert was handled.
        agent.feed.publish({"type": "order", "order": {"waybill": "EE000000000CN"}})
        wait.until(ec.text_to_be_present_in_element((By.ID, "notice"), "EE000000000CN"))
        assert browser.find_element(By.ID, "result-form").is_displayed()
        browser.find_element(By.ID, "result-note").send_keys("12 pairs, copied logos")
        browser.save_screenshot(str(shots / "terminal-open-box-result.png"))
        browser.find_element(By.ID, "result-note").send_keys(Keys.TAB)
        browser.switch_to.active_element.send_keys("2")
        wait.until(ec.invisibility_of_element_located((By.ID, "alert")))
        ops = [e for e in agent.store.events(100) if e.type == "operator"]
        assert [(e.action, e.result, e.waybill, e.operator) for e in ops] == [
            ("pulled", "", W_BLACK, "op7"),
            ("open_box", "counterfeit: 12 pairs, copied logos", W_BLACK, "op7"),
        ]
        assert {e.key for e in ops} <= {r.key for r in agent.store.pending_outbox(1000)}
        wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "#parcel-rows tr"), "Counterfeit"))

        # A device that stops turns red within seconds (the replay has ended: the scanner said so).
        agent.on_status("fake", True, "cable back")
        # Read the tile's class in the page: the panel is redrawn every second, so held elements go stale.
        tile = "return (document.querySelector('li[data-device=' + arguments[0] + ']') || {}).className"
        wait.until(lambda d: d.execute_script(tile, "scanner") == "s-up")
        agent.on_status("fake", False, "cable pulled")
        WebDriverWait(browser, 3).until(lambda d: d.execute_script(tile, "scanner") == "s-down")
        assert browser.execute_script(tile, "camera") == "s-down"  # its folder does not exist here
        assert browser.execute_script(tile, "xray") == "s-not_configured"

        # An alert the station cannot confirm shows the server's error as a readable sentence.
        agent.feed.publish(
            {
                "type": "alert",
                "kind": "pull",
                "tracking_id": "SZX-bogus-1",
                "waybill": "XX000000000CN",
                "reasons": ["INTERCEPT_ORDER"],
                "chute": "P1",
            }
        )
        wait.until(ec.text_to_be_present_in_element((By.ID, "alert-waybill"), "XX000000000CN"))
        browser.find_element(By.TAG_NAME, "body").send_keys("n")
        err = wait.until(ec.visibility_of_element_located((By.ID, "error")))
        # The refusal in the operator's words, not the raw API message.
        assert "The station has no record of this parcel" in err.text and "SZX-bogus-1" not in err.text
        browser.save_screenshot(str(shots / "terminal-error-and-health.png"))

        # Log out: back to the login page; the default language comes from the configuration (Chinese).
        browser.find_element(By.ID, "logout").click()
        wait.until(lambda d: "/login" in d.current_url)
        browser.delete_all_cookies()
        browser.get(server.url + "/")
        wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h2"), "操作员登录"))
        browser.save_screenshot(str(shots / "terminal-login-zh.png"))
        log_in_page(browser, wait, server.url, "op7", "4821")
        wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "安检操作终端"))
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#parcel-rows tr")) == 3)
        wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "#parcel-rows tr"), "拦截"))
        assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-CN"
        browser.save_screenshot(str(shots / "terminal-zh.png"))
        # What the script wrote (rows, health tiles, their states and details) is Chinese too; the raw
        # details stay in the tooltips, for technicians.
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#health li")) >= 5)
        shown = browser.find_element(By.TAG_NAME, "body").get_attribute("innerText")
        # Left out: the station's ids, the operator, the note typed above and the detail this test made up.
        for typed in ("12 pairs, copied logos", "cable pulled"):
            shown = shown.replace(typed, "")
        ids = {"SZX-HUB1-L3-XR1", "L3", "op7", "Li", "Wei"}
        assert [w for w in english_words(html.escape(shown)) if w not in ids] == [], shown
        # L switches language from the keyboard.
        browser.find_element(By.TAG_NAME, "body").send_keys("l")
        wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Operator terminal"))
        # The station program goes away: within seconds the page says so and greys the health panel.
        server.stop()
        wait.until(ec.visibility_of_element_located((By.ID, "connection")))
        assert "stale" in browser.find_element(By.ID, "health").get_attribute("class")
        browser.save_screenshot(str(shots / "terminal-connection-lost.png"))
    finally:
        server.stop()
        agent.stop()
        sorter.stop()
