"""Set-based ingest on both engines: refused values leave nothing, many pulls of a batch raise one audited
order per waybill, and order notifications wake only the stations of the sites they name."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy

from server.audit import verify_audit
from server.db import normalise_url
from server.notify import OrderNotifier, notified_sites

Factory = Callable[..., dict[str, Any]]


def _count(url: str, sql: str) -> int:
    engine = sqlalchemy.create_engine(normalise_url(url))
    with engine.connect() as conn:
        n = int(conn.exec_driver_sql(sql).scalar_one())
    engine.dispose()
    return n


def test_a_value_the_database_refuses_leaves_nothing(
    server: Any, parcel: Factory, make_batch: Factory
) -> None:
    url = server.settings.database_url
    events = [parcel("st-a", 1), parcel("st-a", 2, "PULL", waybill="WB\x00NUL")]
    r = server.client.post("/api/v1/sync", json=make_batch("st-a", events), headers=server.station_a)
    if url.startswith("postgresql"):
        # COPY refuses the NUL character: the same 422 as any value the database cannot store.
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_value", r.text
        assert _count(url, "SELECT count(*) FROM events") == 0
        assert _count(url, "SELECT count(*) FROM reviews") == 0
        assert _count(url, "SELECT count(*) FROM orders") == 0
    else:
        assert r.status_code == 200, r.text  # SQLite stores it as it is


def test_pulls_of_one_batch_raise_one_audited_order_per_waybill(
    server: Any, parcel: Factory, make_batch: Factory
) -> None:
    events = [parcel("st-a", i, "PULL", waybill=f"WB{i % 3}") for i in range(1, 10)]
    r = server.client.post("/api/v1/sync", json=make_batch("st-a", events), headers=server.station_a)
    assert r.status_code == 200 and len(r.json()["accepted"]) == 9
    url = server.settings.database_url
    assert _count(url, "SELECT count(*) FROM reviews") == 9
    assert _count(url, "SELECT count(DISTINCT waybill) FROM orders") == _count(
        url, "SELECT count(*) FROM orders"
    )
    assert _count(url, "SELECT count(*) FROM orders") == 3
    assert _count(url, "SELECT count(*) FROM audit_log WHERE action = 'order_raise'") == 3
    # The orders reach st-b, in the order they were raised, each naming the event that raised it.
    got = server.client.post("/api/v1/sync", json=make_batch("st-b", []), headers=server.station_b).json()
    assert [o["waybill"] for o in got["orders"]] == ["WB1", "WB2", "WB0"]
    engine = sqlalchemy.create_engine(normalise_url(url))
    with engine.connect() as conn:
        assert verify_audit(conn, server.settings.secret_key.get_secret_value()).ok
        sources = conn.exec_driver_sql("SELECT source_event_key FROM orders ORDER BY seq").scalars().all()
        assert sources == ["st-a:b1:1", "st-a:b1:2", "st-a:b1:3"]
    engine.dispose()


def test_notifications_wake_the_sites_they_name() -> None:
    async def run() -> list[bool]:
        notifier = OrderNotifier()
        s1, s2, anyone = notifier.subscribe("site1"), notifier.subscribe("site2"), notifier.subscribe()
        notifier.notify({"site1"})
        woken = [await s.wait(0.01) for s in (s1, s2, anyone)]
        notifier.notify(None)
        woken += [await s2.wait(0.5)]
        return woken

    assert asyncio.run(run()) == [True, False, True, True]


@pytest.mark.parametrize(
    ("payload", "sites"),
    [("", None), ('["a","b"]', {"a", "b"}), ("not json", None), ('{"a":1}', None), ("[1]", None)],
)
def test_notification_payloads(payload: str, sites: set[str] | None) -> None:
    assert notified_sites(payload) == sites
