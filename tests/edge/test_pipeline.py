"""The station offline: fake scanner -> pipeline -> simulated sorter -> store, with no server at all."""

from __future__ import annotations

import json
import queue
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edge.agent import EdgeAgent
from edge.config import DevicesConfig, EdgeConfig, SorterConfig, StationConfig
from edge.scenario import corrupt_check, s10_waybill
from edge.wire import ManifestWire, PullOrderWire, RegistryChanges, SenderWire, WatchWire
from scanner_drivers.sorter.sim import SimulatedSorter

NOW = datetime.now(UTC)
RNG = random.Random(11)
W_OK, W_UNVERIFIED, W_NOREC, W_BLACK, W_ORDER, W_UNKNOWN, W_ADDR = (s10_waybill(RNG) for _ in range(7))


@pytest.fixture
def sorter() -> Iterator[SimulatedSorter]:
    # Diverts are in flight together, so the miss is chosen by the id the sorter is sent: the waybill.
    sim = SimulatedSorter(miss=lambda sorter_id: sorter_id == W_ORDER)
    sim.start()
    yield sim
    sim.stop()


def make_agent(tmp_path: Path, lines: list[str], sorter_url: str) -> EdgeAgent:
    replay = tmp_path / "reads.jsonl"
    replay.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = EdgeConfig(
        station=StationConfig(id="S1", site_id="SITE", line_id="L1", data_dir=tmp_path / "edge"),
        devices=DevicesConfig(scanner=f"fake://{replay}?speed=0"),
        sorter=SorterConfig(url=sorter_url, deadline_s=2.0),
    )
    agent = EdgeAgent(cfg)
    agent.store.apply_registry(
        RegistryChanges(
            cursor=1,
            senders=[
                SenderWire(sender_token="good", id_masked="110***********1234", verified=True),
                SenderWire(sender_token="unver", id_masked="310***********5678", verified=False),
                SenderWire(sender_token="black", id_masked="440***********0001", verified=True),
                SenderWire(
                    sender_token="moved",
                    id_masked="510***********0002",
                    verified=True,
                    address_token="addr-warehouse-9",
                ),
            ],
            manifests=[
                ManifestWire(waybill=W_OK, sender_token="good", inspected_on_receipt=True),
                ManifestWire(waybill=W_UNVERIFIED, sender_token="unver", inspected_on_receipt=True),
                ManifestWire(waybill=W_NOREC, sender_token="nobody", inspected_on_receipt=True),
                ManifestWire(waybill=W_BLACK, sender_token="black", inspected_on_receipt=True),
                ManifestWire(waybill=W_ORDER, sender_token="good", inspected_on_receipt=True),
                ManifestWire(waybill=W_ADDR, sender_token="moved", inspected_on_receipt=True),
            ],
            watchlist=[
                WatchWire(entry_id="b1", list="blacklist", kind="sender", token="black", reason="fraud"),
                WatchWire(
                    entry_id="b2",
                    list="blacklist",
                    kind="address",
                    token="addr-warehouse-9",
                    reason="counterfeit warehouse",
                ),
            ],
        )
    )
    agent.store.add_orders(
        [
            PullOrderWire(
                order_id="ord-1",
                seq=1,
                scope="waybill",
                waybill=W_ORDER,
                reason="tip-off",
                issuer="officer1",
                created_at=NOW,
                expires_at=NOW + timedelta(hours=1),
            )
        ]
    )
    return agent


def drain_feed(q: queue.Queue[dict[str, Any]]) -> list[dict[str, Any]]:
    items = []
    while not q.empty():
        items.append(q.get_nowait())
    return items


def read(*codes: str) -> str:
    return json.dumps({"codes": list(codes)})


def test_every_kind_of_parcel_offline(tmp_path: Path, sorter: SimulatedSorter) -> None:
    lines = [
        read(W_OK),
        read(W_UNVERIFIED),
        read(W_NOREC),
        read(W_BLACK),
        read(),  # unreadable label
        read(W_ORDER),  # the fifth divert: the simulated sorter misses it
        read(W_UNKNOWN),
        read(corrupt_check(W_OK)),
        "this is not json",
        json.dumps({"codes": "not a list"}),
        read(W_OK, W_BLACK),
    ]
    agent = make_agent(tmp_path, lines, sorter.url)
    alerts = agent.feed.subscribe()
    agent.start()
    assert agent.scanner.join(10)
    assert agent.drain(10)
    got = [(e.waybill, e.decision, tuple(e.reasons)) for e in agent.store.events(100) if e.type == "parcel"]
    assert got == [
        (W_OK, "CLEAR", ()),
        (W_UNVERIFIED, "HOLD", ("REALNAME_UNVERIFIED",)),
        (W_NOREC, "HOLD", ("NO_REALNAME",)),
        (W_BLACK, "PULL", ("SENDER_BLACKLISTED",)),
        (None, "HOLD", ("NO_READ",)),
        (W_ORDER, "PULL", ("INTERCEPT_ORDER",)),
        (W_UNKNOWN, "HOLD", ("UNKNOWN_WAYBILL",)),
        (None, "HOLD", ("NO_VALID_WAYBILL",)),
        (None, "HOLD", ("WAYBILL_CONFLICT",)),
    ]
    parcels = [e for e in agent.store.events(100) if e.type == "parcel"]
    # Each divert was recorded as intended before it was sent, and its outcome followed.
    assert [p.divert.outcome if p.divert else None for p in parcels] == [None, *["PENDING"] * 8]
    final = agent.store.divert_outcomes()
    outcomes = [final.get(p.tracking_id) for p in parcels]
    assert outcomes == [None, *["DIVERTED"] * 4, "MISSED", "DIVERTED", "DIVERTED", "DIVERTED"]
    assert agent.store.open_intents() == []
    assert sorter.diverts_received == 8
    # The sorter got the waybill (or, with none, the first code read, or the station's id).
    assert sorted(sorter.tracking_ids) == sorted(p.sorter_id or "" for p in parcels[1:])
    assert {W_UNVERIFIED, W_BLACK, W_ORDER, corrupt_check(W_OK)} <= set(sorter.tracking_ids)
    statuses = [e for e in agent.store.events(100) if e.type == "order_status"]
    assert [(s.order_id, s.state) for s in statuses] == [("ord-1", "missed")]
    # The garbage lines were reported and skipped; the line kept running.
    assert len(agent.scanner.bad_lines) == 2  # type: ignore[attr-defined]
    # Every event (parcels, the order status, the scanner's up/down) waits in the outbox.
    assert agent.store.outbox_size() == len(agent.store.events(100))
    kinds = []
    while not alerts.empty():
        item = alerts.get_nowait()
        if item["type"] == "alert":
            kinds.append((item["kind"], item["waybill"]))
    assert ("pull", W_BLACK) in kinds and ("divert_failed", W_ORDER) in kinds
    agent.stop()


