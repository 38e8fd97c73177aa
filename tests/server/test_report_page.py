"""The supervisor's report page over a date range: trend charts, colours with meaning and their legend, the
filters on the print layout, CSV in the page's language; in real Chromium in Chinese and English."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi.testclient import TestClient

from server import admin
from server.app import create_app
from server.db import migrate, utcnow
from server.settings import ServerSettings
from server.web.charts import DONE, HELD, MISSED, PENDING
from tests.server.conftest import serving
from tests.server.test_web import PASSWORD, login, make_settings

ROOT = Path(__file__).resolve().parents[2]
ZONE = ZoneInfo("Asia/Shanghai")
DAYS = 5


@dataclass
class Week:
    first: str
    last: str
    # Per site-local day: (parcels, held, pulled, diverted, missed, pending)
    want: dict[str, tuple[int, int, int, int, int, int]]


def seed(settings: ServerSettings, http: httpx.Client | TestClient) -> Week:
    """Five days of a site's parcels in the morning, Beijing time, each day with another mix of outcomes."""
    admin.create_user(settings, "sam", PASSWORD, "supervisor", ["site1"])
    station = {"Authorization": f"Bearer {admin.register_station(settings, 'st-a', 'site1', 'line1')}"}
    now = utcnow().astimezone(ZONE)
    today = now.date()
    seq = 0
    want: dict[str, tuple[int, int, int, int, int, int]] = {}
    events: list[dict[str, Any]] = []
    for back in range(DAYS):
        day = today - timedelta(days=DAYS - 1 - back)
        # Half past nine, or today a little before now: no event from the future.
        at = min(
            datetime.combine(day, datetime.min.time(), ZONE).replace(hour=9, minute=30),
            now - timedelta(minutes=5),
        )
        n_clear, n_hold, diverted, missed, pending = (
            3 + back,
            back % 3,
            1 + back,
            back % 2,
            int(back == DAYS - 1),
        )
        plan = (
            [("CLEAR", None)] * n_clear
            + [("HOLD", "DIVERTED")] * n_hold
            + [("PULL", "DIVERTED")] * diverted
            + [("PULL", "LATE")] * missed
            + [("PULL", "PENDING")] * pending
        )
        for decision, outcome in plan:
            seq += 1
            events.append(
                {
                    "type": "parcel",
                    "key": f"st-a:b1:{seq}",
                    "station_id": "st-a",
                    "boot_id": "b1",
                    "seq": seq,
                    "at": (at + timedelta(seconds=seq)).isoformat(),
                    "tracking_id": f"t{seq}",
                    "waybill": f"WB{seq:08d}",
                    "decision": decision,
                    "reasons": [] if decision == "CLEAR" else ["SENDER_BLACKLISTED"],
                    "risk": 0.9 if decision != "CLEAR" else 0.1,
                    "classifier": "off",
                    "declared_category": "cosmetics",
                    **({"divert": {"outcome": outcome}} if outcome else {}),
                }
            )
        pulled = diverted + missed + pending
        want[day.isoformat()] = (len(plan), n_hold, pulled, diverted, missed, pending)
    r = http.post(
        "/api/v1/sync", json={"station_id": "st-a", "boot_id": "b1", "events": events}, headers=station
    )
    assert r.is_success, r.text
    days = sorted(want)
    return Week(days[0], days[-1], want)


