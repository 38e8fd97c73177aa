"""Case pages of the desk: in process (pages, bad addresses, site scope), and a case walked in Chromium."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from server import admin
from server.cases.notices import case_ref
from server.web.words import words
from tests.server.test_web import PASSWORD, WAYBILL, WAYBILL2, Site, check_page, csrf_of, live, login, site

__all__ = ["live", "site"]  # fixtures, imported so that pytest finds them here
DETAIN = {"legal_basis": "《中华人民共和国知识产权海关保护条例》第十六条", "storage_location": "证物库 A-3"}


def detain_both(http: httpx.Client | TestClient, s: Site) -> tuple[dict[str, str], list[int]]:
    """Olga detains both parcels of the one sender at review, through the API."""
    olga = {"Authorization": f"Bearer {admin.create_api_token(s.settings, 'olga')}"}
    items = http.get("/api/v1/reviews", headers=olga).json()
    ids = sorted(i["id"] for i in items if i["waybill"] in (WAYBILL, WAYBILL2))
    for item_id in ids:
        assert http.post(f"/api/v1/reviews/{item_id}/claim", headers=olga).status_code == 200
        r = http.post(
            f"/api/v1/reviews/{item_id}/decision", json={"action": "detain", "fields": DETAIN}, headers=olga
        )
        assert r.status_code == 200, r.text
    return olga, ids


def test_case_pages_in_process(site: tuple[Site, TestClient]) -> None:
    s, c = site
    olga, ids = detain_both(c, s)
    case = c.post("/api/v1/cases", json={"title": "运动鞋 两件", "items": ids}, headers=olga).json()
    login(c, "olga")
    listing = c.get("/desk/cases?lang=en").text
    assert case_ref(case["id"]) in listing and "运动鞋 两件" in listing
    page = c.get(f"/desk/cases/{case['id']}?lang=en").text
    for expected in (WAYBILL, WAYBILL2, "Detain", "Register a rights holder", "case_open"):
        assert expected in page, expected
    # The item page links to opening a case; an item already in one says which.
    assert f'href="/desk/cases?item={ids[0]}"' in c.get(f"/desk/items/{ids[0]}").text
    chooser = c.get(f"/desk/cases?item={ids[0]}&lang=en").text
    assert "already in case" in chooser and f'href="/desk/cases/{case["id"]}"' in chooser
    assert csrf_of(chooser)
    # Bad addresses get the readable page, not a JSON error or a 500.
    for bad in ("abc", "0", "99999999999999999999", str(case["id"] + 100)):
        r = c.get(f"/desk/cases/{bad}")
        assert r.status_code == 404 and "<html" in r.text, bad
    assert c.get("/desk/cases?item=1,x,-3,99999999999999999999999&state=nonsense").status_code == 200
    # Another site's officer sees neither the case nor its items; a supervisor has no desk.
    login(c, "otto")
    assert c.get(f"/desk/cases/{case['id']}").status_code == 404
    assert case_ref(case["id"]) not in c.get("/desk/cases").text
    assert WAYBILL not in c.get(f"/desk/cases?item={ids[0]}").text
    login(c, "sam")
    assert c.get("/desk/cases").status_code == 403
    assert re.search(r"没有可用页面", c.get("/desk/cases").text)


def _shot(browser: Any, shots: Path, name: str) -> None:
    """Into the git-ignored screenshots folder; the ones in docs/screens are copies of these."""
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(shots / name))


@pytest.mark.browser
def test_a_case_walked_in_the_browser(
    live: tuple[Site, str], chromium: Any, screenshots: Path, tmp_path: Path
) -> None:
    """Two detained parcels of one sender: a case, the rights holder, the notice, the reply
    (counterfeit), disposal by destruction with a photo, and closing; refusals are shown readable."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from tests.server.test_web import png

    s, url = live
    browser = chromium
    with httpx.Client(base_url=url, timeout=10) as http:
        _, ids = detain_both(http, s)
    wait = WebDriverWait(browser, 15)

    def by_id(i: str) -> Any:
        return browser.find_element(By.ID, i)

    def submit(form_css: str) -> None:
        browser.find_element(By.CSS_SELECTOR, form_css + " button[type=submit]").click()

    def state_is(state: str) -> None:
        wait.until(ec.text_to_be_present_in_element_attribute((By.ID, "case-state"), "data-state", state))

    browser.get(f"{url}/login?lang=en")
    by_id("username").send_keys("olga")
    by_id("password").send_keys(PASSWORD)
    by_id("password").submit()
    wait.until(lambda d: "/login" not in d.current_url)
    # From the first parcel's page: open a case.
    browser.get(f"{url}/desk/items/{ids[0]}")
    by_id("case-link").click()
    wait.until(ec.presence_of_element_located((By.ID, "case-title")))
    by_id("case-title").send_keys("Counterfeit AF1, one sender, two parcels")
    check_page(browser)
    submit("#new-case-form")
    wait.until(lambda d: re.search(r"/desk/cases/\d+$", d.current_url))
    case_url = browser.current_url
    # From the second parcel's page: add it to that case.
    browser.get(f"{url}/desk/items/{ids[1]}")
    by_id("case-link").click()
    wait.until(ec.presence_of_element_located((By.ID, "add-case")))
    submit("#add-case-form")
    wait.until(lambda d: d.current_url == case_url)
    wait.until(ec.text_to_be_present_in_element((By.ID, "case-items"), WAYBILL2))
    assert WAYBILL in by_id("case-items").text
    # Handing the case to an officer who does not hold its site is refused, readable.
    by_id("new-owner").send_keys("otto")
    submit("#owner-form")
    err = wait.until(ec.visibility_of_element_located((By.ID, "error")))
    assert "does not hold every site" in err.text
    # Register the rights holder and name it; detain.
    browser.find_element(By.CSS_SELECTOR, "#holder-form + details summary").click()
    by_id("h-brand").send_keys("Nike")
    by_id("h-contact").send_keys("李雷")
    by_id("h-tm-number").send_keys("G1234567")
    by_id("h-tm-mark").send_keys("NIKE")
    submit("#new-holder-form")
    wait.until(ec.presence_of_element_located((By.ID, "holder-facts")))
    Select(by_id("s-legal_basis")).select_by_value(DETAIN["legal_basis"])
    by_id("s-storage_location").send_keys(DETAIN["storage_location"])
    submit('form[data-action="detain"]')
    state_is("detained")
    assert "site policy" in by_id("case-deadline").text
    check_page(browser)
    _shot(browser, screenshots, "case-detained.png")
    # The notice: no mail server here, so it is exported and then marked delivered.
    by_id("notify").click()
    state_is("notified")
    eml = browser.find_element(By.CSS_SELECTOR, "#notices a").get_attribute("href")
    with httpx.Client(
        base_url=url, timeout=10, cookies={c["name"]: c["value"] for c in browser.get_cookies()}
    ) as h:
        notice = h.get(eml)
    body = message_from_bytes(notice.content, policy=policy.default).get_body()
    assert notice.status_code == 200 and body is not None and "3 个工作日" in str(body.get_content())
    submit("#delivered-form")
    state_is("awaiting_rights_holder")
    assert "art. 16" in by_id("case-deadline").text
    # Too early for "no reply": the refusal is shown as the server wrote it.
    by_id("reply-no_reply").click()
    submit("#reply-form")
    err = wait.until(ec.visibility_of_element_located((By.ID, "error")))
    assert "not yet overdue" in err.text
    _shot(browser, screenshots, "case-awaiting-reply-refused-early.png")
    by_id("reply-counterfeit").click()
    by_id("reply-note").send_keys("letter NK-2026-88: counterfeit")
    submit("#reply-form")
    state_is("decided")
    assert by_id("case-outcome").get_attribute("data-outcome") == "counterfeit"
    # Destroying before every seized item has its disposal record is refused.
    by_id("act-destroy").click()
    err = wait.until(ec.visibility_of_element_located((By.ID, "error")))
    assert "no disposal record" in err.text
    photo = tmp_path / "destroyed.png"
    photo.write_bytes(png("camera"))
    for n in range(2):
        wait.until(ec.presence_of_element_located((By.ID, "disposal-form")))
        Select(by_id("dp-method")).select_by_value("destruction")
        by_id("dp-place").send_keys("深圳市危险废物处置中心")
        browser.execute_script("document.getElementById('dp-done_on').value = arguments[0]", s.day)
        by_id("dp-witnesses").send_keys("王五, 赵六")
        by_id("dp-certificate").send_keys(f"XH-2026-{n + 1:03d}")
        if n == 0:
            by_id("dp-photo").send_keys(str(photo))
        submit("#disposal-form")
        wait.until(ec.text_to_be_present_in_element((By.ID, "disposals"), f"XH-2026-{n + 1:03d}"))
    assert "NOT DISPOSED" not in by_id("case-items").text
    by_id("act-destroy").click()
    state_is("destroyed")
    by_id("act-close").click()
    state_is("closed")
    trail = by_id("audit").text
    # Each step in the trail, named in the page's words (server/web/words: audit_<action>).
    en = words("en")
    for action in ("case_open", "case_add_items", "case_detain", "case_notify", "case_deliver", "case_reply",
                   "case_photo", "case_disposal", "case_destroy", "case_close"):  # fmt: skip
        assert en.of("audit", action) in trail, action
    check_page(browser)
    _shot(browser, screenshots, "case-closed.png")
    browser.get(f"{url}/desk/cases?lang=zh")
    wait.until(ec.text_to_be_present_in_element((By.ID, "cases"), "已结案"))
    check_page(browser)
    _shot(browser, screenshots, "cases-list-zh.png")
