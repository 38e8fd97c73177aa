"""The desk made for throughput, in process on SQLite and PostgreSQL: queue pages, next item, bulk
release, order cancels on the wire, operator results, deadlines with their sources, legal fields."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import update

from edge.wire import FEATURE_ORDER_CANCEL, FEATURES_HEADER, SyncReply
from server import admin
from server.app import create_app
from server.errors import ServerSettingsError
from server.schema import reviews
from server.settings import AuthConfig, ReviewConfig, ServerSettings, load_server_settings
from tests.server.conftest import batch, make_settings

PASSWORD = "a long password 123"
BASIS = "《中华人民共和国知识产权海关保护条例》第十六条"
Factory = Callable[..., dict[str, Any]]


@dataclass
class Desk:
    settings: ServerSettings
    client: TestClient
    root: dict[str, str]
    olga: dict[str, str]  # officer of site1
    omni: dict[str, str]  # officer of every site
    stations: dict[str, dict[str, str]]

    def sync(self, station: str, events: list[dict[str, Any]], cancels: bool = False) -> dict[str, Any]:
        headers = {**self.stations[station], **({FEATURES_HEADER: FEATURE_ORDER_CANCEL} if cancels else {})}
        r = self.client.post("/api/v1/sync", json=batch(station, events), headers=headers)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def items(self) -> dict[str, int]:
        """Waybill (and station) -> item id of every waiting item."""
        rows = self.client.get("/api/v1/reviews?limit=1000", headers=self.root).json()
        return {f"{i['waybill']}@{i['station_id']}": int(i["id"]) for i in rows}

    def page(self, user: str, path: str) -> str:
        self.client.cookies.clear()
        r = self.client.post("/login", data={"username": user, "password": PASSWORD}, follow_redirects=False)
        assert r.status_code == 303, r.text
        text: str = self.client.get(path).text
        return text


@pytest.fixture
def desk(db_url: str) -> Iterator[Desk]:
    settings = make_settings(db_url, review=ReviewConfig(page_size=5), auth=AuthConfig(cookie_secure=False))
    admin.create_user(settings, "root", PASSWORD, "admin", ["*"])
    admin.create_user(settings, "olga", PASSWORD, "officer", ["site1"])
    admin.create_user(settings, "omni", PASSWORD, "officer", ["*"])
    tokens = {
        "st-a": admin.register_station(settings, "st-a", "site1", "line1"),
        "st-b": admin.register_station(settings, "st-b", "site1", "line2"),
        "st-c": admin.register_station(settings, "st-c", "site2", "line1"),
    }

    def bearer(name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {admin.create_api_token(settings, name)}"}

    with TestClient(create_app(settings)) as client:
        yield Desk(
            settings,
            client,
            bearer("root"),
            bearer("olga"),
            bearer("omni"),
            {k: {"Authorization": f"Bearer {v}"} for k, v in tokens.items()},
        )


def hit(parcel: Factory, station: str, seq: int, decision: str, waybill: str, risk: float, **kw: Any) -> Any:
    reasons = ["COUNTERFEIT_SUSPECT"] if decision == "PULL" else ["REALNAME_UNVERIFIED"]
    return parcel(station, seq, decision, waybill=waybill, risk=risk, reasons=reasons, **kw)


def csrf(page: str) -> dict[str, str]:
    found = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert found
    return {"X-CSRF-Token": found.group(1)}


def test_queue_one_row_per_waybill_counts_pages_and_filters(desk: Desk, parcel: Factory) -> None:
    # The same parcel seen at two stations of one site, and eight more HOLDs.
    desk.sync("st-a", [hit(parcel, "st-a", 1, "PULL", "WBTWICE01", 0.95)])
    desk.sync("st-b", [hit(parcel, "st-b", 1, "PULL", "WBTWICE01", 0.9)])
    desk.sync("st-a", [hit(parcel, "st-a", 10 + n, "HOLD", f"WBHOLD{n:03d}", 0.3) for n in range(8)])
    first = desk.page("olga", "/desk?lang=en")
    assert "9 parcels, 10 items waiting, 2 of them PULL" in first
    assert first.count(">WBTWICE01<") == 1 and "page 1 of 2" in first
    at = first.index(">WBTWICE01<")
    row = first[first.rindex("<tr", 0, at) : first.index("</tr>", at)]
    assert ">st-a</a>" in row and ">st-b</a>" in row and "urgent" in row
    second = desk.client.get("/desk?page=2&lang=en").text
    assert "page 2 of 2" in second and "WBTWICE01" not in second and second.count('class="d-HOLD"') == 4
    only_b = desk.client.get("/desk?station=st-b&lang=en").text
    assert "1 parcels, 1 items waiting, 1 of them PULL" in only_b
    today = date.today()
    later = desk.client.get(f"/desk?from={today + timedelta(days=2)}&lang=en").text
    assert "0 parcels" in later
    both = desk.client.get(f"/desk?from={today - timedelta(days=1)}&to={today + timedelta(days=1)}").text
    assert "WBTWICE01" in both
    bad = desk.client.get("/desk?from=2026-13-01")
    assert bad.status_code == 422 and "is not a date" in bad.text
    # The page number is clamped, never an error.
    assert "page 2 of 2" in desk.client.get("/desk?page=999&lang=en").text


def test_next_item_keeps_queue_order(desk: Desk, parcel: Factory) -> None:
    desk.sync("st-a", [hit(parcel, "st-a", 1, "PULL", "WBNEXT001", 0.99)])
    desk.sync("st-a", [hit(parcel, "st-a", 2, "PULL", "WBNEXT002", 0.7)])
    desk.sync("st-a", [hit(parcel, "st-a", 3, "HOLD", "WBNEXT003", 0.4)])
    ids = desk.items()
    a, b, c = ids["WBNEXT001@st-a"], ids["WBNEXT002@st-a"], ids["WBNEXT003@st-a"]
    nxt = desk.client.get
    assert nxt(f"/api/v1/reviews/next?after={a}", headers=desk.olga).json() == {"id": b}
    desk.client.post(f"/api/v1/reviews/{a}/claim", headers=desk.olga)
    note = {"action": "release", "fields": {"note": "genuine, checked on the photo"}}
    assert desk.client.post(f"/api/v1/reviews/{a}/decision", json=note, headers=desk.olga).status_code == 200
    # Decided and gone from the queue, its place still says what follows.
    assert nxt(f"/api/v1/reviews/next?after={a}", headers=desk.olga).json() == {"id": b}
    assert nxt(f"/api/v1/reviews/next?after={c}&stage=1", headers=desk.olga).json() == {"id": b}  # wraps
    assert nxt(f"/api/v1/reviews/next?after={c}&stage=2", headers=desk.olga).status_code == 422
    assert nxt("/api/v1/reviews/next", headers=desk.olga).json() == {"id": b}
    assert nxt("/api/v1/reviews/next?after=999999", headers=desk.olga).status_code == 404
    other = desk.sync("st-c", [hit(parcel, "st-c", 1, "PULL", "WBNEXT004", 0.9)])
    assert other["accepted"]
    far = desk.items()["WBNEXT004@st-c"]
    assert nxt(f"/api/v1/reviews/next?after={far}", headers=desk.olga).status_code == 404


def test_bulk_release_one_site_audited_per_item(desk: Desk, parcel: Factory) -> None:
    desk.sync("st-a", [hit(parcel, "st-a", n, "HOLD", f"WBBULK{n:03d}", 0.2) for n in (1, 2)])
    desk.sync("st-a", [hit(parcel, "st-a", 3, "PULL", "WBBULK003", 0.9)])
    desk.sync("st-a", [hit(parcel, "st-a", 4, "HOLD", "WBBULK004", 0.8)])
    desk.sync("st-c", [hit(parcel, "st-c", 1, "HOLD", "WBBULK005", 0.2)])
    ids = desk.items()
    low = [ids["WBBULK001@st-a"], ids["WBBULK002@st-a"]]
    url = "/api/v1/reviews/bulk-release"
    reason = "real-name records checked with the outlet by phone"

    def post(who: dict[str, str], item_ids: list[int], why: str = reason) -> Any:
        return desk.client.post(url, json={"item_ids": item_ids, "reason": why}, headers=who)

    refused = {
        "across sites": (desk.omni, [*low, ids["WBBULK005@st-c"]], reason, 422, "sites"),
        "a PULL": (desk.olga, [*low, ids["WBBULK003@st-a"]], reason, 409, "not_bulk"),
        "a risky HOLD": (desk.olga, [*low, ids["WBBULK004@st-a"]], reason, 409, "not_bulk"),
        "an empty reason": (desk.olga, low, "x", 422, "no_substance"),
        "an overlong reason": (desk.olga, low, "r" * 501, 422, "invalid"),
        "an unknown item": (desk.olga, [*low, 999999], reason, 404, None),
        "another site's item": (desk.olga, [*low, ids["WBBULK005@st-c"]], reason, 404, None),
        "the same item twice": (desk.olga, [low[0], low[0]], reason, 422, "bad_ids"),
    }
    for what, (who, item_ids, why, status, code) in refused.items():
        r = post(who, item_ids, why)
        assert r.status_code == status, (what, r.text)
        if code and code != "invalid":
            assert r.json()["error"]["code"] == code, what
    # Refusals left everything as it was.
    assert desk.items().keys() == ids.keys()
    done = post(desk.olga, low)
    assert done.status_code == 200, done.text
    assert [i["state"] for i in done.json()] == ["released", "released"]
    audit = desk.client.get("/api/v1/audit?limit=50", headers=desk.root).json()
    released = [a for a in audit if a["action"] == "review_release"]
    assert sorted(a["target"] for a in released) == sorted(f"review:{i}" for i in low)
    assert all(a["actor"] == "olga" and a["detail"]["fields"]["note"] == reason for a in released)
    assert post(desk.olga, low).status_code == 409  # already released


def test_cancelled_order_reaches_stations_that_ask_and_only_them(desk: Desk, parcel: Factory) -> None:
    c = desk.client
    order = {"scope": "waybill", "waybill": "WBCANCEL1", "reason": "brand tip-off", "site_id": "site1"}
    made = c.post("/api/v1/orders", json=order, headers=desk.olga)
    assert made.status_code == 201, made.text
    oid = made.json()["order_id"]
    polled = c.get("/api/v1/orders/poll?timeout=0", headers=desk.stations["st-a"]).json()
    assert [o["order_id"] for o in polled["orders"]] == [oid] and "cancelled" not in polled
    cancel = f"/api/v1/orders/{oid}/cancel"
    for why, status in (("x", 422), ("-", 422), ("r" * 501, 422), ("", 422)):
        assert c.post(cancel, json={"reason": why}, headers=desk.olga).status_code == status, why
    otto = {"Authorization": f"Bearer {_officer(desk, 'otto', ['site2'])}"}
    assert c.post(cancel, json={"reason": "wrong parcel"}, headers=otto).status_code == 404
    done = c.post(cancel, json={"reason": "tip-off withdrawn by the brand"}, headers=desk.olga)
    assert done.status_code == 200, done.text
    body = done.json()
    assert (
        body["cancelled"] and body["cancelled_by"] == "olga" and body["cancel_reason"].startswith("tip-off")
    )
    again = c.post(cancel, json={"reason": "tip-off withdrawn by the brand"}, headers=desk.olga)
    assert again.status_code == 409 and again.json()["error"]["code"] == "cancelled"
    assert (
        c.post("/api/v1/orders/nope/cancel", json={"reason": "no such order"}, headers=desk.olga).status_code
        == 404
    )
    # A station built before the addition never sees the new field, so its strict models still parse.
    old = desk.sync("st-a", [])
    assert "cancelled" not in old and old["orders"] == []
    SyncReply.model_validate(old)
    new = desk.sync("st-a", [], cancels=True)
    assert [x["order_id"] for x in new["cancelled"]] == [oid]
    poll = c.get(
        "/api/v1/orders/poll?timeout=0",
        headers={**desk.stations["st-a"], FEATURES_HEADER: f"other, {FEATURE_ORDER_CANCEL}"},
    ).json()
    assert [x["order_id"] for x in poll["cancelled"]] == [oid] and poll["orders"] == []
    # Another site's station is not told about this site's order at all.
    assert desk.sync("st-c", [], cancels=True)["cancelled"] == []
    audit = c.get("/api/v1/audit?limit=20", headers=desk.root).json()
    entry = next(a for a in audit if a["action"] == "order_cancel")
    assert entry["actor"] == "olga" and entry["target"] == oid and "withdrawn" in entry["detail"]["reason"]


def test_an_executed_or_network_order_is_not_cancelled_by_a_site_officer(desk: Desk) -> None:
    c = desk.client
    order = {"scope": "waybill", "waybill": "WBDONE001", "reason": "tip-off", "site_id": "site1"}
    oid = c.post("/api/v1/orders", json=order, headers=desk.olga).json()["order_id"]
    diverted = {
        "type": "order_status", "key": "st-a:b1:5", "station_id": "st-a", "boot_id": "b1", "seq": 5,
        "at": datetime.now(UTC).isoformat(), "order_id": oid, "state": "diverted", "waybill": "WBDONE001",
    }  # fmt: skip
    desk.sync("st-a", [diverted])
    executed = c.post(f"/api/v1/orders/{oid}/cancel", json={"reason": "too late now"}, headers=desk.olga)
    assert executed.status_code == 409 and executed.json()["error"]["code"] == "executed"
    network = {"scope": "waybill", "waybill": "WBNET0001", "reason": "national alert"}
    nid = c.post("/api/v1/orders", json=network, headers=desk.root).json()["order_id"]
    local = c.post(f"/api/v1/orders/{nid}/cancel", json={"reason": "not for us"}, headers=desk.olga)
    assert local.status_code == 403
    assert c.post(
        f"/api/v1/orders/{nid}/cancel", json={"reason": "alert lifted"}, headers=desk.root
    ).is_success


def _officer(desk: Desk, name: str, sites: list[str]) -> str:
    admin.create_user(desk.settings, name, PASSWORD, "officer", sites)
    return admin.create_api_token(desk.settings, name)


def test_item_shows_operator_results_deadlines_with_sources_and_refuses_empty_legal_fields(
    desk: Desk, parcel: Factory
) -> None:
    desk.sync("st-a", [hit(parcel, "st-a", 1, "PULL", "WBITEM001", 0.95)])
    at = datetime.now(UTC).isoformat()
    operator = {
        "type": "operator", "key": "st-a:b1:2", "station_id": "st-a", "boot_id": "b1", "seq": 2, "at": at,
        "tracking_id": "t1", "waybill": "WBITEM001", "action": "open_box", "result": "counterfeit",
        "operator": "opal",
    }  # fmt: skip
    desk.sync("st-a", [operator])
    item = desk.items()["WBITEM001@st-a"]
    # The decision deadline has passed (set back here; the clock is not moved).
    with desk.client.app.state.services.db.write() as conn:  # type: ignore[attr-defined]
        conn.execute(update(reviews).where(reviews.c.id == item).values(due_at="2020-01-01T00:00:00+00:00"))
    page = desk.page("olga", f"/desk/items/{item}?lang=en")
    assert 'id="decide-overdue"' in page and "2020-01-01 08:00</span> (Asia/Shanghai)" in page
    results = page[page.index('id="results"') :]
    assert "opened" in results and "counterfeit" in results and "opal" in results
    assert "第十六条" in page and "3 working days" in page  # the rule each decision starts, with its source
    h = csrf(page)
    assert desk.client.post(f"/api/v1/reviews/{item}/claim", headers=h).status_code == 200
    tries = {
        "no basis": ({"storage_location": "cage 3"}, "missing_fields"),
        "a made-up basis": ({"legal_basis": "x", "storage_location": "cage 3"}, "bad_legal_basis"),
        "an empty place": ({"legal_basis": BASIS, "storage_location": "x"}, "no_substance"),
        "an unknown field": (
            {"legal_basis": BASIS, "storage_location": "cage 3", "mood": "ok"},
            "unknown_fields",
        ),
    }
    for what, (fields, code) in tries.items():
        r = desk.client.post(
            f"/api/v1/reviews/{item}/decision", json={"action": "detain", "fields": fields}, headers=h
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == code, (what, r.text)
    long = {"legal_basis": BASIS, "storage_location": "c" * 2001}
    too_long = desk.client.post(
        f"/api/v1/reviews/{item}/decision", json={"action": "detain", "fields": long}, headers=h
    )
    assert too_long.status_code == 422
    good = {"legal_basis": BASIS, "legal_basis_detail": "trademark on the sole", "storage_location": "cage 3"}
    done = desk.client.post(
        f"/api/v1/reviews/{item}/decision", json={"action": "detain", "fields": good}, headers=h
    )
    assert done.status_code == 200, done.text
    due = datetime.fromisoformat(done.json()["statutory_due_at"])
    # Three working days in the site's zone: never sooner than three calendar days.
    assert due - datetime.now(UTC) > timedelta(days=2, hours=23)
    after = desk.client.get(f"/desk/items/{item}?lang=en").text
    statutory = after[after.index('id="statutory"') :]
    assert "rights holder notified" in statutory and "知识产权海关保护条例" in statutory
    assert desk.client.get("/desk/items/999999").status_code == 404


def test_live_queue_stream_counts_new_pulls(desk: Desk, parcel: Factory) -> None:
    desk.sync("st-a", [hit(parcel, "st-a", 1, "PULL", "WBLIVE001", 0.9)])
    first = desk.items()["WBLIVE001@st-a"]
    desk.sync("st-a", [hit(parcel, "st-a", 2, "PULL", "WBLIVE002", 0.9)])
    desk.sync("st-c", [hit(parcel, "st-c", 1, "PULL", "WBLIVE003", 0.9)])
    desk.page("olga", "/desk")
    r = desk.client.get(f"/desk/stream?once=1&since={first}")
    assert r.headers["content-type"].startswith("text/event-stream")
    data = json.loads(r.text.split("event: queue\ndata: ")[1].split("\n")[0])
    # Two PULLs wait at olga's site, one arrived after `since`; site2's PULL is not hers.
    assert data["pulls"] == 2 and data["new_pulls"] == 1 and data["items"] == 2
    assert desk.client.get("/desk/stream?once=1&site=site2").status_code == 403
    desk.client.cookies.clear()
    assert desk.client.get("/desk/stream?once=1", follow_redirects=False).status_code == 303


def test_statutory_days_is_refused_with_where_the_deadlines_went(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="jurisdictions"):
        ReviewConfig(statutory_days={"detain": 7})  # type: ignore[call-arg]
    toml = tmp_path / "server.toml"
    toml.write_text("[server.review]\nstatutory_days = { detain = 7 }\n", encoding="utf-8")
    with pytest.raises(ServerSettingsError, match=r"review: .*statutory_days is no longer read"):
        load_server_settings(toml)
    with pytest.raises(ValidationError, match="legal basis"):
        ReviewConfig(legal_bases=["x"])


def test_desk_bench_measures_every_call_on_a_small_queue(tmp_path: Path) -> None:
    import argparse

    from server.desk_bench import run_bench

    out = tmp_path / "bench.json"
    assert run_bench(argparse.Namespace(pg_url=None, items=60, repeat=1, out=str(out))) == 0
    figures = json.loads(out.read_text(encoding="utf-8"))["engines"]["sqlite"]
    assert figures["items"] == 60 and figures["parcels"] == 30
    assert all(
        figures[k] > 0 for k in ("baseline_top50_ms", "page_first_ms", "live_signal_ms", "next_item_ms")
    )
