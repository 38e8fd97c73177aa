"""Daily report on both engines: rollup counts, orders by state, uptime, CSV, site scope; schema drift."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from server.db import normalise_url
from server.partitions import not_a_partition
from server.schema import metadata

Factory = Callable[..., dict[str, Any]]


def test_migrations_match_the_schema(db_url: str) -> None:
    engine = sqlalchemy.create_engine(normalise_url(db_url))
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": not_a_partition})
        diff = compare_metadata(context, metadata)
    engine.dispose()
    assert diff == []


def _device(station: str, seq: int, at: str, up: bool) -> dict[str, Any]:
    return {
        "type": "device_status", "key": f"{station}:b1:{seq}", "station_id": station, "boot_id": "b1",
        "seq": seq, "at": at, "device": "xray", "up": up,
    }  # fmt: skip


def test_daily_report(server: Any, parcel: Factory, make_batch: Factory) -> None:
    c = server.client
    at = parcel("st-a", 1)["at"]
    day = at[:10]
    a_events = [
        parcel("st-a", 1),
        parcel("st-a", 2, "HOLD", reasons=["NO_READ"], waybill=None),
        parcel("st-a", 3, "HOLD", reasons=["NO_REALNAME"], declared_category="watches"),
        parcel("st-a", 4, "PULL", divert={"outcome": "DIVERTED"}),
        _device("st-a", 5, f"{day}T00:00:00+00:00", True),
    ]
    assert c.post("/api/v1/sync", json=make_batch("st-a", a_events), headers=server.station_a).is_success
    order_id = c.post("/api/v1/sync", json=make_batch("st-b", []), headers=server.station_b).json()["orders"][
        0
    ]["order_id"]
    status = {
        "type": "order_status", "key": "st-b:b1:1", "station_id": "st-b", "boot_id": "b1", "seq": 1, "at": at,
        "order_id": order_id, "state": "missed",
    }  # fmt: skip
    b_events = [status, parcel("st-b", 2, "PULL", reasons=["INTERCEPT_ORDER"], order_ids=[order_id])]
    assert c.post("/api/v1/sync", json=make_batch("st-b", b_events), headers=server.station_b).is_success
    c.post("/api/v1/sync", json=make_batch("st-c", [parcel("st-c", 1)]), headers=server.station_c)
    r = c.get(f"/api/v1/reports/daily?date={day}", headers=server.admin).json()
    assert (r["parcels"], r["cleared"], r["held"], r["pulled"]) == (6, 2, 2, 2)
    assert r["no_reads"] == 1 and r["realname_failures"] == 1
    assert r["hits_by_reason"] == {
        "INTERCEPT_ORDER": 1,
        "NO_READ": 1,
        "NO_REALNAME": 1,
        "SENDER_BLACKLISTED": 1,
    }
    assert r["pulls"] == {"requested": 2, "diverted": 1, "missed": 1}
    hour = int(at[11:13])  # every hit of this test happened in the same UTC hour
    assert r["hits_by_hour"] == [4 if h == hour else 0 for h in range(24)]
    assert r["orders"] == {"created": 1, "by_state": {"missed": 1}}
    assert r["review_items"] == 4 and r["review_outcomes"] == {"open": 4}
    per = {s["station_id"]: s for s in r["stations"]}
    assert per["st-a"]["parcels"] == 4 and per["st-a"]["device_uptime"] == {"xray": 1.0}
    assert per["st-c"]["parcels"] == 1
    assert [(x["site_id"], x["line_id"], x["parcels"]) for x in r["lines"]] == [
        ("site1", "line1", 4), ("site1", "line2", 1), ("site2", "line1", 1),
    ]  # fmt: skip
    site1 = server.user("sue", "supervisor", ["site1"])
    mine = c.get(f"/api/v1/reports/daily?date={day}", headers=site1).json()
    assert mine["parcels"] == 5 and {s["station_id"] for s in mine["stations"]} == {"st-a", "st-b"}
    assert c.get(f"/api/v1/reports/daily?date={day}&site=site2", headers=site1).status_code == 403
    text = c.get(f"/api/v1/reports/daily?date={day}&site=site1&format=csv", headers=server.admin)
    assert text.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(text.text)))
    assert [row["station_id"] for row in rows] == ["st-a", "st-b", "TOTAL"] and rows[-1]["parcels"] == "5"
    bad = c.get("/api/v1/reports/daily?date=2026-13-01", headers=server.admin)
    assert bad.status_code == 422 and list(bad.json()) == ["error"]
