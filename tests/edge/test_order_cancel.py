"""A pull order an officer cancels stops pulling at the station, through the real server and sync."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from edge.store import EdgeStore, utc_now
from edge.sync import SyncLink
from edge.wire import PullOrderWire, SyncReply
from tests.edge.test_sync import SITE, World, station, wait_for, world  # noqa: F401  (fixture)

WAYBILL = "SF1234567890"


@pytest.mark.slow
def test_a_cancelled_order_stops_matching_parcels_at_the_station(world: World, tmp_path: Path) -> None:  # noqa: F811
    agent = station(world, tmp_path, [])
    agent.start(scanner=False)
    assert agent.sync is not None and agent.sync.registry_synced.wait(20)
    order = world.api(
        "POST",
        "/api/v1/orders",
        json={"scope": "waybill", "waybill": WAYBILL, "reason": "brand tip-off", "site_id": SITE},
    )
    wait_for(lambda: agent.store.matching_orders(WAYBILL, None, utc_now()) == [order["order_id"]])
    world.api("POST", f"/api/v1/orders/{order['order_id']}/cancel", json={"reason": "tip-off withdrawn"})
    wait_for(lambda: agent.store.matching_orders(WAYBILL, None, utc_now()) == [])
    state = agent.store.query("SELECT state FROM orders WHERE order_id = ?", (order["order_id"],))
    assert state == [("cancelled",)]
    assert agent.store.open_orders() == 0
    agent.stop()
    # The station's own link asks for the addition and parses it; a link that does not ask is not sent it.
    link = SyncLink(world.url, world.token, 10)
    reply = link.post_batch("S1", "b9", 0, [])
    assert [c.order_id for c in reply.cancelled] == [order["order_id"]]
    link.close()
    bare = httpx.post(
        world.url + "/api/v1/sync",
        json={"station_id": "S1", "boot_id": "b9", "events": []},
        headers={"Authorization": f"Bearer {world.token}"},
        timeout=10,
    ).json()
    assert "cancelled" not in bare
    SyncReply.model_validate(bare)


def test_the_store_cancels_once_and_ignores_orders_it_never_held(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "station.db")
    now = utc_now()
    held = [
        PullOrderWire(
            order_id=f"o{n}", seq=n, scope=scope, waybill="EA1" if scope == "waybill" else None,
            sender_token="tok" if scope == "sender" else None, reason="r", issuer="user:olga",
            created_at=now, expires_at=now.replace(year=now.year + 1),
        )
        for n, scope in ((1, "waybill"), (2, "sender"))
    ]  # fmt: skip
    store.add_orders(held)
    assert store.matching_orders("EA1", "tok", now) == ["o1", "o2"]
    assert store.cancel_orders(["o2", "unknown"]) == ["o2"]
    assert store.matching_orders("EA1", "tok", now) == ["o1"]
    assert store.cancel_orders(["o2"]) == [] and store.cancel_orders([]) == []
    assert store.add_orders(held) == []  # a repeated order does not come back to life
    assert store.matching_orders("EA1", "tok", now) == ["o1"]
    store.close()
