"""Registry import, watchlist, reveal and the privacy promise, on both engines."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import sqlalchemy

from server.db import normalise_url

ID = "11010519491231002X"
PHONE = "13812345678"
USC = "91350100M000100Y43"
SENDERS_CSV = (
    "id_type,id_number,name,phone,address,verified,verified_at,outlet,courier,agreement_customer,usc_code,"
    "qualification\n"
    f"resident_id,{ID},张三,{PHONE},北京市东城区1号,true,2026-01-02T03:04:05Z,O1,C1,false,,\n"
    "resident_id,110105194912310021,李四,13912345678,,true,,O1,C1,false,,\n"
    f"usc_code,{USC},Shop Ltd,010-12345678,,yes,,O2,C2,true,,licensed\n"
    "passport,E12345678,Bob,12345,,true,,O1,C1,false,,\n"
    "resident_id,440304199001011233,Wang,,,true,,O1,C1,true,,\n"
    "driving,123456,X,,,true,,,,,,\n"
)


def _token_of(registry: dict[str, Any], id_number: str) -> str:
    """The sender token of the record whose masked ID ends like `id_number`."""
    (token,) = [s["sender_token"] for s in registry["senders"] if s["id_masked"].endswith(id_number[-4:])]
    return str(token)


def test_import_reports_each_rejected_row(server: Any) -> None:
    r = server.client.post(
        "/api/v1/senders/import",
        content=SENDERS_CSV.encode(),
        headers={**server.admin, "Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["imported"] == 2
    reasons = {row["row"]: row["reason"] for row in body["rejected"]}
    assert set(reasons) == {2, 4, 5, 6}
    assert (
        "GB 11643" in reasons[2]
        and "phone" in reasons[4]
        and "usc_code" in reasons[5]
        and "id_type" in reasons[6]
    )
    manifests = [
        {"waybill": "WB000001", "sender_id_type": "resident_id", "sender_id_number": ID, "quantity": "3"},
        {"waybill": "bad waybill", "sender_id_type": "resident_id", "sender_id_number": ID},
        {"waybill": "WB000002", "sender_id_type": "resident_id", "sender_id_number": ID, "quantity": -1},
        {"waybill": "WB000003", "sender_id_type": "resident_id", "sender_id_number": ID, "extra": 1},
        "not an object",
    ]
    m = server.client.post("/api/v1/manifests/import", json=manifests, headers=server.admin).json()
    assert m["imported"] == 1 and [x["row"] for x in m["rejected"]] == [2, 3, 4, 5]
    bad_type = server.client.post(
        "/api/v1/manifests/import", content=b"x", headers={**server.admin, "Content-Type": "text/plain"}
    )
    assert bad_type.status_code == 422 and bad_type.json()["error"]["code"] == "content_type"
    not_list = server.client.post("/api/v1/manifests/import", json={"a": 1}, headers=server.admin)
    assert not_list.status_code == 422


def test_edges_receive_tokens_and_watchlist_changes(server: Any) -> None:
    c = server.client
    c.post(
        "/api/v1/senders/import",
        content=SENDERS_CSV.encode(),
        headers={**server.admin, "Content-Type": "text/csv"},
    )
    want = {"list": "blacklist", "kind": "sender", "id_type": "resident_id", "id_number": ID}
    entry = c.post(
        "/api/v1/watchlist", json={**want, "reason": "fakes", "source": "AMR 7"}, headers=server.admin
    )
    assert entry.status_code == 201 and entry.json()["masked"] == "110***********002X"
    reply = c.post(
        "/api/v1/sync", json={"station_id": "st-a", "boot_id": "b", "events": []}, headers=server.station_a
    )
    reg = reply.json()["registry"]
    token = entry.json()["token"]
    assert token in {s["sender_token"] for s in reg["senders"]}
    assert [w["token"] for w in reg["watchlist"]] == [token] and reg["watchlist"][0]["active"]
    cursor = reg["cursor"]
    withdrawn = c.patch(
        f"/api/v1/watchlist/{entry.json()['entry_id']}", json={"active": False}, headers=server.admin
    )
    assert withdrawn.status_code == 200
    later = c.post(
        "/api/v1/sync", json={"station_id": "st-a", "boot_id": "b", "registry_cursor": cursor, "events": []},
        headers=server.station_a,
    ).json()["registry"]  # fmt: skip
    assert later["senders"] == [] and [w["active"] for w in later["watchlist"]] == [False]
    no_value = {"list": "watchlist", "kind": "phone", "reason": "r", "source": "s"}
    missing = c.post("/api/v1/watchlist", json=no_value, headers=server.admin)
    assert missing.status_code == 422


def test_reveal_is_for_officers_and_audited(server: Any) -> None:
    c = server.client
    c.post(
        "/api/v1/senders/import",
        content=SENDERS_CSV.encode(),
        headers={**server.admin, "Content-Type": "text/csv"},
    )
    empty = {"station_id": "st-a", "boot_id": "b", "events": []}
    registry = c.post("/api/v1/sync", json=empty, headers=server.station_a).json()["registry"]
    token = _token_of(registry, ID)
    officer = server.user("olga", "officer", ["site1"])
    supervisor = server.user("sam", "supervisor", ["*"])
    masked = c.get(f"/api/v1/senders/{token}", headers=supervisor).json()
    assert ID not in str(masked) and masked["id_masked"].endswith(ID[-4:])
    assert c.post(f"/api/v1/senders/{token}/reveal", json={"reason": "case 2026-17 counterfeit shoes"},
                  headers=server.admin).status_code == 403  # fmt: skip
    assert c.post(f"/api/v1/senders/{token}/reveal", json={"reason": "x"}, headers=officer).status_code == 422
    full = c.post(f"/api/v1/senders/{token}/reveal", json={"reason": "case 2026-17 counterfeit shoes"},
                  headers=officer).json()  # fmt: skip
    assert full["id_number"] == ID and full["phone"] == PHONE
    audit = c.get("/api/v1/audit", headers=server.admin).json()
    reveal = [a for a in audit if a["action"] == "reveal"]
    assert len(reveal) == 1 and reveal[0]["actor"] == "olga" and "2026-17" in reveal[0]["detail"]["reason"]


def test_no_plaintext_id_in_database_logs_or_responses(server: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    c = server.client
    seen: list[str] = []
    csv_headers = {**server.admin, "Content-Type": "text/csv"}
    seen.append(c.post("/api/v1/senders/import", content=SENDERS_CSV.encode(), headers=csv_headers).text)
    manifest = {"waybill": "WB000009", "sender_id_type": "resident_id", "sender_id_number": ID}
    seen.append(c.post("/api/v1/manifests/import", json=[manifest], headers=server.admin).text)
    watch = {"list": "watchlist", "kind": "phone", "value": PHONE, "reason": "r", "source": "s"}
    seen.append(c.post("/api/v1/watchlist", json=watch, headers=server.admin).text)
    sync = c.post(
        "/api/v1/sync", json={"station_id": "st-a", "boot_id": "b", "events": []}, headers=server.station_a
    )
    seen.append(sync.text)
    token = _token_of(sync.json()["registry"], ID)
    for path in (f"/api/v1/senders/{token}", "/api/v1/watchlist", "/api/v1/audit", "/api/v1/orders"):
        seen.append(c.get(path, headers=server.admin).text)
    seen.append(c.get("/api/v1/reports/daily?date=2026-01-01&format=csv", headers=server.admin).text)
    for text in seen:
        assert ID not in text and PHONE not in text and "张三" not in text
    assert ID not in caplog.text and PHONE not in caplog.text
    engine = sqlalchemy.create_engine(normalise_url(server.settings.database_url))
    with engine.connect() as conn:
        for table in sqlalchemy.inspect(conn).get_table_names():
            for row in conn.execute(sqlalchemy.text(f"SELECT * FROM {table}")):
                flat = " ".join(str(v) for v in row)
                assert ID not in flat and ID.lower() not in flat and PHONE not in flat, table
                assert "张三" not in flat and "东城区" not in flat, table
    engine.dispose()
