"""Server pages in process: login, role menus, the review desk, the daily report, downloads and errors."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from server import admin
from server.app import create_app
from server.db import migrate
from server.settings import AuthConfig, ServerSettings, generate_key
from tests.server.conftest import serving, site_day

PASSWORD = "a long password 123"
ID = "11010519491231002X"
SENDERS_CSV = (
    "id_type,id_number,name,phone,address,verified,verified_at,outlet,courier,agreement_customer,usc_code,"
    "qualification\n"
    f"resident_id,{ID},张三,13812345678,北京市东城区1号,true,2026-01-02T03:04:05Z,O1,C1,false,,\n"
)
WAYBILL, WAYBILL2 = "RR473124829GB", "EE123456785CN"


def png(kind: str) -> bytes:
    """A small generated image: an X-ray-like grey scan with a dense object, or a coloured photo."""
    h, w = 240, 320
    if kind == "xray":
        img = np.full((h, w), 215, np.uint8)
        cv2.rectangle(img, (40, 50), (280, 200), 150, -1)
        cv2.circle(img, (160, 125), 45, 40, -1)
        cv2.rectangle(img, (90, 80), (130, 170), 70, -1)
    else:
        img = np.full((h, w, 3), (60, 120, 180), np.uint8)
        cv2.rectangle(img, (60, 40), (260, 200), (40, 80, 140), -1)
        cv2.putText(img, "BOX", (110, 135), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (255, 255, 255), 3)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return bytes(buf)


@dataclass
class Site:
    settings: ServerSettings
    sender_token: str
    item_id: int
    day: str
    station: dict[str, str]
    root: dict[str, str]


def make_settings(url: str) -> ServerSettings:
    return ServerSettings(
        database_url=url,
        secret_key=generate_key(),
        hmac_key=generate_key(),
        encryption_key=generate_key(),
        auth=AuthConfig(cookie_secure=False),
    )


def seed(settings: ServerSettings, http: httpx.Client | TestClient) -> Site:
    """Users of every role, two sites, a sender, manifests and hits with images, through the real APIs."""
    admin.create_user(settings, "root", PASSWORD, "admin", ["*"])
    for name, role, sites in [
        ("olga", "officer", ["site1"]),
        ("otto", "officer", ["site2"]),
        ("sam", "supervisor", ["*"]),
        ("opal", "operator", ["site1"]),
    ]:
        admin.create_user(settings, name, PASSWORD, role, sites)
    root = {"Authorization": f"Bearer {admin.create_api_token(settings, 'root')}"}
    station = {"Authorization": f"Bearer {admin.register_station(settings, 'st-a', 'site1', 'line1')}"}
    admin.register_station(settings, "st-b", "site1", "line2")
    r = http.post(
        "/api/v1/senders/import", content=SENDERS_CSV.encode(), headers={**root, "Content-Type": "text/csv"}
    )
    assert r.json()["imported"] == 1, r.text
    manifests = [
        {
            "waybill": w,
            "sender_id_type": "resident_id",
            "sender_id_number": ID,
            "quantity": "12",
            "declared_name": "运动鞋 sports shoes",
            "declared_category": "footwear_clothing",
        }
        for w in (WAYBILL, WAYBILL2)
    ]
    assert http.post("/api/v1/manifests/import", json=manifests, headers=root).json()["imported"] == 2
    reply = http.post(
        "/api/v1/sync", json={"station_id": "st-a", "boot_id": "b1", "events": []}, headers=station
    )
    token = reply.json()["registry"]["senders"][0]["sender_token"]
    xray, photo = png("xray"), png("camera")
    imgs = [
        {
            "sha256": hashlib.sha256(xray).hexdigest(),
            "kind": "xray",
            "content_type": "image/png",
            "size": len(xray),
        },
        {
            "sha256": hashlib.sha256(photo).hexdigest(),
            "kind": "camera",
            "content_type": "image/png",
            "size": len(photo),
        },
    ]
    at = datetime.now(UTC).replace(microsecond=0)
    base = {
        "station_id": "st-a",
        "boot_id": "b1",
        "at": at.isoformat(),
        "classifier": "efficientnet-lite0 v1",
    }
    cls = [
        {
            "image_sha256": imgs[0]["sha256"],
            "category": "footwear_clothing",
            "category_prob": 0.91,
            "counterfeit_score": 0.87,
            "gallery": [],
            "model_version": "v1",
        }
    ]
    evs = [
        {
            **base,
            "type": "parcel",
            "key": "st-a:b1:1",
            "seq": 1,
            "tracking_id": "t1",
            "waybill": WAYBILL,
            "decision": "PULL",
            "reasons": ["COUNTERFEIT_SUSPECT", "DECLARED_MISMATCH"],
            "risk": 0.9,
            "sender_token": token,
            "declared_category": "footwear_clothing",
            "classifications": cls,
            "images": imgs,
            "divert": {"outcome": "DIVERTED", "chute": "P1"},
        },
        {
            **base,
            "type": "parcel",
            "key": "st-a:b1:2",
            "seq": 2,
            "tracking_id": "t2",
            "waybill": WAYBILL2,
            "decision": "HOLD",
            "reasons": ["REALNAME_UNVERIFIED"],
            "risk": 0.4,
            "sender_token": token,
        },
        {
            **base,
            "type": "parcel",
            "key": "st-a:b1:3",
            "seq": 3,
            "tracking_id": "t3",
            "waybill": "SF1234567890",
            "decision": "CLEAR",
            "reasons": [],
            "risk": 0.0,
        },
    ]
    batch = {"station_id": "st-a", "boot_id": "b1", "events": evs}
    synced = http.post("/api/v1/sync", json=batch, headers=station)
    assert synced.is_success, synced.text
    for data in (xray, photo):
        sha = hashlib.sha256(data).hexdigest()
        put = http.put(
            f"/api/v1/images/{sha}", content=data, headers={**station, "Content-Type": "image/png"}
        )
        assert put.status_code == 201
    items = http.get("/api/v1/reviews", headers=root).json()
    pull = next(i for i in items if i["waybill"] == WAYBILL)
    return Site(settings, token, int(pull["id"]), site_day(at), station, root)


@pytest.fixture
def site(db_url: str) -> Iterator[tuple[Site, TestClient]]:
    # db_url (tests/server/conftest.py): a migrated SQLite file, and PostgreSQL where the suite has one.
    settings = make_settings(db_url)
    with TestClient(create_app(settings)) as client:
        yield seed(settings, client), client


def login(client: TestClient, name: str, next_: str = "/") -> httpx.Response:
    client.cookies.clear()
    resp: httpx.Response = client.post(
        "/login", data={"username": name, "password": PASSWORD, "next": next_}, follow_redirects=False
    )
    return resp


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert found
    return found.group(1)


def test_login_menus_and_redirects(site: tuple[Site, TestClient]) -> None:
    _, c = site
    page = c.get("/desk", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=%2Fdesk"
    assert "登录" in c.get("/login").text
    bad = c.post("/login", data={"username": "olga", "password": "wrong password!"})
    assert bad.status_code == 401 and "用户名或密码错误" in bad.text and "wrong" not in bad.text
    bad_en = c.post("/login?lang=en", data={"username": "olga", "password": "wrong password!"})
    assert "wrong username or password" in bad_en.text
    assert login(c, "olga").headers["location"] == "/desk"
    assert login(c, "sam").headers["location"] == "/report"
    # An open redirect through `next` is refused: only local paths.
    assert login(c, "olga", "//evil.example/x").headers["location"] == "/desk"
    assert login(c, "olga", "/desk?q=RR").headers["location"] == "/desk?q=RR"
    login(c, "root")
    menu = c.get("/desk?lang=en").text
    assert 'href="/desk"' in menu and 'href="/report"' in menu and "Review queue" in menu
    login(c, "sam")
    report = c.get("/report").text
    assert 'href="/report"' in report and 'href="/desk"' not in report
    denied = c.get("/desk")
    assert denied.status_code == 403 and "没有可用页面" in denied.text
    login(c, "opal")
    assert "没有可用页面" in c.get("/", follow_redirects=True).text
    # Logout needs the session's CSRF token.
    login(c, "olga")
    token = csrf_of(c.get("/desk").text)
    assert c.post("/logout", data={"csrf": "nope"}).status_code == 403
    out = c.post("/logout", data={"csrf": token}, follow_redirects=False)
    assert out.status_code == 303 and c.get("/desk", follow_redirects=False).status_code == 303


def test_desk_queue_filters_search_and_hit_page(site: tuple[Site, TestClient]) -> None:
    s, c = site
    login(c, "olga")
    queue = c.get("/desk?lang=en").text
    assert WAYBILL in queue and WAYBILL2 in queue and "SF1234567890" not in queue
    only = c.get("/desk", params={"reason": "REALNAME_UNVERIFIED"}).text
    assert WAYBILL2 in only and WAYBILL not in only
    found = c.get("/desk", params={"q": s.sender_token[:12]}).text
    assert WAYBILL in found and WAYBILL2 in found
    assert WAYBILL not in c.get("/desk", params={"q": "ZZ%_"}).text
    page = c.get(f"/desk/items/{s.item_id}?lang=en").text
    for expected in (
        "110***********002X",
        "Suspected counterfeit",
        "footwear and clothing",
        "运动鞋",
        "/api/v1/images/",
    ):
        assert expected in page
    assert ID not in page and 'id="observed">footwear and clothing (0.91)' in page
    # Another site's officer does not see the item; a readable error page, same message as the API.
    login(c, "otto")
    other = c.get(f"/desk/items/{s.item_id}")
    assert other.status_code == 404 and f"没有审核项目 {s.item_id}" in other.text
    for ref in ("0", "abc", "9" * 30):
        wrong = c.get(f"/desk/items/{ref}")
        assert wrong.status_code == 404 and "没有审核项目" in wrong.text and "<html" in wrong.text
    assert f"no review item {s.item_id}" in c.get(f"/desk/items/{s.item_id}?lang=en").text


def test_reveal_decide_order_and_audit_trail(site: tuple[Site, TestClient]) -> None:
    s, c = site
    login(c, "olga")
    page = c.get(f"/desk/items/{s.item_id}").text
    headers = {"X-CSRF-Token": csrf_of(page)}
    short = c.post(f"/api/v1/senders/{s.sender_token}/reveal", json={"reason": "why"}, headers=headers)
    assert short.status_code == 422 and short.json()["error"]["message"]
    no_csrf = c.post(f"/api/v1/senders/{s.sender_token}/reveal", json={"reason": "case 2026-17 counterfeit"})
    assert no_csrf.status_code == 403
    full = c.post(f"/api/v1/senders/{s.sender_token}/reveal", json={"reason": "case 2026-17 counterfeit"},
                  headers=headers)  # fmt: skip
    assert full.json()["id_number"] == ID
    assert c.post(f"/api/v1/reviews/{s.item_id}/claim", headers=headers).json()["state"] == "claimed"
    fields = {
        "legal_basis": "《中华人民共和国商标法》第六十二条",
        "seizure_record": "S-1",
        "rights_holder": "Brand Co",
    }
    seize = {"action": "seize", "fields": fields, "add_to_gallery": True, "gallery_label": "fake sneaker"}
    done = c.post(f"/api/v1/reviews/{s.item_id}/decision", json=seize, headers=headers)
    assert done.status_code == 200, done.text
    order = c.post(
        "/api/v1/orders",
        json={"scope": "sender", "sender_token": s.sender_token, "reason": "tip-off", "site_id": "site1"},
        headers=headers,
    )
    assert order.status_code == 201, order.text
    trail = c.get(f"/desk/items/{s.item_id}").text
    for action in ("查看实名信息", "认领", "判定查扣", "下达拦截指令"):
        assert f"<td>{action}</td>" in trail
    assert "case 2026-17 counterfeit" in trail and ID not in trail
    # The seized parcel's images are now a gallery reference; a later hit shows them as thumbnails.
    ref = c.get("/api/v1/models/gallery", headers=s.station).json()["refs"][0]
    later = {
        "type": "parcel",
        "key": "st-a:b1:9",
        "station_id": "st-a",
        "boot_id": "b1",
        "seq": 9,
        "at": datetime.now(UTC).isoformat(),
        "tracking_id": "t9",
        "waybill": "SF9999999999",
        "decision": "PULL",
        "reasons": ["GALLERY_MATCH"],
        "risk": 0.9,
        "sender_token": s.sender_token,
        "classifier": "v1",
        "classifications": [
            {
                "image_sha256": ref["image_sha256"],
                "category": "footwear_clothing",
                "category_prob": 0.8,
                "model_version": "v1",
                "gallery": [{"ref_id": ref["ref_id"], "similarity": 0.97, "label": "fake sneaker"}],
            }
        ],
    }
    batch = {"station_id": "st-a", "boot_id": "b1", "events": [later]}
    assert c.post("/api/v1/sync", json=batch, headers=s.station).is_success
    new_id = next(
        i["id"] for i in c.get("/api/v1/reviews", headers=s.root).json() if i["waybill"] == "SF9999999999"
    )
    hit = c.get(f"/desk/items/{new_id}").text
    assert f'src="/api/v1/images/{ref["image_sha256"]}" alt="fake sneaker"' in hit and "0.97" in hit
    # Both hits are in the sender's history on each other's page.
    assert f'href="/desk/items/{s.item_id}"' in hit


def test_report_page_charts_downloads_and_bad_input(site: tuple[Site, TestClient]) -> None:
    s, c = site
    login(c, "sam")
    page = c.get("/report", params={"date": s.day, "lang": "en"}).text
    assert 'id="fig-parcels">3<' in page and 'id="fig-pulled">1<' in page and 'id="fig-held">1<' in page
    assert page.count("<svg") == 7 and "Suspected counterfeit" in page and "st-a" in page
    line2 = c.get("/report", params={"date": s.day, "site": "site1", "line": "line2"}).text
    assert 'id="fig-parcels">0<' in line2
    empty = c.get("/report", params={"date": "2001-01-01"}).text
    assert 'id="fig-parcels">0<' in empty
    csv_resp = c.get("/report/download", params={"date": s.day, "format": "csv", "lang": "zh"})
    assert csv_resp.headers["content-type"].startswith("text/csv")
    assert f'filename="parcelguard-report-{s.day}.csv"' in csv_resp.headers["content-disposition"]
    # Excel needs the byte order mark to read UTF-8; the headers are in the page's language.
    assert csv_resp.content.startswith(b"\xef\xbb\xbf")
    lines = csv_resp.content.decode("utf-8-sig").strip().splitlines()
    assert lines[0].startswith("工位,站点,分拣线,过机包裹,") and lines[-1].startswith("TOTAL,")
    english = c.get("/report/download", params={"date": s.day, "format": "csv", "lang": "en"})
    assert english.content.decode("utf-8-sig").startswith("Station,Site,Line,Parcels,")
    machine = c.get("/report/download", params={"date": s.day, "format": "machine"})
    assert f'filename="parcelguard-report-{s.day}.machine.csv"' in machine.headers["content-disposition"]
    assert machine.text.startswith("station_id,site_id,line_id,parcels,")
    data = json.loads(c.get("/report/download", params={"date": s.day, "format": "json"}).text)
    assert data["parcels"] == 3 and data["date"] == s.day
    assert c.get("/report/download", params={"date": s.day, "format": "xml"}).status_code == 422
    odd = c.get("/report/download", params={"date": s.day, "site": 'x"\r\nSet-Cookie: a=b', "format": "csv"})
    assert odd.status_code == 200 and "set-cookie" not in odd.headers
    want = f'attachment; filename="parcelguard-report-{s.day}-x___Set-Cookie__a_b.csv"'
    assert odd.headers["content-disposition"] == want
    bad = c.get("/report", params={"date": "yesterday", "lang": "zh"})
    assert bad.status_code == 422 and "无效（格式：年-月-日）" in bad.text
    login(c, "olga")
    assert c.get("/report").status_code == 403
    # Static assets come from the app itself; nothing leaves the folder.
    assert c.get("/web/static/web.css").status_code == 200
    assert c.get("/web/static/..%2Fcommon.py").status_code == 404
    assert c.get("/web/static/nothing.js").json()["error"]["code"]


# ---- in a real browser -------------------------------------------------------------------------------


UNLABELLED_JS = """
const bad = [];
for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
  if (!(el.labels.length || el.getAttribute("aria-label"))) bad.push(el.id || el.name);
}
for (const el of document.querySelectorAll("button, a[href]")) {
  if (!(el.textContent.trim() || el.getAttribute("aria-label"))) bad.push(el.outerHTML.slice(0, 60));
}
return bad;
"""
CONTRAST_JS = """
function lum(c) {
  const m = c.match(/[\\d.]+/g).map(Number);
  const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(m[0]) + 0.7152 * f(m[1]) + 0.0722 * f(m[2]);
}
function bg(el) {
  for (; el; el = el.parentElement) {
    const m = getComputedStyle(el).backgroundColor.match(/[\\d.]+/g);
    if (m && (m.length < 4 || Number(m[3]) > 0.9)) return getComputedStyle(el).backgroundColor;
  }
  return "rgb(255,255,255)";
}
const low = [];
const seen = "h1, h2, label, td, th, a, button, dt, dd, .chip, .label, .error";
for (const el of document.querySelectorAll(seen)) {
  if (!el.offsetParent || !el.textContent.trim()) continue;
  const a = lum(getComputedStyle(el).color), b = lum(bg(el));
  const r = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  if (r < 4.5) low.push([el.textContent.trim().slice(0, 30), r]);
}
return low;
"""


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Site, str]]:
    database = f"sqlite:///{tmp_path / 'server.db'}"
    migrate(database)
    with serve_seeded(make_settings(database)) as out:
        yield out


@contextmanager
def serve_seeded(settings: ServerSettings) -> Iterator[tuple[Site, str]]:
    """The app in a real uvicorn server on a free port, seeded through its API; stopped on exit."""
    with serving(settings) as url, httpx.Client(base_url=url, timeout=10) as http:
        yield seed(settings, http), url


@pytest.fixture
def browser(chromium: Any) -> Any:
    return chromium


def check_page(driver: Any) -> None:
    assert driver.execute_script(UNLABELLED_JS) == []
    assert driver.execute_script(CONTRAST_JS) == []


def browser_log_in(driver: Any, wait: Any, url: str, name: str, lang: str, password: str = PASSWORD) -> None:
    """Logs `name` in through the login page, in `lang`, and waits until it has left that page."""
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(f"{url}/login?lang={lang}")
    driver.find_element(By.ID, "username").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "password").submit()
    wait.until(lambda d: "/login" not in d.current_url)


@pytest.mark.browser
def test_every_role_in_the_browser(live: tuple[Site, str], browser: Any, repo_root: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    s, url = live
    shots = repo_root / "artifacts" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    from selenium.common.exceptions import StaleElementReferenceException

    wait = WebDriverWait(browser, 15, ignored_exceptions=(StaleElementReferenceException,))

    def by_id(i: str) -> Any:
        return browser.find_element(By.ID, i)

    def log_in(name: str, lang: str = "en") -> None:
        browser_log_in(browser, wait, url, name, lang)

    browser.get(f"{url}/login")
    check_page(browser)
    focused = browser.switch_to.active_element
    assert focused.get_attribute("id") == "username"
    assert browser.execute_script("return getComputedStyle(arguments[0]).outlineStyle", focused) != "none"
    browser.save_screenshot(str(shots / "server-login-zh.png"))

    # Officer: queue, hit page, reveal with a reason, decide by keyboard, see the audit entries.
    log_in("olga")
    assert browser.current_url.endswith("/desk")
    wait.until(ec.presence_of_element_located((By.LINK_TEXT, WAYBILL)))
    check_page(browser)
    browser.save_screenshot(str(shots / "desk-queue.png"))
    browser.find_element(By.LINK_TEXT, WAYBILL).click()
    wait.until(lambda d: by_id("xray-viewer").get_attribute("data-ready") == "true")
    assert browser.execute_script("return window.parcelguardXray.size()") == [320, 240, 8]
    by_id("xv-invert").click()
    assert browser.execute_script("return window.parcelguardXray.state().invert") is True
    check_page(browser)
    by_id("reveal-reason").send_keys("case 2026-17: counterfeit shoes")
    by_id("reveal-form").find_element(By.TAG_NAME, "button").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "sender-id"), ID))
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(shots / "desk-hit-revealed.png"))
    # A pull order the server refuses shows its error message, readable.
    by_id("order-reason").send_keys("tip-off from brand owner")
    browser.find_element(By.CSS_SELECTOR, "#order-form button[value=waybill]").click()
    err = wait.until(ec.visibility_of_element_located((By.ID, "error")))
    assert "An equal live order already exists" in err.text
    # The revealed record stays on the page (nothing reloads it masked).
    assert by_id("sender-id").text == ID
    browser.find_element(By.TAG_NAME, "body").send_keys("s")
    wait.until(ec.visibility_of_element_located((By.ID, "f-legal_basis")))
    assert browser.switch_to.active_element.get_attribute("id") == "f-legal_basis"
    from selenium.webdriver.support.ui import Select

    Select(by_id("f-legal_basis")).select_by_index(1)
    by_id("f-legal_basis_detail").send_keys("Trademark Law art. 60, counterfeit logo")
    by_id("f-seizure_record").send_keys("S-2026-0017")
    by_id("f-rights_holder").send_keys("Brand Co")
    by_id("decision-form").submit()
    # Decided: the desk moves on to the next item in the queue; the seized one keeps its trail.
    wait.until(lambda d: f"/desk/items/{s.item_id}" not in d.current_url)
    browser.get(f"{url}/desk/items/{s.item_id}")
    wait.until(ec.text_to_be_present_in_element((By.ID, "item-state"), "seized"))
    audit = by_id("audit").text
    assert "claimed" in audit and "seized" in audit and "sender record revealed" in audit
    assert "case 2026-17: counterfeit shoes" in audit
    browser.execute_script("document.getElementById('audit').scrollIntoView()")
    browser.save_screenshot(str(shots / "desk-decided-audit.png"))
    browser.get(f"{url}/desk?lang=zh")
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "待审队列"))
    check_page(browser)
    browser.save_screenshot(str(shots / "desk-queue-zh.png"))

    # Supervisor: the report, a different date, the CSV download.
    log_in("sam")
    assert browser.current_url.endswith("/report")
    assert by_id("fig-parcels").text == "3"
    check_page(browser)
    browser.save_screenshot(str(shots / "report-today.png"))
    # The print layout drops the pickers and the menu, keeps figures, charts and the table.
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    assert not by_id("report-form").is_displayed() and by_id("stations").is_displayed()
    browser.save_screenshot(str(shots / "report-print.png"))
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    browser.execute_script(
        "const d = document.getElementById('date'); d.value = '2001-01-01';"
        "d.dispatchEvent(new Event('change'));"
    )
    wait.until(lambda d: "date=2001-01-01" in d.current_url)
    assert by_id("fig-parcels").text == "0"
    browser.save_screenshot(str(shots / "report-other-date.png"))
    browser.get(f"{url}/report?date={s.day}")
    by_id("csv").click()
    target = browser.downloads / f"parcelguard-report-{s.day}.csv"
    WebDriverWait(browser, 15).until(lambda _d: target.exists() and target.stat().st_size > 0)
    assert target.read_text(encoding="utf-8").splitlines()[-1].startswith("TOTAL,")

    # Admin sees both pages in the menu; an operator gets the readable "no pages" message.
    log_in("root")
    menu = browser.find_element(By.CSS_SELECTOR, "nav .menu").text
    assert "Review desk" in menu and "Daily report" in menu
    log_in("opal", "zh")
    assert "没有可用页面" in browser.find_element(By.TAG_NAME, "main").text
    browser.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
    wait.until(lambda d: d.current_url.endswith("/login"))
