"""Reports add up: requested = diverted + missed + pending for every figure and filter, on events the real
station pipeline recorded (diverted, missed, late and still-pending pulls, an order-driven pull that
missed), synced to the server on both engines; categories and site-local days from pure tables."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from edge.agent import EdgeAgent
from edge.config import DevicesConfig, EdgeConfig, SorterConfig, StationConfig
from edge.wire import (
    ClassificationWire,
    DivertOutcomeEvent,
    ImageRef,
    OrderStatusEvent,
    ParcelEvent,
    PullOrderWire,
)
from scanner_drivers.sorter.sim import SimulatedSorter
from server.rollup import count_batch, event_counters, hit_category
from tests.edge.conftest import W_BLACK, W_GOOD, seed_two_senders
from tests.edge.station_kit import scan
from tests.server.conftest import batch, site_day

PULL_KEYS = ("requested", "diverted", "missed", "pending")
STATIONS = {"st-a": ("site1", "line1"), "st-b": ("site1", "line2"), "st-c": ("site2", "line1")}


def station(tmp_path: Path, sid: str, sorter_url: str, **sorter: Any) -> EdgeAgent:
    site, line = STATIONS[sid]
    replay = tmp_path / f"{sid}-none.jsonl"
    replay.write_text("", encoding="utf-8")
    cfg = EdgeConfig(
        station=StationConfig(id=sid, site_id=site, line_id=line, data_dir=tmp_path / sid),
        devices=DevicesConfig(scanner=f"fake://{replay}?speed=0"),
        sorter=SorterConfig(url=sorter_url, **sorter),
    )
    agent = EdgeAgent(cfg)
    seed_two_senders(agent.store)
    return agent


def truth(recorded: dict[str, list[Any]]) -> dict[str, Counter[str]]:
    """What each station itself recorded about its pulls: the figures the report must show."""
    out: dict[str, Counter[str]] = {}
    for sid, evs in recorded.items():
        outcome = {e.tracking_id: e.outcome for e in evs if isinstance(e, DivertOutcomeEvent)}
        got: Counter[str] = Counter()
        for ev in evs:
            if isinstance(ev, ParcelEvent) and ev.decision == "PULL":
                state = outcome.get(ev.tracking_id) or (ev.divert.outcome if ev.divert else "NONE")
                got["requested"] += 1
                got["diverted" if state == "DIVERTED" else "pending" if state == "PENDING" else "missed"] += 1
        out[sid] = got
    return out


def snapshot(agents: list[EdgeAgent]) -> dict[str, list[Any]]:
    """Each station's recorded events now: what is synced and what the report is checked against."""
    return {agent.cfg.station.id: agent.store.events(10_000) for agent in agents}


def pulls(figure: dict[str, Any]) -> dict[str, int]:
    p = figure.get("pulls", figure)
    assert p["requested"] == p["diverted"] + p["missed"] + p["pending"], figure
    return {k: int(p[k]) for k in PULL_KEYS}


def expect(counts: list[Counter[str]]) -> dict[str, int]:
    return {k: sum(c[k] for c in counts) for k in PULL_KEYS}


def check_every_filter(server: Any, want: dict[str, Counter[str]], day: str) -> None:
    """The identity and the stations' own figures, for the whole report and every filter the page has."""
    c, h = server.client, server.admin

    def get(**params: str) -> dict[str, Any]:
        r = c.get("/api/v1/reports/daily", params={"date": day, **params}, headers=h)
        assert r.status_code == 200, r.text
        return dict(r.json())

    whole = get()
    assert pulls(whole) == expect(list(want.values()))
    for st in whole["stations"]:
        assert pulls(st) == expect([want[st["station_id"]]])
    for ln in whole["lines"]:
        ids = [s for s, (site, line) in STATIONS.items() if (site, line) == (ln["site_id"], ln["line_id"])]
        assert pulls(ln) == expect([want[s] for s in ids])
    (only,) = whole["trend"]
    assert pulls(only) == pulls(whole)
    for site in ("site1", "site2"):
        ids = [s for s, (st_site, _) in STATIONS.items() if st_site == site]
        assert pulls(get(site=site)) == expect([want[s] for s in ids])
    assert pulls(get(site="site1", line="line2")) == expect([want["st-b"]])
    assert pulls(get(station="st-a")) == expect([want["st-a"]])
    before = (datetime.fromisoformat(day) - timedelta(days=1)).date().isoformat()
    after = (datetime.fromisoformat(day) + timedelta(days=1)).date().isoformat()
    ranged = c.get("/api/v1/reports/daily", params={"date": before, "to": after}, headers=h).json()
    assert pulls(ranged) == pulls(whole) and [d["date"] for d in ranged["trend"]] == [before, day, after]
    assert [pulls(d) for d in ranged["trend"]] == [expect([]), pulls(whole), expect([])]


