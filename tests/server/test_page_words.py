"""Every server page and template in Chinese has no English left; the catalogs have both languages."""

from __future__ import annotations

import html
import json
import logging
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.web import catalog
from server.web.catalog_tool import DOMAINS, LOCALES, pending_words, read_catalog, used_keys
from server.web.words import words
from tests.server.test_web import (
    WAYBILL,
    WAYBILL2,
    Site,
    browser_log_in,
    csrf_of,
    live,  # noqa: F401 (a fixture)
    login,
    make_settings,
    seed,
)

TEMPLATES = Path(__file__).resolve().parents[2] / "server" / "web" / "templates"
# Latin words a Chinese page may show: brand and format names, units, codes people read as codes.
ALLOWED = {
    "Esc",
    "CSV",
    "JSON",
    "UTC",
    "PIN",
    "English",
    "MiB",
    "ID",
    "USB",
    "DNS",
    "CSRF",
    "YYYY",
    "MM",
    "DD",
}
# Values the test data itself put there (user names, station, site and line ids, typed reasons).
DATA = {
    "olga",
    "otto",
    "sam",
    "root",
    "opal",
    "st-a",
    "st-b",
    "site1",
    "site2",
    "line1",
    "line2",
    "abc",
    "yesterday",
}
DATA_TEXT = ("sports shoes", "case 2026-17 counterfeit", "tip-off", "TM law art 60", "Brand Co", "S-1")
# waybills, priorities and chutes (P140, H1), case numbers (CASE-000001), hashes, the T of an ISO time
CODE = re.compile(r"^(?:[A-Z]{2}\d+[A-Z]{2}|SF\d+|[A-Z]\d+|CASE-\d+|[0-9a-f]{6,}|\d+\w*)$")
PATH = re.compile(r"(?<![\w/])/[\w./-]+")  # a file or device path, as configured
# The head of a token as the links pages show it: "#9d7d8a" for a node, "b4eec…" masked.
MASKED = re.compile(r"#[0-9a-f]{4,}|\b[0-9a-f]{4,}…")
ZONE = re.compile(r"\b[A-Z][a-z]+/[A-Za-z_]+\b")  # an IANA time zone id (Asia/Shanghai), as configured


def visible_text(page: str) -> str:
    """What a reader sees or hears: text outside tags, titles, placeholders, alt and aria labels."""
    page = re.sub(r"<script\b.*?</script>|<style\b.*?</style>|<!--.*?-->", " ", page, flags=re.S)
    shown = re.findall(r'\b(?:title|placeholder|alt|aria-label)="([^"]*)"', page)
    text = re.sub(r"<[^>]+>", " ", page)
    return html.unescape(" ".join([text, *shown]))


def english_words(page: str) -> list[str]:
    text = PATH.sub(" ", ZONE.sub(" ", MASKED.sub(" ", visible_text(page))))
    for known in DATA_TEXT:
        text = text.replace(known, " ")
    found = []
    for word in re.findall(r"[A-Za-z][A-Za-z0-9_'’.-]*[A-Za-z0-9]|[A-Za-z]{2,}", text):
        if word in ALLOWED or word in DATA or CODE.match(word):
            continue
        found.append(word)
    return found


@pytest.fixture
def zh_site(db_url: str) -> Iterator[tuple[Site, TestClient]]:
    # db_url (tests/server/conftest.py): a migrated SQLite file, and PostgreSQL where the suite has one.
    settings = make_settings(db_url)
    with TestClient(create_app(settings)) as client:
        site = seed(settings, client)
        # Device details as stations send them, for the stations page.
        now = datetime.now(UTC).isoformat()
        events = [
            {"type": "device_status", "key": f"st-a:b1:{50 + i}", "station_id": "st-a", "boot_id": "b1",
             "seq": 50 + i, "at": now, "device": dev, "up": up, "detail": detail}
            for i, (dev, up, detail) in enumerate(
                [("scanner", False, "replay finished"), ("sorter", True, "last divert DIVERTED"),
                 ("camera", True, "streaming")]
            )
        ]  # fmt: skip
        batch = {"station_id": "st-a", "boot_id": "b1", "events": events}
        assert client.post("/api/v1/sync", json=batch, headers=site.station).is_success
        yield site, client


