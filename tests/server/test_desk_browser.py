"""The desk made for throughput in real Chromium, in both languages: live PULL badge, bulk release,
operator results, a reveal that stays, order cancel, decide then next item, administration pages.

Screenshots of each screen go to docs/screens/ (listed in the README)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from server import admin
from server.web.words import words
from tests.server.test_web import ID, PASSWORD, WAYBILL, WAYBILL2, Site, browser_log_in, check_page, live  # noqa: F401

NEW_PULL = "SF5550001111"


def station_event(seq: int, **kw: Any) -> dict[str, Any]:
    base = {"key": f"st-a:b1:{seq}", "station_id": "st-a", "boot_id": "b1", "seq": seq}
    return {**base, "at": datetime.now(UTC).isoformat(), **kw}


def parcel_event(seq: int, waybill: str, decision: str, risk: float, station: str = "st-a") -> dict[str, Any]:
    ev = station_event(
        seq, type="parcel", tracking_id=f"t{seq}", waybill=waybill, decision=decision, risk=risk
    )
    ev.update(key=f"{station}:b1:{seq}", station_id=station, classifier="v1")
    ev["reasons"] = ["COUNTERFEIT_SUSPECT"] if decision == "PULL" else ["REALNAME_UNVERIFIED"]
    return ev


@pytest.mark.browser
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_desk_flows_in_both_languages(
    live: tuple[Site, str],  # noqa: F811
    chromium: Any,
    repo_root: Path,
    lang: str,
) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    s, url = live
    b = chromium
    t = words(lang)
    shots = repo_root / "docs" / "screens"
    shots.mkdir(parents=True, exist_ok=True)
    wait = WebDriverWait(b, 15, ignored_exceptions=(StaleElementReferenceException,))
    http = httpx.Client(base_url=url, timeout=10)

    def by_id(i: str) -> Any:
        return b.find_element(By.ID, i)

    def shot(name: str, at: str = "") -> None:
        if at:
            b.execute_script("document.getElementById(arguments[0]).scrollIntoView()", at)
        else:
            b.execute_script("window.scrollTo(0, 0)")
        b.save_screenshot(str(shots / f"{name}-{lang}.png"))

    def log_in(name: str, lang: str) -> None:
        browser_log_in(b, wait, url, name, lang)

    def confirm_in_row(row: str, then: str) -> None:
        """Press the row's button, confirm the browser's question, wait for the row to say `then`."""
        b.find_element(By.CSS_SELECTOR, f"{row} button").click()
        b.switch_to.alert.accept()
        wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, row), then))

    def sync(*events: dict[str, Any], station: dict[str, str] | None = None, name: str = "st-a") -> None:
        body = {"station_id": name, "boot_id": "b1", "events": list(events)}
        assert http.post("/api/v1/sync", json=body, headers=station or s.station).is_success

    # What the operator reported at the terminal for the PULL: it shows on the officer's item.
    opened = station_event(
        10,
        type="operator",
        tracking_id="t1",
        waybill=WAYBILL,
        action="open_box",
        result="counterfeit",
        operator="opal",
    )
    sync(opened)

    # ---- the queue, live: a new PULL raises the badge and sounds ----
    log_in("olga", lang)
    wait.until(lambda d: by_id("live-state").get_attribute("data-state") == "on")
    counts = by_id("queue-counts").text
    assert counts == t["desk_counts"].format(parcels=2, items=2, pulls=1), counts
    thumb = b.find_element(By.CSS_SELECTOR, f"tr[data-item='{s.item_id}'] td.thumb img")
    wait.until(
        lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", thumb) > 0
    )
    check_page(b)
    shot("desk-queue")
    sync(parcel_event(20, NEW_PULL, "PULL", 0.9))
    wait.until(ec.visibility_of_element_located((By.ID, "live-badge")))
    assert by_id("live-count").text == "1" and b.execute_script("return document.body.dataset.alerts") == "1"
    shot("desk-live-new-pull")

    # ---- bulk release of the low-risk HOLD, with one typed reason ----
    b.find_element(By.CSS_SELECTOR, "input.pick").click()
    by_id("bulk-reason").send_keys("x")
    by_id("bulk-form").find_element(By.CSS_SELECTOR, "fieldset button").click()
    err = wait.until(ec.visibility_of_element_located((By.ID, "error")))
    assert "says nothing" in err.text
    by_id("bulk-reason").clear()
    by_id("bulk-reason").send_keys("sender verified by phone with the outlet")
    by_id("bulk-form").find_element(By.CSS_SELECTOR, "fieldset button").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "notice"), t["desk_bulk_done"].format(n=1)))
    assert WAYBILL2 not in by_id("main").text
    shot("desk-bulk-released")

    # ---- the PULL: operator result, deadlines, a reveal that stays, cancelling the station's order ----
    b.get(f"{url}/desk/items/{s.item_id}")
    results = by_id("results").text
    assert t["desk_op_open_box"] in results and t["desk_res_counterfeit"] in results and "opal" in results
    rules = by_id("deadline-rules").text
    assert (
        t["desk_rule_source"] in rules
        and t["rule_source_detain"] in rules
        and t["desk_period_working_days"].format(n=3) in rules
    )
    check_page(b)
    b.execute_script("window.keptPage = 1")
    by_id("reveal-reason").send_keys("case 2026-17: counterfeit shoes")
    by_id("reveal-form").find_element(By.TAG_NAME, "button").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "sender-id"), ID))
    cancel = b.find_element(By.CSS_SELECTOR, "#orders .cancel-form")
    cancel.find_element(By.NAME, "reason").send_keys("-")
    cancel.find_element(By.TAG_NAME, "button").click()
    assert "says nothing" in wait.until(ec.visibility_of_element_located((By.ID, "error"))).text
    cancel.find_element(By.NAME, "reason").clear()
    cancel.find_element(By.NAME, "reason").send_keys("brand confirmed the shoes are genuine stock")
    cancel.find_element(By.TAG_NAME, "button").click()
    cancelled = t["desk_cancelled"] + " · olga"
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "#orders .order-state"), cancelled))
    # Still the same page: the full record was never masked again.
    assert b.execute_script("return window.keptPage") == 1 and by_id("sender-id").text == ID
    shot("desk-item-revealed")
    shot("desk-item-orders-cancelled", "decision-form")
    shot("desk-item-operator-results", "results-title")

    # ---- decide, with the legal basis from the list and free text that must say something ----
    b.find_element(By.TAG_NAME, "body").send_keys("s")
    wait.until(ec.visibility_of_element_located((By.ID, "f-legal_basis")))
    Select(by_id("f-legal_basis")).select_by_index(1)
    by_id("f-legal_basis_detail").send_keys("x")
    by_id("f-seizure_record").send_keys("S-2026-0017")
    by_id("f-rights_holder").send_keys("Brand Co")
    by_id("decision-form").submit()
    assert "says nothing" in wait.until(ec.visibility_of_element_located((By.ID, "error"))).text
    by_id("f-legal_basis_detail").clear()
    by_id("f-legal_basis_detail").send_keys("counterfeit logo on the tongue")
    by_id("decision-form").submit()
    new_id = next(
        i["id"] for i in http.get("/api/v1/reviews", headers=s.root).json() if i["waybill"] == NEW_PULL
    )
    # On to the next item in queue order: the PULL that arrived while the officer worked.
    wait.until(lambda d: d.current_url.endswith(f"/desk/items/{new_id}"))
    assert by_id("no-results").text == t["desk_no_results"]
    check_page(b)
    shot("desk-next-item")
    shot("desk-next-item-deadlines", "deadline-rules")
    b.get(f"{url}/desk")
    assert by_id("queue-counts").text == t["desk_counts"].format(parcels=1, items=1, pulls=1)

    # ---- bulk across sites is refused, even for an officer of every site ----
    admin.create_user(s.settings, "ivy", PASSWORD, "officer", ["*"])
    far = {"Authorization": f"Bearer {admin.register_station(s.settings, 'st-c', 'site2', 'line1')}"}
    sync(parcel_event(30, "SF5550002222", "HOLD", 0.2))
    sync(parcel_event(1, "SF5550003333", "HOLD", 0.2, "st-c"), station=far, name="st-c")
    log_in("ivy", lang)
    for pick in b.find_elements(By.CSS_SELECTOR, "input.pick"):
        pick.click()
    by_id("bulk-reason").send_keys("both senders verified with the outlets")
    by_id("bulk-form").find_element(By.CSS_SELECTOR, "fieldset button").click()
    err = wait.until(ec.visibility_of_element_located((By.ID, "error")))
    assert "stays within one site" in err.text
    shot("desk-bulk-across-sites-refused")

    # ---- administration: users, stations, watchlist, orders ----
    log_in("root", lang)
    b.get(f"{url}/admin/users")
    by_id("u-name").send_keys("newbie")
    by_id("u-password").send_keys("a long password 456")
    Select(by_id("u-role")).select_by_value("officer")
    by_id("u-sites").send_keys("site1")
    by_id("user-form").find_element(By.TAG_NAME, "button").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "tr[data-user='newbie']")))
    confirm_in_row("tr[data-user='newbie']", t["admin_inactive"])
    check_page(b)
    shot("admin-users")
    b.get(f"{url}/admin/stations")
    by_id("s-id").send_keys("st-z")
    by_id("s-site").send_keys("site1")
    by_id("s-line").send_keys("line9")
    by_id("station-form").find_element(By.TAG_NAME, "button").click()
    token = wait.until(ec.visibility_of_element_located((By.ID, "station-token"))).text.split()[-1]
    assert http.post(
        "/api/v1/sync",
        json={"station_id": "st-z", "boot_id": "z", "events": []},
        headers={"Authorization": f"Bearer {token}"},
    ).is_success
    b.get(f"{url}/admin/stations")
    assert t["never_seen"] not in b.find_element(By.CSS_SELECTOR, "tr[data-station='st-z']").text
    confirm_in_row("tr[data-station='st-z']", t["admin_revoked"])
    check_page(b)
    shot("admin-stations")
    b.get(f"{url}/admin/watchlist")
    Select(by_id("w-kind")).select_by_value("phone")
    by_id("w-value").send_keys("13912345678")
    by_id("w-reason").send_keys("多次寄递假冒运动鞋")
    by_id("w-source").send_keys("市场监管局 2026-031")
    by_id("w-ref").send_keys("site1")
    by_id("watch-form").find_element(By.TAG_NAME, "button").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "entries"), "多次寄递假冒运动鞋"))
    assert "13912345678" not in by_id("entries").text  # shown masked only
    check_page(b)
    shot("admin-watchlist")
    b.get(f"{url}/desk/orders")
    assert cancelled in by_id("orders").text
    check_page(b)
    shot("desk-orders")
    http.close()