def sync(server: Any, sid: str, events: list[Any]) -> None:
    headers = {"st-a": server.station_a, "st-b": server.station_b, "st-c": server.station_c}[sid]
    body = batch(sid, [e.model_dump(mode="json") for e in events])
    r = server.client.post("/api/v1/sync", json=body, headers=headers)
    assert r.status_code == 200, r.text


def officer_order(server: Any, waybill: str) -> PullOrderWire:
    """An officer's order for `waybill` at site1, as station B receives it with its next sync."""
    body = {"scope": "waybill", "waybill": waybill, "reason": "tip-off", "site_id": "site1"}
    assert server.client.post("/api/v1/orders", json=body, headers=server.admin).status_code == 201
    reply = server.client.post("/api/v1/sync", json=batch("st-b", []), headers=server.station_b).json()
    (order,) = reply["orders"]
    return PullOrderWire.model_validate(order)


def test_pulls_add_up_for_every_filter(server: Any, tmp_path: Path) -> None:
    every_third = {"n": 0}

    def miss(_tracking_id: str) -> bool:
        every_third["n"] += 1
        return every_third["n"] % 3 == 0

    quick, sure, slow = SimulatedSorter(miss=miss), SimulatedSorter(), SimulatedSorter(result_delay_s=4.0)
    sims = (quick, sure, slow)
    for sim in sims:
        sim.start()
    a = station(tmp_path, "st-a", quick.url, divert_budget_s=30)
    b = station(tmp_path, "st-b", sure.url, scan_to_divert_m=3.0, belt_speed_m_s=2.0)
    c = station(tmp_path, "st-c", slow.url, divert_budget_s=30)
    # An officer's order reaches station B: its parcel is pulled by the order.
    b.store.add_orders([officer_order(server, W_GOOD)])
    agents = [a, b, c]
    try:
        for agent in agents:
            agent.start()
        for _ in range(6):
            a.on_read(scan(W_BLACK))
            a.on_read(scan(W_GOOD))
        b.on_read(scan(W_GOOD, ago_s=5.0))  # the order's parcel, past its divert point: LATE, missed
        b.on_read(scan(W_BLACK))
        b.on_read(scan(W_GOOD))  # the waybill order stays open after a miss: this one is diverted
        for _ in range(3):
            c.on_read(scan(W_BLACK))
        assert a.drain(30) and b.drain(30)
        # Station C's controller has not answered yet: its pulls are pending, and reported so.
        deadline = time.monotonic() + 20
        while slow.diverts_received < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        recorded = snapshot(agents)
        for sid, evs in recorded.items():
            sync(server, sid, evs)
        day = site_day(datetime.now(UTC))
        early = truth(recorded)
        assert early["st-a"] == Counter(requested=6, diverted=4, missed=2)
        assert early["st-b"] == Counter(requested=3, diverted=2, missed=1)
        assert early["st-c"] == Counter(requested=3, pending=3)
        assert any(isinstance(e, OrderStatusEvent) and e.state == "missed" for e in recorded["st-b"])
        check_every_filter(server, early, day)
        # The outcomes arrive in a later batch: each pull moves from pending to done on its own day.
        assert c.drain(30)
        recorded = snapshot(agents)
        sync(server, "st-c", recorded["st-c"])
        late = truth(recorded)
        assert late["st-c"]["pending"] == 0 and late["st-c"]["diverted"] == 3
        check_every_filter(server, late, day)
    finally:
        for agent in agents:
            agent.stop()
        for sim in sims:
            sim.stop()