def planted_cluster(c: TestClient, site: str) -> str:
    """A split-shipment cluster of `site` as the links job stores one (server.links.clusters)."""
    from server.schema import link_clusters

    cluster_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"zh-{site}"))
    now = datetime.now(UTC).isoformat()
    explain = json.dumps(
        {"same_contents": 1, "same_destination": 1, "span_days": 1, "similar_images": 0, "stations": 1}
    )
    with c.app.state.services.db.write() as conn:  # type: ignore[attr-defined]
        conn.execute(
            link_clusters.insert().values(
                cluster_id=cluster_id, score=0.9, parcels=2, senders=2, first_at=now, last_at=now,
                site_id=site, explain=explain, created_at=now, updated_at=now,
            )
        )  # fmt: skip
    return cluster_id


def pages_in_chinese(s: Site, c: TestClient) -> Iterator[tuple[str, str]]:
    """(what, html) of every page and template, in Chinese, with decisions, orders and errors on them."""
    c.cookies.clear()
    yield "login", c.get("/login?lang=zh").text
    yield "login refused", c.post("/login", data={"username": "olga", "password": "wrong password!"}).text
    yield "login empty", c.post("/login", data={"username": "", "password": ""}).text
    login(c, "olga")
    page = c.get(f"/desk/items/{s.item_id}").text
    headers = {"X-CSRF-Token": csrf_of(page)}
    c.post(
        f"/api/v1/senders/{s.sender_token}/reveal",
        json={"reason": "case 2026-17 counterfeit"},
        headers=headers,
    )
    c.post(f"/api/v1/reviews/{s.item_id}/claim", headers=headers)
    fields = {"legal_basis": "TM law art 60", "seizure_record": "S-1", "rights_holder": "Brand Co"}
    c.post(
        f"/api/v1/reviews/{s.item_id}/decision", json={"action": "seize", "fields": fields}, headers=headers
    )
    order = {"scope": "sender", "sender_token": s.sender_token, "reason": "tip-off", "site_id": "site1"}
    c.post("/api/v1/orders", json=order, headers=headers)
    yield "desk", c.get("/desk").text
    yield "desk filtered", c.get("/desk", params={"state": "open", "reason": "REALNAME_UNVERIFIED"}).text
    yield "desk search", c.get("/desk", params={"q": s.sender_token[:12]}).text
    yield "desk empty", c.get("/desk", params={"q": "nothing-matches"}).text
    yield "decided item", c.get(f"/desk/items/{s.item_id}").text
    case = c.post("/api/v1/cases", json={"title": "运动鞋两双", "items": [s.item_id]}, headers=headers)
    assert case.is_success, case.text
    yield "cases", c.get("/desk/cases").text
    yield "case", c.get(f"/desk/cases/{case.json()['id']}").text
    yield "no such case", c.get("/desk/cases/999999").text
    other = next(i for i in c.get("/api/v1/reviews", headers=s.root).json() if i["waybill"] == WAYBILL2)
    yield "open item", c.get(f"/desk/items/{other['id']}").text
    yield "no such item", c.get("/desk/items/999999").text
    yield "bad item address", c.get("/desk/items/abc").text
    yield "report denied", c.get("/report").text
    login(c, "sam")
    yield "report", c.get("/report", params={"date": s.day}).text
    yield "report line", c.get("/report", params={"date": s.day, "site": "site1", "line": "line1"}).text
    yield "report empty", c.get("/report", params={"date": "2001-01-01"}).text
    yield "report bad date", c.get("/report", params={"date": "yesterday"}).text
    yield "report bad format", c.get("/report/download", params={"date": s.day, "format": "xml"}).text
    yield "stations", c.get("/stations").text
    login(c, "olga")
    yield "orders", c.get("/desk/orders").text
    yield "sender links", c.get(f"/desk/links/senders/{s.sender_token}").text
    yield "cluster", c.get(f"/desk/links/clusters/{planted_cluster(c, 'site1')}").text
    login(c, "root")
    yield "admin users", c.get("/admin/users").text
    yield "admin stations", c.get("/admin/stations").text
    yield "admin watchlist", c.get("/admin/watchlist").text
    login(c, "otto")
    yield "other site's item", c.get(f"/desk/items/{s.item_id}").text
    yield "other site's stations", c.get("/stations", params={"site": "site1"}).text
    login(c, "opal")
    yield "operator home", c.get("/", follow_redirects=True).text
    token = csrf_of(c.get("/").text)
    assert token
    yield "logout refused", c.post("/logout", data={"csrf": "nope"}).text


