"""Sync on both engines: idempotency, conflicts, limits, gzip, orders from pulls and the long poll."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Callable
from typing import Any

from edge.wire import SyncReply
from tests.server.conftest import site_day

Factory = Callable[..., dict[str, Any]]


def test_batch_is_stored_once_and_replay_is_duplicate(
    server: Any, parcel: Factory, make_batch: Factory
) -> None:
    body = make_batch("st-a", [parcel("st-a", 1), parcel("st-a", 2, "HOLD")])
    raw = gzip.compress(json.dumps(body).encode())
    headers = {**server.station_a, "Content-Type": "application/json", "Content-Encoding": "gzip"}
    first = server.client.post("/api/v1/sync", content=raw, headers=headers)
    assert first.status_code == 200, first.text
    reply = SyncReply.model_validate(first.json())
    assert reply.accepted == ["st-a:b1:1", "st-a:b1:2"] and reply.duplicates == []
    again = SyncReply.model_validate(
        server.client.post("/api/v1/sync", json=body, headers=server.station_a).json()
    )
    assert again.accepted == [] and sorted(again.duplicates) == ["st-a:b1:1", "st-a:b1:2"]
    # An overlapping batch stores only the new event.
    overlap = make_batch("st-a", [parcel("st-a", 2, "HOLD"), parcel("st-a", 3)])
    third = server.client.post("/api/v1/sync", json=overlap, headers=server.station_a).json()
    assert third["accepted"] == ["st-a:b1:3"] and third["duplicates"] == ["st-a:b1:2"]
    report = server.client.get(
        f"/api/v1/reports/daily?date={site_day(body['events'][0]['at'])}", headers=server.admin
    )
    assert report.json()["parcels"] == 3 and report.json()["held"] == 1 and report.json()["review_items"] == 1


def test_same_key_other_payload_is_409(server: Any, parcel: Factory, make_batch: Factory) -> None:
    ev = parcel("st-a", 1)
    assert server.client.post(
        "/api/v1/sync", json=make_batch("st-a", [ev]), headers=server.station_a
    ).is_success
    changed = {**ev, "risk": 0.5}
    r = server.client.post("/api/v1/sync", json=make_batch("st-a", [changed]), headers=server.station_a)
    assert r.status_code == 409 and r.json()["error"]["code"] == "event_conflict"
    inside = server.client.post(
        "/api/v1/sync",
        json=make_batch("st-a", [parcel("st-a", 5), {**parcel("st-a", 5), "risk": 0.7}]),
        headers=server.station_a,
    )
    assert inside.status_code == 409


def test_bad_batches_are_refused(server: Any, parcel: Factory, make_batch: Factory) -> None:
    c = server.client
    wrong_station = c.post(
        "/api/v1/sync", json=make_batch("st-b", [parcel("st-b", 1)]), headers=server.station_a
    )
    assert wrong_station.status_code == 403
    bad_key = c.post(
        "/api/v1/sync", json=make_batch("st-a", [{**parcel("st-a", 1), "key": "x"}]), headers=server.station_a
    )
    assert bad_key.status_code == 422 and bad_key.json()["error"]["code"] == "bad_event_key"
    assert c.post("/api/v1/sync", json=make_batch("st-a", []), headers=server.admin).status_code == 403
    assert c.post("/api/v1/sync", json=make_batch("st-a", [])).status_code == 401
    garbage = c.post(
        "/api/v1/sync", content=b"{not json", headers={**server.station_a, "Content-Type": "application/json"}
    )
    assert garbage.status_code == 422 and set(garbage.json()) == {"error"}
    for field, value in (("waybill", "W" * 65), ("tracking_id", "T" * 65), ("seq", 2**63)):
        long = {**parcel("st-a", 9), field: value}
        if field == "seq":
            long["key"] = f"st-a:b1:{value}"
        r = c.post("/api/v1/sync", json=make_batch("st-a", [long]), headers=server.station_a)
        assert r.status_code == 422 and r.json()["error"]["code"] == "too_long", (field, r.text)
    bad_gzip = c.post("/api/v1/sync", content=b"xx", headers={**server.station_a, "Content-Encoding": "gzip"})
    assert bad_gzip.status_code == 400
    too_many = make_batch(
        "st-a", [parcel("st-a", i) for i in range(server.settings.limits.max_batch_events + 1)]
    )
    assert c.post("/api/v1/sync", json=too_many, headers=server.station_a).status_code == 413
    bomb = gzip.compress(b" " * (server.settings.limits.max_body_bytes + 10))
    r = c.post("/api/v1/sync", content=bomb, headers={**server.station_a, "Content-Encoding": "gzip"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"


def test_pull_orders_every_other_station_of_the_site(
    server: Any, parcel: Factory, make_batch: Factory
) -> None:
    c = server.client
    pull = parcel("st-a", 1, "PULL")
    reply = c.post("/api/v1/sync", json=make_batch("st-a", [pull]), headers=server.station_a).json()
    assert reply["orders"] == []  # the origin station already pulled it
    b = c.post("/api/v1/sync", json=make_batch("st-b", []), headers=server.station_b).json()
    assert [o["waybill"] for o in b["orders"]] == [pull["waybill"]]
    assert b["orders"][0]["reason"] == "SENDER_BLACKLISTED" and b["orders"][0]["site_id"] == "site1"
    other_site = c.post("/api/v1/sync", json=make_batch("st-c", []), headers=server.station_c).json()
    assert other_site["orders"] == []
    # A pull that obeys an order raises no new order.
    obeying = parcel("st-b", 1, "PULL", reasons=["INTERCEPT_ORDER"], order_ids=[b["orders"][0]["order_id"]])
    status = {
        "type": "order_status", "key": "st-b:b1:2", "station_id": "st-b", "boot_id": "b1", "seq": 2,
        "at": obeying["at"], "order_id": b["orders"][0]["order_id"], "state": "diverted",
    }  # fmt: skip
    after = c.post(
        "/api/v1/sync", json=make_batch("st-b", [obeying, status]), headers=server.station_b
    ).json()
    assert after["orders"] == []
    listed = c.get("/api/v1/orders", headers=server.admin).json()
    assert len(listed) == 1 and listed[0]["stations"] == {"st-b": "diverted"}
    raised = [a for a in c.get("/api/v1/audit", headers=server.admin).json() if a["action"] == "order_raise"]
    assert [a["actor"] for a in raised] == ["station:st-a"]
    by_id = {
        "scope": "sender",
        "id_type": "resident_id",
        "id_number": "11010519491231002X",
        "reason": "case 9",
    }
    sender_order = c.post("/api/v1/orders", json=by_id, headers=server.admin)
    assert sender_order.status_code == 201 and len(sender_order.json()["sender_token"]) == 64
    bad_id = c.post("/api/v1/orders", json={**by_id, "id_number": "110105194912310021"}, headers=server.admin)
    assert bad_id.status_code == 422


def test_network_wide_pull_reaches_other_sites(db_url: str, parcel: Factory, make_batch: Factory) -> None:
    from fastapi.testclient import TestClient

    from server import admin
    from server.app import create_app
    from server.settings import OrdersConfig

    from .conftest import make_settings  # type: ignore[import-not-found,unused-ignore]

    settings = make_settings(db_url, orders=OrdersConfig(network_wide=True))
    a = admin.register_station(settings, "n-a", "s1", "l1")
    z = admin.register_station(settings, "n-z", "s9", "l1")
    with TestClient(create_app(settings)) as c:
        c.post(
            "/api/v1/sync",
            json=make_batch("n-a", [parcel("n-a", 1, "PULL")]),
            headers={"Authorization": f"Bearer {a}"},
        )
        r = c.get("/api/v1/orders/poll?after=0&timeout=0", headers={"Authorization": f"Bearer {z}"}).json()
        assert len(r["orders"]) == 1 and r["orders"][0]["site_id"] is None


def test_long_poll_wakes_on_new_order(server: Any, parcel: Factory, make_batch: Factory) -> None:
    c = server.client
    empty = c.get("/api/v1/orders/poll?after=0&timeout=0", headers=server.station_b).json()
    assert empty["orders"] == [] and empty["last_seq"] == 0
    got: dict[str, Any] = {}
    started = threading.Event()

    def poll() -> None:
        started.set()
        got["reply"] = c.get("/api/v1/orders/poll?after=0&timeout=30", headers=server.station_b).json()

    waiter = threading.Thread(target=poll)
    waiter.start()
    started.wait()
    want = {"scope": "waybill", "waybill": "WB777777", "reason": "court order", "site_id": "site1"}
    order = c.post("/api/v1/orders", json=want, headers=server.admin)
    assert order.status_code == 201, order.text
    waiter.join(timeout=30)
    assert not waiter.is_alive()
    assert [o["waybill"] for o in got["reply"]["orders"]] == ["WB777777"]
    assert got["reply"]["last_seq"] == order.json()["seq"]
    bad = c.get("/api/v1/orders/poll?after=0&timeout=31", headers=server.station_b)
    assert bad.status_code == 422


def test_registry_changes_are_paged(server: Any) -> None:
    from server.settings import LimitsConfig

    server.settings.limits = LimitsConfig(registry_page_size=2)
    rows = [
        {"waybill": f"WB{i:05d}", "sender_id_type": "resident_id", "sender_id_number": "11010519491231002X"}
        for i in range(5)
    ]
    assert (
        server.client.post("/api/v1/manifests/import", json=rows, headers=server.admin).json()["imported"]
        == 5
    )
    seen: list[str] = []
    cursor = 0
    for _ in range(5):
        reply = server.client.post(
            "/api/v1/sync",
            json={"station_id": "st-a", "boot_id": "b", "registry_cursor": cursor, "events": []},
            headers=server.station_a,
        ).json()
        seen += [m["waybill"] for m in reply["registry"]["manifests"]]
        cursor = reply["registry"]["cursor"]
        if not reply["registry"]["more"]:
            break
    assert sorted(seen) == [r["waybill"] for r in rows]


def test_order_reaches_edge_polling_another_server_process(pg_url: str, tmp_path: Any) -> None:
    """Two apps on one PostgreSQL database: an order issued on one wakes a long poll held by the other."""
    import uuid

    import sqlalchemy
    from fastapi.testclient import TestClient

    from server import admin
    from server.app import create_app
    from server.db import migrate, normalise_url

    from .conftest import make_settings  # type: ignore[import-not-found,unused-ignore]

    schema = "t_" + uuid.uuid4().hex[:12]
    engine = sqlalchemy.create_engine(normalise_url(pg_url))
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = f"{pg_url}{'&' if '?' in pg_url else '?'}options=-csearch_path%3D{schema}"
    try:
        migrate(url)
        settings = make_settings(url)
        admin.create_user(settings, "olga", "a long password 123", "officer", ["*"])
        officer = {"Authorization": f"Bearer {admin.create_api_token(settings, 'olga')}"}
        edge = {"Authorization": f"Bearer {admin.register_station(settings, 'e1', 'hub', 'l1')}"}
        with (
            TestClient(create_app(settings)) as first,
            TestClient(create_app(settings.model_copy())) as second,
        ):
            assert second.app.state.order_listener.ready.wait(10)  # type: ignore[attr-defined]
            notifier = second.app.state.services.notifier  # type: ignore[attr-defined]
            seen = notifier.version
            got: dict[str, Any] = {}

            def poll() -> None:
                got["reply"] = second.get("/api/v1/orders/poll?after=0&timeout=30", headers=edge).json()

            waiter = threading.Thread(target=poll)
            waiter.start()
            order = {"scope": "waybill", "waybill": "WB424242", "reason": "court order", "site_id": "hub"}
            assert first.post("/api/v1/orders", json=order, headers=officer).status_code == 201
            # Only LISTEN/NOTIFY can tell the second app: it issued nothing itself.
            assert notifier.wait_sync(seen, 10) > seen
            waiter.join(timeout=30)
            assert [o["waybill"] for o in got["reply"]["orders"]] == ["WB424242"]
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        engine.dispose()


def test_divert_outcome_follows_its_intent_in_the_report(
    server: Any, parcel: Factory, make_batch: Factory
) -> None:
    """A station records a pull's divert as PENDING, then its outcome as its own event."""
    pending = {"outcome": "PENDING", "chute": "P1", "detail": ""}
    pull = parcel("st-a", 1, "PULL", divert=pending, sorter_id="WB000001")
    late = parcel("st-a", 2, "PULL", divert=pending, sorter_id="WB000002")
    outcomes = [
        {
            "type": "divert_outcome",
            "key": f"st-a:b1:{seq}",
            "station_id": "st-a",
            "boot_id": "b1",
            "seq": seq,
            "at": pull["at"],
            "tracking_id": tid,
            "sorter_id": sid,
            "decision": "PULL",
            "outcome": outcome,
            "chute": "P1",
        }
        for seq, tid, sid, outcome in ((3, "t1", "WB000001", "DIVERTED"), (4, "t2", "WB000002", "UNKNOWN"))
    ]
    r = server.client.post(
        "/api/v1/sync", json=make_batch("st-a", [pull, late, *outcomes]), headers=server.station_a
    )
    assert r.status_code == 200, r.text
    assert sorted(r.json()["accepted"]) == [f"st-a:b1:{i}" for i in range(1, 5)]
    day = site_day(pull["at"])
    report = server.client.get(f"/api/v1/reports/daily?date={day}", headers=server.admin).json()
    # Counted once each, by their outcome, not as the intents' PENDING.
    assert report["pulls"]["diverted"] == 1 and report["pulls"]["missed"] == 1
    assert report["parcels"] == 2 and report["review_items"] == 2
    # The officer sees what became of each divert, not the intent.
    officer = server.user("olga", "officer", ["site1"])
    items = server.client.get("/api/v1/reviews", headers=officer).json()
    shown = {
        i["tracking_id"]: server.client.get(f"/api/v1/reviews/{i['id']}", headers=officer).json()["divert"]
        for i in items
    }
    assert {t: d["outcome"] for t, d in shown.items()} == {"t1": "DIVERTED", "t2": "UNKNOWN"}
    bad = {**outcomes[0], "key": "st-a:b1:9", "seq": 9, "outcome": "EXPLODED"}
    refused = server.client.post("/api/v1/sync", json=make_batch("st-a", [bad]), headers=server.station_a)
    assert refused.status_code == 422