SHANGHAI = ZoneInfo("Asia/Shanghai")


def parcel(at: str, decision: str = "PULL", **extra: Any) -> ParcelEvent:
    fields: dict[str, Any] = {
        "key": "s:b:1", "station_id": "s", "boot_id": "b", "seq": 1, "at": datetime.fromisoformat(at),
        "tracking_id": "t1", "waybill": "WB1", "decision": decision, "reasons": ["SENDER_BLACKLISTED"],
        "risk": 0.9, "classifier": "on", "divert": {"outcome": "PENDING"},
    }  # fmt: skip
    fields.update(extra)
    return ParcelEvent.model_validate(fields)


def test_days_and_hours_are_the_sites_and_a_late_outcome_lands_on_its_pulls_day() -> None:
    # 23:59:58 in Beijing is 15:59:58 UTC: the pull belongs to the 10th there, at hour 23.
    pull = parcel("2026-03-10T15:59:58+00:00")
    assert ("hit_hour", "23") in event_counters(pull, SHANGHAI)
    first = count_batch([pull], SHANGHAI)
    assert first[("2026-03-10", "s", "divert", "PENDING")] == 1
    outcome = DivertOutcomeEvent(
        key="s:b:2", station_id="s", boot_id="b", seq=2, tracking_id="t1", decision="PULL",
        outcome="DIVERTED", at=datetime.fromisoformat("2026-03-10T16:00:03+00:00"),
    )  # fmt: skip
    # After Beijing midnight, in another batch: the parcel's stored day says where it is counted.
    later = count_batch([outcome], SHANGHAI, {("s", "t1"): "2026-03-10"})
    assert (
        +later == Counter({("2026-03-10", "s", "divert", "DIVERTED"): 1})
        and later[("2026-03-10", "s", "divert", "PENDING")] == -1
    )
    # Unknown parcel: counted on its own day, nothing to take from pending.
    alone = count_batch([outcome], SHANGHAI, {})
    assert dict(alone) == {("2026-03-11", "s", "divert", "DIVERTED"): 1}
    # UTC (no site zone) would have split them across two days.
    assert count_batch([pull])[("2026-03-10", "s", "divert", "PENDING")] == 1


SHA = {k: c * 64 for k, c in (("camera", "a"), ("xray", "b"), ("label", "c"))}


def image(kind: str) -> dict[str, Any]:
    return ImageRef(sha256=SHA[kind], kind=kind, content_type="image/png", size=1).model_dump()


def guess(kind: str, category: str, prob: float, **extra: Any) -> dict[str, Any]:
    return ClassificationWire(
        image_sha256=SHA[kind], category=category, category_prob=prob, model_version="m1", **extra
    ).model_dump()


@pytest.mark.parametrize(
    ("classifications", "declared", "want"),
    [
        # An X-ray's ImageNet guess is no category, however confident: the declared one stands.
        ([guess("xray", "electronics", 0.99)], "cosmetics", "cosmetics"),
        ([guess("camera", "bags_leather", 0.7), guess("xray", "electronics", 0.99)], None, "bags_leather"),
        # A shadow model is on trial: never evidence.
        ([guess("camera", "electronics", 0.95, shadow=True)], "food", "food"),
        ([guess("camera", "watches_jewellery", 0.6, uncertain=True)], None, "unknown"),
        # A trained head that judged an image (its counterfeit score) speaks for that image's category.
        ([guess("xray", "footwear_clothing", 0.8, counterfeit_score=0.9)], "other", "footwear_clothing"),
        ([guess("label", "printed_matter", 0.9)], "cosmetics", "cosmetics"),
        ([], None, "unknown"),
    ],
)
def test_hit_category_comes_from_the_classifiers_valid_kind_only(
    classifications: list[dict[str, Any]], declared: str | None, want: str
) -> None:
    ev = parcel(
        "2026-03-10T08:00:00+00:00",
        classifications=classifications,
        images=[image(k) for k in SHA],
        declared_category=declared,
    )
    assert hit_category(ev) == want
