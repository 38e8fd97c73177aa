"""The hit page's evidence card in Chromium: export a bundle that verifies, refer, record the reply."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server import admin
from server.db import migrate
from server.evidence.archive import verify_bundle
from server.evidence.signing import create_signing_key, load_signing_key
from server.settings import AuthConfig, EvidenceConfig
from tests.server.conftest import PASSWORD as WORLD_PASSWORD
from tests.server.conftest import Server, World, serving
from tests.server.test_evidence import officer, referred_case
from tests.server.test_web import PASSWORD, Site, check_page, make_settings, serve_seeded


@pytest.fixture
def live_signed(tmp_path: Path) -> Iterator[tuple[Site, str]]:
    """A real server on SQLite with a signing key, seeded like the desk tests."""
    database = f"sqlite:///{tmp_path / 'server.db'}"
    migrate(database)
    key = tmp_path / "evidence.pem"
    create_signing_key(key)
    settings = make_settings(database).model_copy(
        update={"evidence": EvidenceConfig(signing_key_file=key, sender_unit="某市邮政管理局")}
    )
    with serve_seeded(settings) as out:
        yield out


@pytest.mark.browser
def test_export_refer_and_reply_in_the_browser(
    live_signed: tuple[Site, str], chromium: Any, repo_root: Path
) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    s, url = live_signed
    browser = chromium
    wait = WebDriverWait(browser, 20, ignored_exceptions=(StaleElementReferenceException,))
    olga = {"Authorization": f"Bearer {admin.create_api_token(s.settings, 'olga')}"}
    with httpx.Client(base_url=url, timeout=10) as http:
        assert http.post(f"/api/v1/reviews/{s.item_id}/claim", headers=olga).status_code == 200
        fields = {"authority": "market_regulator", "case_reference": "沪邮安〔2026〕17号"}
        decided = http.post(
            f"/api/v1/reviews/{s.item_id}/decision", json={"action": "refer", "fields": fields}, headers=olga
        )
        assert decided.status_code == 200, decided.text

    def by_id(i: str) -> Any:
        return browser.find_element(By.ID, i)

    browser.get(f"{url}/login?lang=zh")
    by_id("username").send_keys("olga")
    by_id("password").send_keys(PASSWORD)
    by_id("password").submit()
    wait.until(lambda d: "/login" not in d.current_url)
    browser.get(f"{url}/desk/items/{s.item_id}?lang=zh")
    wait.until(ec.presence_of_element_located((By.ID, "evidence-card")))
    assert by_id("no-referrals").text == "尚未移送"
    check_page(browser)

    by_id("export-bundle").click()
    wait.until(ec.visibility_of_element_located((By.ID, "bundle-done")))
    downloads: Path = browser.downloads
    wait.until(lambda _d: [p for p in downloads.glob("evidence-*.zip")])
    bundle = next(downloads.glob("evidence-*.zip"))
    public = load_signing_key(s.settings.evidence.signing_key_file).public_key()
    wait.until(lambda _d: verify_bundle(bundle, public).checked > 0)  # the download has finished
    report = verify_bundle(bundle, public)
    assert report.ok, report.lines()
    assert by_id("bundle-fingerprint").text == report.fingerprint

    by_id("referral-basis").send_keys("《中华人民共和国商标法》第六十条")
    by_id("referral-form").submit()
    wait.until(ec.presence_of_element_located((By.ID, "referral-1")))
    card = by_id("referral-1")
    assert card.find_element(By.CLASS_NAME, "referral-receipt").text == "待回复"
    assert len(card.find_element(By.CLASS_NAME, "referral-fingerprint").text) == 64
    check_page(browser)

    by_id("receipt-1").send_keys("沪市监收〔2026〕88号")
    browser.execute_script("arguments[0].value = arguments[1]", by_id("received-1"), s.day)
    by_id("number-1").send_keys("沪市监案〔2026〕301号")
    card.find_element(By.CLASS_NAME, "reply-form").submit()
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "#referral-1 .referral-number"), "301号"))
    assert "88号" in by_id("referral-1").find_element(By.CLASS_NAME, "referral-receipt").text
    # Both values are in: the reply form is gone, so nothing can be written over them.
    assert not by_id("referral-1").find_elements(By.CLASS_NAME, "reply-form")
    trail = by_id("audit").text
    assert "evidence_export" in trail and "referral_create" in trail and "referral_reply" in trail
    assert not browser.find_elements(By.ID, "referral-form")  # referred once: no second package by accident
    browser.execute_script("document.getElementById('evidence-card').scrollIntoView()")
    shots = repo_root / "artifacts" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(shots / "desk-evidence-referral-zh.png"))

    # With the form gone, a hand-made request to change the recorded number is still refused.
    browser.execute_script(
        "fetch('/api/v1/referrals/1/reply', {method: 'POST', credentials: 'same-origin',"
        " headers: {'Content-Type': 'application/json', 'X-CSRF-Token':"
        " document.querySelector('meta[name=\"csrf-token\"]').content},"
        " body: JSON.stringify({authority_case_number: 'other'})})"
        ".then(r => { window.replyStatus = r.status; })"
    )
    wait.until(lambda d: d.execute_script("return window.replyStatus") == 409)


@pytest.mark.browser
def test_case_page_exports_the_case_and_refers_it(
    server: Server, world: World, chromium: Any, repo_root: Path
) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    case_id = referred_case(server, world, officer(server, "site1"))
    # The same database served to the browser over plain HTTP (so the session cookie is not Secure).
    settings = server.settings.model_copy(update={"auth": AuthConfig(cookie_secure=False)})
    browser = chromium
    wait = WebDriverWait(browser, 20, ignored_exceptions=(StaleElementReferenceException,))
    with serving(settings) as url:
        browser.get(f"{url}/login?lang=en")
        browser.find_element(By.ID, "username").send_keys(world.user["site1"])
        browser.find_element(By.ID, "password").send_keys(WORLD_PASSWORD)
        browser.find_element(By.ID, "password").submit()
        wait.until(lambda d: "/login" not in d.current_url)
        browser.get(f"{url}/desk/cases/{case_id}?lang=en")
        wait.until(ec.presence_of_element_located((By.ID, "evidence-card")))
        check_page(browser)
        browser.find_element(By.ID, "export-bundle").click()
        downloads: Path = browser.downloads
        wait.until(lambda _d: [p for p in downloads.glob(f"evidence-case-{case_id}-*.zip")])
        bundle = next(downloads.glob(f"evidence-case-{case_id}-*.zip"))
        public = load_signing_key(settings.evidence.signing_key_file).public_key()
        wait.until(lambda _d: verify_bundle(bundle, public).checked > 0)
        assert verify_bundle(bundle, public).ok
        with zipfile.ZipFile(bundle) as zf:
            assert json.loads(zf.read("case.json"))["id"] == case_id
        browser.find_element(By.ID, "referral-basis").send_keys("PRC Criminal Law art. 213 and 214")
        browser.find_element(By.ID, "referral-form").submit()
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".referral-entry")))
        entry = browser.find_element(By.CSS_SELECTOR, ".referral-entry")
        assert "police" in entry.text and "Awaiting reply" in entry.text
        assert not browser.find_elements(By.ID, "referral-form")
        assert "referral_create" in browser.find_element(By.ID, "audit").text  # in the case's own trail
        check_page(browser)
        browser.execute_script("document.getElementById('evidence-card').scrollIntoView()")
        shots = repo_root / "artifacts" / "screenshots"
        shots.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(shots / "case-evidence-referral-en.png"))