def test_range_csv_and_printed_filters(db_url: str) -> None:
    settings = make_settings(db_url)
    with TestClient(create_app(settings)) as c:
        week = seed(settings, c)
        login(c, "sam")
        page = c.get("/report", params={"date": week.first, "to": week.last, "lang": "zh"}).text
        total = [sum(v[i] for v in week.want.values()) for i in range(6)]
        assert f'id="fig-parcels">{total[0]}<' in page and f'id="fig-missed">{total[4]}<' in page
        assert f'id="fig-pending">{total[5]}<' in page and f'id="fig-diverted">{total[3]}<' in page
        # Every day of the range is a bar; red, amber, green and grey mean what the legend says.
        assert page.count("<svg") == 7 and f"{week.last[5:]}</text>" in page
        for colour in (MISSED, HELD, DONE, PENDING):
            assert f'fill="{colour}"' in page
        assert "红色：漏拦" in page and "琥珀色：暂扣" in page and "绿色：已分拣" in page
        assert "化妆品" in page and "Asia/Shanghai" in page and "期间拦截指令" in page
        printed = page[
            page.index('id="print-filters"') : page.index("</dl>", page.index('id="print-filters"'))
        ]
        assert week.first in printed and week.last in printed and "全部" in printed
        name = f"parcelguard-report-{week.first}--{week.last}"
        zh = c.get(
            "/report/download", params={"date": week.first, "to": week.last, "format": "csv", "lang": "zh"}
        )
        assert f'filename="{name}.csv"' in zh.headers["content-disposition"]
        assert zh.content.startswith("\ufeff工位,站点,分拣线,过机包裹".encode())
        total_row = zh.content.decode("utf-8-sig").splitlines()[-1].split(",")
        assert total_row[0] == "TOTAL" and total_row[3] == str(total[0]) and total_row[-1] == str(total[5])
        machine = c.get("/report/download", params={"date": week.first, "to": week.last, "format": "machine"})
        assert machine.text.splitlines()[0].endswith(",pulls_pending")
        # Bad ranges: refused with a message, nothing shown.
        backwards = c.get("/report", params={"date": week.last, "to": week.first})
        assert backwards.status_code == 422 and "before" in backwards.text
        assert c.get("/report", params={"date": "2026-01-01", "to": "2026-12-31"}).status_code == 422
        assert c.get("/report", params={"date": week.first, "to": "soon"}).status_code == 422
        api = c.get("/api/v1/reports/daily", params={"date": week.first, "to": week.last}).json()
        got = {d["date"]: tuple(d[k] for k in ("parcels", "held", "pulled", "diverted", "missed", "pending"))
               for d in api["trend"]}  # fmt: skip
        assert got == week.want


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Week, str]]:
    database = f"sqlite:///{tmp_path / 'server.db'}"
    migrate(database)
    settings = make_settings(database)
    with serving(settings) as url, httpx.Client(base_url=url, timeout=10) as http:
        yield seed(settings, http), url


@pytest.mark.browser
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_report_range_in_the_browser(live: tuple[Week, str], chromium: Any, lang: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    week, url = live
    browser = chromium
    browser.set_window_size(1400, 1100)
    shots = ROOT / "docs" / "screens"
    shots.mkdir(parents=True, exist_ok=True)
    wait = WebDriverWait(browser, 15)

    def by_id(i: str) -> Any:
        return browser.find_element(By.ID, i)

    def set_value(field: str, value: str) -> None:
        script = "const d = document.getElementById(arguments[0]); d.value = arguments[1];"
        browser.execute_script(script + "d.dispatchEvent(new Event('change'));", field, value)

    browser.get(f"{url}/login?lang={lang}")
    by_id("username").send_keys("sam")
    by_id("password").send_keys(PASSWORD)
    by_id("password").submit()
    wait.until(lambda d: d.current_url.endswith("/report"))
    # Without a date: today at the site, alone.
    assert by_id("date").get_attribute("value") == week.last == by_id("to").get_attribute("value")
    assert by_id("fig-parcels").text == str(week.want[week.last][0])
    # A new start keeps a single day single; then the end date makes it a range, at once.
    set_value("to", week.last)
    set_value("date", week.first)
    wait.until(lambda d: f"date={week.first}" in d.current_url)
    assert by_id("to").get_attribute("value") == week.first
    set_value("to", week.last)
    wait.until(lambda d: f"to={week.last}" in d.current_url)
    total = [sum(v[i] for v in week.want.values()) for i in range(6)]
    assert by_id("fig-parcels").text == str(total[0]) and by_id("fig-missed").text == str(total[4])
    bars = browser.find_elements(By.CSS_SELECTOR, "#chart-trend-parcels rect")
    assert len(bars) == DAYS
    red = browser.execute_script("return getComputedStyle(arguments[0]).color", by_id("fig-missed"))
    assert red == "rgb(185, 28, 28)"
    legend = by_id("legend").text
    assert (
        ("漏拦" in legend and "暂扣" in legend) if lang == "zh" else ("missed" in legend and "held" in legend)
    )
    assert not by_id("print-filters").is_displayed()
    browser.save_screenshot(str(shots / f"report-range-{lang}.png"))
    # Printed, the pickers go and the filters they held are written out.
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    assert not by_id("report-form").is_displayed() and by_id("print-filters").is_displayed()
    printed = by_id("print-filters").text
    assert week.first in printed and week.last in printed and "Asia/Shanghai" in printed
    browser.save_screenshot(str(shots / f"report-print-{lang}.png"))
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    by_id("csv").click()
    target = browser.downloads / f"parcelguard-report-{week.first}--{week.last}.csv"
    WebDriverWait(browser, 15).until(lambda _d: target.exists() and target.stat().st_size > 0)
    head = target.read_bytes()
    assert head.startswith(("\ufeff工位," if lang == "zh" else "\ufeffStation,").encode())