def test_every_page_in_chinese_has_no_english_words(
    zh_site: tuple[Site, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.web.common import templates

    s, c = zh_site
    loaded: set[str] = set()
    loader = templates.env.loader
    assert loader is not None
    real = loader.get_source

    def recording(env: Any, name: str) -> Any:
        loaded.add(name)
        return real(env, name)

    monkeypatch.setattr(loader, "get_source", recording)
    templates.env.cache = None  # every template read through the loader, not from the cache
    leftovers = {}
    for what, page in pages_in_chinese(s, c):
        assert "<html" in page, what
        left = english_words(page)
        if left:
            leftovers[what] = sorted(set(left))
    assert leftovers == {}, "\n".join(f"{k}: {v}" for k, v in leftovers.items())
    # The pages above went through every template there is.
    assert loaded == {p.name for p in TEMPLATES.glob("*.html")}


def test_the_detector_finds_english() -> None:
    # The check above can fail: English on a page is found, data and codes are not.
    assert english_words("<p>状态 open · 品类 printed_matter</p>") == ["open", "printed_matter"]
    assert english_words('<p title="replay finished">扫码器</p>') == ["replay", "finished"]
    assert english_words(f"<td>{WAYBILL}</td><td>P140</td><td>st-a</td><td>CSV</td>") == []


@pytest.mark.parametrize("domain", DOMAINS, ids=lambda d: d.name)
def test_every_catalog_entry_has_both_languages(domain: object) -> None:
    from server.web.catalog_tool import Domain

    assert isinstance(domain, Domain)
    catalogs = {lang: read_catalog(domain.po(lang), lang, domain.name) for lang in LOCALES}
    keys = {lang: {str(m.id) for m in c if m.id} for lang, c in catalogs.items()}
    assert keys["zh"] == keys["en"], keys["zh"] ^ keys["en"]
    texts = {lang: {str(m.id): m.string for m in c if m.id} for lang, c in catalogs.items()}
    for key in keys["en"]:
        zh, en = texts["zh"][key], texts["en"][key]
        assert isinstance(zh, str) and isinstance(en, str) and zh and en, key
        # Chinese words have Chinese in them, unless they are a code or a language's own name.
        assert re.search(r"[\u4e00-\u9fff]", zh) or zh in ("English", "Esc", "P{n}"), key
        assert set(re.findall(r"\{\w+\}", zh)) == set(re.findall(r"\{\w+\}", en)), key
    # `t.key` in a template reads an attribute first: no key may be the name of one of the lookup's own.
    assert not keys["en"] & set(dir(catalog.Words)), keys["en"] & set(dir(catalog.Words))
    # Every key a template, script or page module names is in the catalog.
    assert sorted(set(used_keys(domain)) - keys["en"]) == []
    # Words waiting to be folded in have both languages too (pending_words checks each pair).
    pending_words(domain)


def test_unknown_key_shows_itself_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    t = words("zh")
    with caplog.at_level(logging.WARNING, logger="server.web.catalog"):
        assert t["no_such_key_here"] == "no_such_key_here"
        assert t.of("state", "vanished") == "vanished"
        assert t("median_seconds", n=5) == "5 秒" and t("median_seconds") == "{n} 秒"
        assert t.message("a message nobody wrote") == "a message nobody wrote"
    logged = caplog.text
    assert "no_such_key_here" in logged and "state_vanished" in logged and "a message nobody wrote" in logged
    # A template naming an unknown key renders, showing the key.
    from server.web.common import templates

    page = templates.env.from_string("<p>{{ t.not_a_key }} {{ t['also_not'] }}</p>").render(t=t)
    assert page == "<p>not_a_key also_not</p>"
    assert t.message("no review item 999999") == "没有审核项目 999999"
    # A value named by its placeholder's family shows in words too; {n} only ever takes a number.
    head = "classifier on (v3); head h1: camera images, any goods category"
    assert t.message(head) == "识别模型已启用（v3），假冒识别头 h1：相机图像，所有品类"
    assert t.message("last divert DIVERTED") == "最近分拣：已分拣"
    assert t.message("camera folder /srv/c: no more images") == "图像目录 /srv/c 已无新图像"
    assert words("en").message("no review item 999999") == "no review item 999999"
    with pytest.raises(ValueError, match="unknown language"):
        words("fr")


def test_a_missing_compiled_catalog_falls_back_to_the_po(tmp_path: Path) -> None:
    # A checkout whose .mo is missing reads the .po; with neither the install is broken and says so.
    src = catalog.catalog_path(catalog.LOCALE_DIR, "server", "zh", ".po")
    po = catalog.catalog_path(tmp_path, "server", "zh", ".po")
    po.parent.mkdir(parents=True)
    po.write_bytes(src.read_bytes())
    assert catalog.read_catalog(tmp_path, "server", "zh")["claim"] == "认领"
    with pytest.raises(catalog.CatalogMissing):
        catalog.read_catalog(tmp_path, "server", "en")


@pytest.mark.browser
def test_pages_in_chinese_in_the_browser(
    live: tuple[Site, str],  # noqa: F811 (the fixture of tests/server/test_web.py)
    chromium: Any,
    screenshots: Path,
) -> None:
    """What the pages' scripts write (a claim, an error) is Chinese too, as Chromium shows it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    s, url = live
    wait = WebDriverWait(chromium, 15)

    def shown() -> list[str]:
        text = chromium.find_element(By.TAG_NAME, "body").get_attribute("innerText")
        return english_words(html.escape(text))

    browser_log_in(chromium, wait, url, "olga", "zh")
    chromium.get(f"{url}/desk/items/{s.item_id}")
    chromium.find_element(By.ID, "claim").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "item-state"), "已认领"))
    assert "已认领 · olga" in chromium.find_element(By.ID, "notice").text
    # An order the server refuses: its refusal in words, not the API's English.
    chromium.find_element(By.ID, "order-reason").send_keys("tip-off")
    chromium.find_element(By.CSS_SELECTOR, "#order-form button[value=waybill]").click()
    chromium.find_element(By.CSS_SELECTOR, "#order-form button[value=waybill]").click()
    err = wait.until(ec.visibility_of_element_located((By.ID, "error")))
    assert err.text == "已有相同的有效拦截指令"
    chromium.execute_script("window.scrollTo(0, 0)")
    chromium.save_screenshot(str(screenshots / "zh-desk-item-claimed-refused-order.png"))
    assert shown() == []
    # A reason the server finds too short (the page's own check taken away): the rule in words, the
    # server's detail as the tooltip.
    chromium.execute_script("document.getElementById('reveal-reason').removeAttribute('minlength')")
    chromium.find_element(By.ID, "reveal-reason").send_keys("short")
    chromium.find_element(By.ID, "reveal-form").find_element(By.TAG_NAME, "button").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "error"), "输入不符合要求"))
    assert "reason" in (chromium.find_element(By.ID, "error").get_attribute("title") or "")
    assert shown() == []
    chromium.get(f"{url}/desk/items/999999")
    assert "没有审核项目 999999" in chromium.find_element(By.TAG_NAME, "main").text and shown() == []
    chromium.save_screenshot(str(screenshots / "zh-error-no-item.png"))
    browser_log_in(chromium, wait, url, "sam", "zh")
    chromium.get(f"{url}/report?date={s.day}")
    assert shown() == []
    chromium.save_screenshot(str(screenshots / "zh-report.png"))
    chromium.get(f"{url}/stations")
    assert shown() == []
    chromium.save_screenshot(str(screenshots / "zh-stations.png"))
