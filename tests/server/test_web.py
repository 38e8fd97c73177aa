"""Server pages in process: login, role menus, the review desk, the daily report, downloads and errors."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
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


def make_settings(tmp_path: Path) -> ServerSettings:
    url = f"sqlite:///{tmp_path / 'server.db'}"
    migrate(url)
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
        {"waybill": w, "sender_id_type": "resident_id", "sender_id_number": ID, "quantity": "12",
         "declared_name": "运动鞋 sports shoes", "declared_category": "footwear_clothing"}
        for w in (WAYBILL, WAYBILL2)
    ]  # fmt: skip
    assert http.post("/api/v1/manifests/import", json=manifests, headers=root).json()["imported"] == 2
    reply = http.post(
        "/api/v1/sync", json={"station_id": "st-a", "boot_id": "b1", "events": []}, headers=station
    )
    token = reply.json()["registry"]["senders"][0]["sender_token"]
    xray, photo = png("xray"), png("camera")
    imgs = [
        {"sha256": hashlib.sha256(xray).hexdigest(), "kind": "xray", "content_type": "image/png", "size": len(xray)},
        {"sha256": hashlib.sha256(photo).hexdigest(), "kind": "camera", "content_type": "image/png", "size": len(photo)},
    ]  # fmt: skip
    at = datetime.now(UTC).replace(microsecond=0)
    base = {
        "station_id": "st-a",
        "boot_id": "b1",
        "at": at.isoformat(),
        "classifier": "efficientnet-lite0 v1",
    }
    cls = [{"image_sha256": imgs[0]["sha256"], "category": "footwear_clothing", "category_prob": 0.91, "counterfeit_score": 0.87,
            "gallery": [], "model_version": "v1"}]  # fmt: skip
    evs = [
        {**base, "type": "parcel", "key": "st-a:b1:1", "seq": 1, "tracking_id": "t1", "waybill": WAYBILL,
         "decision": "PULL", "reasons": ["COUNTERFEIT_SUSPECT", "DECLARED_MISMATCH"], "risk": 0.9,
         "sender_token": token, "declared_category": "footwear_clothing", "classifications": cls, "images": imgs,
         "divert": {"outcome": "DIVERTED", "chute": "P1"}},
        {**base, "type": "parcel", "key": "st-a:b1:2", "seq": 2, "tracking_id": "t2", "waybill": WAYBILL2,
         "decision": "HOLD", "reasons": ["REALNAME_UNVERIFIED"], "risk": 0.4, "sender_token": token},
        {**base, "type": "parcel", "key": "st-a:b1:3", "seq": 3, "tracking_id": "t3", "waybill": "SF1234567890",
         "decision": "CLEAR", "reasons": [], "risk": 0.0},
    ]  # fmt: skip
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
    return Site(settings, token, int(pull["id"]), at.date().isoformat())


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Site, TestClient]]:
    settings = make_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        yield seed(settings, client), client


def login(client: TestClient, name: str, next_: str = "/") -> httpx.Response:
    client.cookies.clear()
    return client.post(
        "/login", data={"username": name, "password": PASSWORD, "next": next_}, follow_redirects=False
    )


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
    assert bad.status_code == 401 and "wrong username or password" in bad.text
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
    assert (
        denied.status_code == 403
        and "role has no pages" in denied.text.lower()
        or "没有可用页面" in denied.text
    )
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
        "footwear_clothing",
        "运动鞋",
        "/api/v1/images/",
    ):
        assert expected in page
    assert ID not in page
    # Another site's officer does not see the item; a readable error page, same message as the API.
    login(c, "otto")
    other = c.get(f"/desk/items/{s.item_id}")
    assert other.status_code == 404 and f"no review item {s.item_id}" in other.text
    assert c.get("/desk/items/0").status_code == 404


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
    fields = {"legal_basis": "TM law art 60", "seizure_record": "S-1", "rights_holder": "Brand Co"}
    done = c.post(
        f"/api/v1/reviews/{s.item_id}/decision", json={"action": "seize", "fields": fields}, headers=headers
    )
    assert done.status_code == 200, done.text
    order = c.post(
        "/api/v1/orders",
        json={"scope": "sender", "sender_token": s.sender_token, "reason": "tip-off", "site_id": "site1"},
        headers=headers,
    )
    assert order.status_code == 201, order.text
    trail = c.get(f"/desk/items/{s.item_id}").text
    for action in ("reveal", "review_claim", "review_seize", "order_issue"):
        assert f"<td>{action}</td>" in trail
    assert "case 2026-17 counterfeit" in trail and ID not in trail


def test_report_page_charts_downloads_and_bad_input(site: tuple[Site, TestClient]) -> None:
    s, c = site
    login(c, "sam")
    page = c.get("/report", params={"date": s.day, "lang": "en"}).text
    assert 'id="fig-parcels">3<' in page and 'id="fig-pulled">1<' in page and 'id="fig-held">1<' in page
    assert page.count("<svg") == 5 and "Suspected counterfeit" in page and "st-a" in page
    line2 = c.get("/report", params={"date": s.day, "site": "site1", "line": "line2"}).text
    assert 'id="fig-parcels">0<' in line2
    empty = c.get("/report", params={"date": "2001-01-01"}).text
    assert 'id="fig-parcels">0<' in empty
    csv_resp = c.get("/report/download", params={"date": s.day, "format": "csv"})
    assert csv_resp.headers["content-type"].startswith("text/csv")
    assert f'filename="parcelguard-report-{s.day}.csv"' in csv_resp.headers["content-disposition"]
    lines = csv_resp.text.strip().splitlines()
    assert lines[0].startswith("station_id,") and lines[-1].startswith("TOTAL,")
    data = json.loads(c.get("/report/download", params={"date": s.day, "format": "json"}).text)
    assert data["parcels"] == 3 and data["date"] == s.day
    assert c.get("/report/download", params={"date": s.day, "format": "xml"}).status_code == 422
    bad = c.get("/report", params={"date": "yesterday"})
    assert bad.status_code == 422 and "is not a date" in bad.text
    login(c, "olga")
    assert c.get("/report").status_code == 403
    # Static assets come from the app itself; nothing leaves the folder.
    assert c.get("/web/static/web.css").status_code == 200
    assert c.get("/web/static/..%2Fcommon.py").status_code == 404
    assert c.get("/web/static/nothing.js").json()["error"]["code"]