def test_blacklisted_address_pulls_the_parcel(tmp_path: Path, sorter: SimulatedSorter) -> None:
    agent = make_agent(tmp_path, [read(W_ADDR)], sorter.url)
    agent.start()
    assert agent.scanner.join(10)
    assert agent.drain(10)
    ev = next(e for e in agent.store.events(10) if e.type == "parcel")
    assert (ev.decision, ev.reasons) == ("PULL", ["SENDER_BLACKLISTED"])
    agent.stop()


def test_operator_confirmation_is_recorded(tmp_path: Path, sorter: SimulatedSorter) -> None:
    agent = make_agent(tmp_path, [read(W_BLACK)], sorter.url)
    agent.start()
    assert agent.scanner.join(10)
    assert agent.drain(10)
    pulled = next(e for e in agent.store.events(10) if e.type == "parcel")
    ev = agent.pipeline.confirm(pulled.tracking_id, "open_box", "12 pairs of shoes, logos copied", "op7")
    assert ev.waybill == W_BLACK
    with pytest.raises(LookupError):
        agent.pipeline.confirm("nope", "pulled")
    with pytest.raises(ValueError, match="unknown operator action"):
        agent.pipeline.confirm(pulled.tracking_id, "kicked")
    agent.stop()


def test_sorter_down_still_decides_and_records(tmp_path: Path) -> None:
    sim = SimulatedSorter()
    url = sim.start()
    sim.stop()  # the controller is gone: diverts time out, the parcel is still recorded and alerted
    agent = make_agent(tmp_path, [read(W_BLACK)], url)
    alerts = agent.feed.subscribe()
    agent.start()
    assert agent.scanner.join(15)
    assert agent.drain(15)
    ev = next(e for e in agent.store.events(10) if e.type == "parcel")
    assert ev.decision == "PULL" and agent.store.divert_outcomes()[ev.tracking_id] == "TIMEOUT"
    kinds = [(a["kind"], a.get("divert")) for a in drain_feed(alerts) if a["type"] == "alert"]
    assert kinds == [("pull", "PENDING"), ("divert_failed", "TIMEOUT")]
    agent.stop()


def test_sender_history_reaches_decide(tmp_path: Path, sorter: SimulatedSorter) -> None:
    """Risk, qualification and credit code token come with the sender record; inspection with the manifest."""
    w_risky, w_shop, w_listed, w_uninspected = (s10_waybill(random.Random(i)) for i in (21, 22, 23, 24))
    agent = make_agent(tmp_path, [read(w) for w in (w_risky, w_shop, w_listed, w_uninspected)], sorter.url)
    agent.store.apply_registry(
        RegistryChanges(
            cursor=2,
            senders=[
                SenderWire(sender_token="risky", id_masked="110***********0003", verified=True, risk=0.8),
                SenderWire(
                    sender_token="shop",
                    id_masked="914***********000X",
                    verified=True,
                    agreement_customer=True,
                    qualified=False,
                    customer_token="usc-shop",
                ),
                SenderWire(
                    sender_token="listed-co",
                    id_masked="914***********0001",
                    verified=True,
                    agreement_customer=True,
                    qualified=True,
                    customer_token="usc-watched",
                ),
            ],
            manifests=[
                ManifestWire(waybill=w_risky, sender_token="risky", inspected_on_receipt=True),
                ManifestWire(waybill=w_shop, sender_token="shop", inspected_on_receipt=True),
                ManifestWire(waybill=w_listed, sender_token="listed-co", inspected_on_receipt=True),
                ManifestWire(waybill=w_uninspected, sender_token="good"),
            ],
            watchlist=[
                WatchWire(
                    entry_id="w-org",
                    list="watchlist",
                    kind="organisation",
                    token="usc-watched",
                    reason="case 7",
                )
            ],
        )
    )
    agent.start()
    assert agent.scanner.join(10)
    assert agent.drain(10)
    got = [(e.waybill, e.decision, tuple(e.reasons)) for e in agent.store.events(100) if e.type == "parcel"]
    assert got == [
        (w_risky, "HOLD", ("SENDER_RISK",)),
        (w_shop, "HOLD", ("UNQUALIFIED_CUSTOMER",)),
        (w_listed, "HOLD", ("WATCHLIST_MATCH",)),
        (w_uninspected, "CLEAR", ("NOT_INSPECTED",)),
    ]
    assert [e.risk for e in agent.store.events(100) if e.type == "parcel"] == [0.8, 0.4, 0.5, 0.3]
    agent.stop()
