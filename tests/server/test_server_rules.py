"""Pure rules by table: review transitions, identifier checks, masks, order rules, counters, report maths."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from edge.wire import DivertWire, OrderStatusEvent, ParcelEvent
from server.errors import BadInput, Conflict, Forbidden
from server.idcheck import check_phone, check_resident_id, check_usc_code
from server.orders import order_from_pull, station_state
from server.privacy import Privacy, mask_id, mask_name, mask_phone
from server.reports import device_uptime, summarise_counts, summarise_reviews
from server.review_rules import ItemView, ReviewPolicy, apply_action, has_substance
from server.rollup import event_counters

NOW = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
LEASE = timedelta(minutes=15)
DAYS = {"detain": 7, "seize": 30, "refer": 15}
BASIS = "《中华人民共和国商标法》第六十二条"
POLICY = ReviewPolicy(
    lease=LEASE,
    legal_bases=(BASIS,),
    due=lambda action, at: at + timedelta(days=DAYS[action]) if action in DAYS else None,
)
LIVE = NOW + timedelta(minutes=5)
GONE = NOW - timedelta(minutes=1)
SEIZE = {"legal_basis": BASIS, "seizure_record": "S-1", "rights_holder": "Brand Co"}


def claimed(by: str = "amy", lease: datetime | None = LIVE, origin: str = "open") -> ItemView:
    return ItemView("claimed", by, lease, origin)


# (item, action, actor, fields, expected state or exception)
TRANSITIONS = [
    (ItemView("open", None, None), "claim", "amy", {}, "claimed"),
    (ItemView("inspecting", None, None), "claim", "amy", {}, "claimed"),
    (ItemView("detained", None, None), "claim", "amy", {}, "claimed"),
    (ItemView("seized", None, None), "claim", "amy", {}, Conflict),
    (ItemView("released", None, None), "claim", "amy", {}, Conflict),
    (claimed("bob"), "claim", "amy", {}, Conflict),
    (claimed("bob", GONE), "claim", "amy", {}, "claimed"),
    (claimed("amy"), "claim", "amy", {}, "claimed"),
    (ItemView("open", None, None), "release", "amy", {"note": "ok"}, Conflict),
    (claimed("bob"), "release", "amy", {"note": "ok"}, Forbidden),
    (claimed("amy", GONE), "release", "amy", {"note": "ok"}, Conflict),
    (claimed(), "unclaim", "amy", {}, "open"),
    (claimed(origin="inspecting"), "unclaim", "amy", {}, "inspecting"),
    (claimed(), "release", "amy", {"note": "genuine goods"}, "released"),
    (claimed(), "release", "amy", {}, BadInput),
    (claimed(), "open_inspection", "amy", {"note": "x-ray unclear"}, "inspecting"),
    (claimed(), "detain", "amy", {"legal_basis": BASIS, "storage_location": "cage 3"}, "detained"),
    (claimed(), "detain", "amy", {"legal_basis": BASIS}, BadInput),
    # A legal basis off the configured list, and required fields that say nothing, are refused.
    (claimed(), "detain", "amy", {"legal_basis": "art 5", "storage_location": "cage 3"}, BadInput),
    (claimed(), "detain", "amy", {"legal_basis": BASIS, "storage_location": "x"}, BadInput),
    (claimed(), "detain", "amy", {"legal_basis": BASIS, "storage_location": "仓库"}, "detained"),
    (
        claimed(),
        "detain",
        "amy",
        {"legal_basis": BASIS, "storage_location": "c3", "legal_basis_detail": "-"},
        BadInput,
    ),
    (claimed(), "detain", "amy", {"legal_basis": BASIS, "storage_location": "c3", "colour": "red"}, BadInput),
    (claimed(), "seize", "amy", {**SEIZE, "seizure_record": "none yet"}, BadInput),
    (claimed(), "release", "amy", {"note": "x"}, BadInput),
    (claimed(), "release", "amy", {"note": "aaaa"}, BadInput),
    (claimed(), "seize", "amy", SEIZE, "seized"),
    (claimed(), "seize", "amy", {**SEIZE, "rights_holder": " "}, BadInput),
    (claimed(), "refer", "amy", {"authority": "police", "case_reference": "P-9"}, "referred"),
    (claimed(), "refer", "amy", {"authority": "mayor", "case_reference": "P-9"}, BadInput),
    (claimed(), "fly", "amy", {}, BadInput),
    (claimed(origin="inspecting"), "open_inspection", "amy", {"note": "again"}, Conflict),
    (claimed(origin="inspecting"), "seize", "amy", SEIZE, "seized"),
    (claimed(origin="detained"), "detain", "amy", {"legal_basis": BASIS, "storage_location": "b"}, Conflict),
    (claimed(origin="detained"), "release", "amy", {"note": "rights holder declined"}, "released"),
]


@pytest.mark.parametrize(("item", "action", "actor", "fields", "expected"), TRANSITIONS)
def test_review_transitions(
    item: ItemView, action: str, actor: str, fields: dict[str, str], expected: object
) -> None:
    if isinstance(expected, type):
        with pytest.raises(expected):
            apply_action(item, action, actor, NOW, POLICY, fields)
        return
    nxt = apply_action(item, action, actor, NOW, POLICY, fields)
    assert nxt.state == expected
    if expected == "claimed":
        assert nxt.claimed_by == actor and nxt.lease_until == NOW + LEASE
    if action in DAYS:
        assert nxt.statutory_due_at == NOW + timedelta(days=DAYS[action]) and nxt.outcome == action


@pytest.mark.parametrize(
    ("text", "ok"),
    [("x", False), ("--", False), ("aa", False), ("ab", False), ("abc", True), ("扣押", True), ("扣", False),
     ("S-1", True), ("   ", False), ("genuine goods", True)],
)  # fmt: skip
def test_fields_need_substance(text: str, ok: bool) -> None:
    assert has_substance(text) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("11010519491231002X", True),
        ("11010519491231002x", True),
        ("110105194912310021", False),  # check digit
        ("110105194913310029", False),  # month 13
        ("1101051949123100", False),
        ("", False),
    ],
)
def test_resident_id(value: str, ok: bool) -> None:
    assert (check_resident_id(value) is None) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("91350100M000100Y43", True),
        ("91350100M000100Y44", False),
        ("91350100M000100I43", False),
        ("913501", False),
    ],
)
def test_usc_code(value: str, ok: bool) -> None:
    assert (check_usc_code(value) is None) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("13812345678", True),
        ("+86 138 1234 5678", True),
        ("010-12345678", True),
        ("12812345678", False),
        ("138", False),
    ],
)
def test_phone(value: str, ok: bool) -> None:
    assert (check_phone(value) is None) is ok


def test_masks_and_tokens() -> None:
    assert mask_id("110105194912310021") == "110***********0021"
    assert mask_phone("13812345678") == "138****5678"
    assert mask_name("张三丰") == "张**"
    p = Privacy("k" * 40, "e" * 40)
    assert p.sender_token("resident_id", "11010519491231002x") == p.sender_token(
        "resident_id", "11010519491231002X"
    )
    assert p.sender_token("resident_id", "1") != p.sender_token("passport", "1")
    assert Privacy("j" * 40, "e" * 40).sender_token("passport", "1") != p.sender_token("passport", "1")
    sealed = p.seal({"id_number": "11010519491231002X"})
    assert "11010519491231002X" not in sealed and p.unseal(sealed) == {"id_number": "11010519491231002X"}
    with pytest.raises(BadInput):
        Privacy("k" * 40, "other" * 10).unseal(sealed)


def parcel(decision: str, **kw: object) -> ParcelEvent:
    reasons = [] if decision == "CLEAR" else ["SENDER_BLACKLISTED"]
    base: dict[str, object] = {
        "key": "s:b:1", "station_id": "s", "boot_id": "b", "seq": 1, "at": NOW, "tracking_id": "t",
        "waybill": "WB1", "decision": decision, "reasons": reasons, "risk": 0.5, "classifier": "off",
    }  # fmt: skip
    base.update(kw)
    return ParcelEvent.model_validate(base)


def test_order_from_pull() -> None:
    ttl = timedelta(hours=1)
    draft = order_from_pull(parcel("PULL"), "site1", False, ttl)
    assert draft is not None and draft.site_id == "site1" and draft.origin_station_id == "s"
    assert draft.reason == "SENDER_BLACKLISTED" and draft.expires_at == NOW + ttl
    network = order_from_pull(parcel("PULL"), "site1", True, ttl)
    assert network is not None and network.site_id is None
    assert order_from_pull(parcel("HOLD"), "site1", False, ttl) is None
    assert order_from_pull(parcel("PULL", waybill=None), "site1", False, ttl) is None
    assert order_from_pull(parcel("PULL", order_ids=["o1"]), "site1", False, ttl) is None
    assert station_state(None, "2000-01-01T00:00:00+00:00", NOW) == "expired"
    assert station_state(None, "2999-01-01T00:00:00+00:00", NOW) == "pending"
    assert station_state("diverted", "2000-01-01T00:00:00+00:00", NOW) == "diverted"


def test_counters_and_summary() -> None:
    evs: list[ParcelEvent | OrderStatusEvent] = [
        parcel("CLEAR"),
        parcel("HOLD", reasons=["NO_READ"], waybill=None),
        parcel("HOLD", reasons=["NO_REALNAME"], declared_category="watches"),
        parcel("PULL", divert=DivertWire(outcome="DIVERTED")),
        parcel("PULL", divert=DivertWire(outcome="TIMEOUT")),
        OrderStatusEvent(
            key="s:b:9", station_id="s", boot_id="b", seq=9, at=NOW, order_id="o", state="missed"
        ),
    ]
    counts: Counter[tuple[str, str]] = Counter()
    for ev in evs:
        counts.update(event_counters(ev))
    s = summarise_counts(counts)
    assert (s["parcels"], s["cleared"], s["held"], s["pulled"]) == (5, 1, 2, 2)
    assert s["no_reads"] == 1 and s["realname_failures"] == 1
    assert s["hits_by_reason"] == {"NO_READ": 1, "NO_REALNAME": 1, "SENDER_BLACKLISTED": 2}
    assert s["hits_by_category"] == {"unknown": 3, "watches": 1}
    # The order's "missed" is the timed-out pull itself: counted once, by its divert.
    assert s["pulls"] == {"requested": 2, "diverted": 1, "missed": 1, "pending": 0}


def test_review_summary_and_uptime() -> None:
    out = summarise_reviews(Counter({"release": 1, "seize": 1, "open": 1}), [600.0, 1800.0])
    assert out["confirmed_hit_rate"] == 0.5 and out["median_seconds_to_decision"] == 1200.0
    assert out["review_outcomes"] == {"open": 1, "release": 1, "seize": 1}
    start = datetime(2026, 5, 1, tzinfo=UTC)
    status = [
        ("xray", "2026-05-01T00:00:00+00:00", True),
        ("xray", "2026-05-01T06:00:00+00:00", False),
        ("xray", "2026-05-01T12:00:00+00:00", True),
    ]
    assert device_uptime(status, start, start + timedelta(days=1)) == {"xray": 0.75}
