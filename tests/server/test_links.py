"""Link graph end to end: import, sync, the links job, one consolidated item, risk to stations, desk pages."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from edge.wire import FEATURE_SENDER_RISK, FEATURES_HEADER, SyncReply
from server.deps import Services
from server.idcheck import resident_id_check_char, usc_check_char
from server.links.job import run_links
from server.links.normalise import normalise_address
from server.privacy import Privacy
from server.schema import link_cluster_members, link_clusters, link_edges, reviews, sender_risks, senders
from server.watchlist import WatchRequest, token_and_mask
from tests.server.conftest import Server, make_caller

NOW = datetime.now(UTC).replace(microsecond=0)
PHONE = "13912345678"
SENDER_HEAD = (
    "id_type,id_number,name,phone,address,verified,verified_at,outlet,courier,agreement_customer,usc_code,"
    "qualification"
)
MANIFEST_HEAD = (
    "waybill,sender_id_type,sender_id_number,declared_name,declared_category,quantity,inspected_on_receipt,"
    "destination"
)
PLACES = ("上海市浦东新区世纪大道1号", "杭州市西湖区文三路9号")


def _services(server: Server) -> Services:
    app: Any = server.client.app
    found: Services = app.state.services
    return found


def rid(n: int) -> str:
    first = f"11010519900101{n:03d}"
    return first + resident_id_check_char(first)


def usc(n: int) -> str:
    first = f"91440300MA5{n:06d}"
    return first + usc_check_char(first)


def csv(header: str, rows: list[str]) -> bytes:
    return (header + "\n" + "\n".join(rows) + "\n").encode()


def _import(server: Server, kind: str, body: bytes) -> dict[str, Any]:
    r = server.client.post(
        f"/api/v1/{kind}/import", content=body, headers={**server.admin, "Content-Type": "text/csv"}
    )
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def _parcel(station: str, seq: int, waybill: str, token: str, at: datetime) -> dict[str, Any]:
    return {
        "type": "parcel", "key": f"{station}:b1:{seq}", "station_id": station, "boot_id": "b1", "seq": seq,
        "at": at.isoformat(), "tracking_id": f"t{seq}", "waybill": waybill, "decision": "CLEAR",
        "reasons": [], "risk": 0.0, "sender_token": token, "declared_category": "footwear_clothing",
        "classifier": "off",
    }  # fmt: skip


def _sync(
    server: Server, station: str, headers: dict[str, str], events: list[dict[str, Any]], **extra: str
) -> Any:
    body = {"station_id": station, "boot_id": "b1", "registry_cursor": 0, "events": events}
    r = server.client.post("/api/v1/sync", json=body, headers={**headers, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def ants(server: Server) -> dict[str, str]:
    """Three senders sharing one phone, writing their address three ways, six parcels of shoes to two
    places over five days from two stations; and an unrelated sender of the same goods elsewhere."""
    addresses = ["广东省广州市天河区天河路123号", "广州天河区 天河路１２３号", "广州市天河区天河路123#"]
    rows = [f"resident_id,{rid(i)},Ant {i},{PHONE},{addresses[i]},true,,O1,C1,false,," for i in range(3)]
    rows.append(f"resident_id,{rid(7)},Other,13700000000,北京市朝阳区建国路88号,true,,O2,C1,false,,")
    assert _import(server, "senders", csv(SENDER_HEAD, rows))["imported"] == 4
    privacy = Privacy(
        server.settings.hmac_key.get_secret_value(), server.settings.encryption_key.get_secret_value()
    )
    tokens = {f"ant{i}": privacy.sender_token("resident_id", rid(i)) for i in range(3)}
    tokens["other"] = privacy.sender_token("resident_id", rid(7))
    manifests = [
        f"ANT{j:04d},resident_id,{rid(j % 3)},运动鞋,footwear_clothing,2,true,{PLACES[j % 2]}"
        for j in range(6)
    ] + ["OTH0001,resident_id," + rid(7) + ",运动鞋,footwear_clothing,1,true,成都市武侯区人民南路5号"]
    assert _import(server, "manifests", csv(MANIFEST_HEAD, manifests))["imported"] == 7
    for j in range(6):
        station, headers = ("st-a", server.station_a) if j % 2 else ("st-b", server.station_b)
        at = NOW - timedelta(days=5 - j)
        _sync(server, station, headers, [_parcel(station, 10 + j, f"ANT{j:04d}", tokens[f"ant{j % 3}"], at)])
    _sync(server, "st-a", server.station_a, [_parcel("st-a", 30, "OTH0001", tokens["other"], NOW)])
    return tokens


def test_address_written_three_ways_is_one_token(server: Server) -> None:
    tokens = ants(server)
    with _services(server).db.read() as conn:
        found = {r.sender_token: r.address_token for r in conn.execute(select(senders))}
    assert len({found[tokens[f"ant{i}"]] for i in range(3)}) == 1
    assert found[tokens["other"]] != found[tokens["ant0"]]
    # The watchlist tokens an address entry the same way, however it is written.
    privacy = _services(server).privacy
    entry = WatchRequest(
        list="watchlist", kind="address", value="广东 广州 天河 天河路 123号", reason="r", source="s"
    )
    assert token_and_mask(privacy, entry)[0] == found[tokens["ant0"]]


def test_split_shipment_opens_one_consolidated_item_and_raises_risk(server: Server) -> None:
    tokens = ants(server)
    db, settings = _services(server).db, server.settings
    first = run_links(db, settings, NOW)
    assert (first["clusters"], first["opened"]) == (1, 1)
    again = run_links(db, settings, NOW + timedelta(minutes=10))
    assert (again["opened"], again["grown"]) == (0, 1)
    with db.read() as conn:
        items = conn.execute(select(reviews).where(reviews.c.reasons.like("%SPLIT_SHIPMENT%"))).all()
        cluster = conn.execute(select(link_clusters)).one()
        members = conn.execute(select(link_cluster_members)).all()
        risks = {r.sender_token: r for r in conn.execute(select(sender_risks))}
    assert len(items) == 1 and items[0].state == "open" and items[0].decision == "HOLD"
    assert cluster.review_id == items[0].id and cluster.parcels == 6 and cluster.senders == 3
    assert len(members) == 6
    assert set(risks) == {tokens[f"ant{i}"] for i in range(3)}
    parts = json.loads(risks[tokens["ant0"]].contributions)
    assert [p["kind"] for p in parts] == ["split_shipment"] and risks[tokens["ant0"]].score > 0.4

    # Stations that read the sender-risk fields get them; older stations get the v1 form only.
    new = _sync(server, "st-a", server.station_a, [], **{FEATURES_HEADER: FEATURE_SENDER_RISK})
    by_token = {
        s["sender_token"]: s for s in SyncReply.model_validate(new).model_dump()["registry"]["senders"]
    }
    assert by_token[tokens["ant1"]]["risk"] == pytest.approx(risks[tokens["ant1"]].score)
    assert by_token[tokens["other"]]["risk"] == 0.0
    old = _sync(server, "st-a", server.station_a, [])
    assert all(set(s) & {"risk", "qualified", "customer_token"} == set() for s in old["registry"]["senders"])

    # The desk: the item links to its cluster; the cluster and a sender's neighbourhood are pictures.
    _, cookie = make_caller(server, "officer", ["site1"])
    page = server.client.get(f"/desk/items/{items[0].id}?lang=en", headers=cookie)
    assert page.status_code == 200 and f"/desk/links/clusters/{cluster.cluster_id}" in page.text
    view = server.client.get(f"/desk/links/clusters/{cluster.cluster_id}?lang=en", headers=cookie)
    assert view.status_code == 200 and "<svg" in view.text and "ANT0005" in view.text
    hood = server.client.get(f"/desk/links/senders/{tokens['ant0']}?lang=zh", headers=cookie)
    assert hood.status_code == 200 and "<svg" in hood.text
    for page_text in (view.text, hood.text):
        # Masked values only: no phone number, ID number or address in the clear.
        assert PHONE not in page_text and rid(1) not in page_text and "天河路" not in page_text
    assert "139****5678" in hood.text
    # Another site's officer sees neither.
    _, other = make_caller(server, "officer", ["site2"])
    assert server.client.get(f"/desk/links/clusters/{cluster.cluster_id}", headers=other).status_code == 404
    assert server.client.get(f"/desk/links/senders/{tokens['ant0']}", headers=other).status_code == 404


def test_bad_addresses_of_the_desk_are_refused(server: Server) -> None:
    _, cookie = make_caller(server, "officer", ["site1"])
    for path in ("/desk/links/senders/nothex", "/desk/links/senders/" + "g" * 64, "/desk/links/clusters/x'--",
                 "/desk/links/clusters/" + "0" * 36, "/desk/links/senders/" + "0" * 64):  # fmt: skip
        r = server.client.get(path, headers=cookie)
        assert r.status_code == 404, path


def test_organisation_entry_and_customer_share_the_credit_code_token(server: Server) -> None:
    rows = [
        f"resident_id,{rid(20)},Shop,,,true,,O1,C1,true,{usc(1)},expired",
        f"usc_code,{usc(2)},Co,,,true,,O1,C1,true,,valid",
    ]
    assert _import(server, "senders", csv(SENDER_HEAD, rows))["imported"] == 2
    privacy = _services(server).privacy
    reply = SyncReply.model_validate(
        _sync(server, "st-a", server.station_a, [], **{FEATURES_HEADER: FEATURE_SENDER_RISK})
    )
    by_token = {s.sender_token: s for s in reply.registry.senders}
    shop = by_token[privacy.sender_token("resident_id", rid(20))]
    company = by_token[privacy.sender_token("usc_code", usc(2))]
    entry = WatchRequest(list="watchlist", kind="organisation", value=usc(1), reason="r", source="s")
    assert shop.customer_token == token_and_mask(privacy, entry)[0]
    assert (shop.qualified, company.qualified) == (False, True)
    assert company.customer_token == privacy.sender_token("usc_code", usc(2))


def test_normalise_address_variants() -> None:
    same = [
        "广东省广州市天河区天河路123号",
        "广州天河天河路１２３#",
        "廣東省廣州市天河區天河路123號",
        " 广州市 天河区，天河路 123 号 ",
    ]
    assert len({normalise_address(a) for a in same}) == 1
    assert normalise_address("广州市天河区天河路124号") != normalise_address(same[0])
    assert normalise_address("Tianhe Rd. No.123") == normalise_address("tianhe 路 123号")


def test_sender_risk_decays_and_is_explained(server: Server) -> None:
    """A seizure a year ago weighs less than one today; a release speaks for the sender; shown by kind."""
    tokens = ants(server)
    db = _services(server).db
    rows = [
        (tokens["ant0"], "seize", NOW - timedelta(days=365)),
        (tokens["ant1"], "seize", NOW),
        (tokens["ant2"], "seize", NOW),
        (tokens["ant2"], "release", NOW),
    ]
    with db.write() as conn:
        for i, (token, outcome, at) in enumerate(rows):
            conn.execute(
                reviews.insert().values(
                    event_key=f"hist:{i}", station_id="st-a", site_id="site1", line_id="l", waybill=None,
                    tracking_id=f"h{i}", decision="HOLD", reasons="[]", risk=0.5, sender_token=token,
                    category="x", priority=1, state="decided", day=at.date().isoformat(),
                    created_at=at.isoformat(), due_at=at.isoformat(), outcome=outcome,
                    decided_at=at.isoformat(),
                )
            )  # fmt: skip
    run_links(db, server.settings, NOW)
    with db.read() as conn:
        risks = {r.sender_token: r for r in conn.execute(select(sender_risks))}
    old, new, released = (risks[tokens[k]] for k in ("ant0", "ant1", "ant2"))
    assert old.score < new.score and released.score < new.score
    parts = {p["kind"]: p for p in json.loads(old.contributions)}
    assert set(parts) == {"seize", "split_shipment"}
    # Half-life 180 days: a year-old seizure keeps about a quarter of its weight.
    assert parts["seize"]["weight"] == pytest.approx(1.2 * 0.5 ** (365 / 180), abs=0.01)
    assert {p["kind"] for p in json.loads(released.contributions)} == {"seize", "release", "split_shipment"}
    # The item page shows the score and its parts.
    _, cookie = make_caller(server, "officer", ["site1"])
    item = server.client.get("/api/v1/reviews", headers=server.admin).json()[0]["id"]
    page = server.client.get(f"/desk/items/{item}?lang=en", headers=cookie)
    assert 'id="sender-risk"' in page.text and "split_shipment" in page.text


def test_an_address_of_markers_only_links_nothing(server: Server) -> None:
    rows = [
        f"resident_id,{rid(40 + i)},P{i},,{a},true,,O1,C1,false,," for i, a in enumerate(["省市区", " 。、 "])
    ]
    assert _import(server, "senders", csv(SENDER_HEAD, rows))["imported"] == 2
    with _services(server).db.read() as conn:
        assert {r.address_token for r in conn.execute(select(senders))} == {None}
    entry = {"list": "watchlist", "kind": "address", "value": "省 市 区", "reason": "r", "source": "s"}
    r = server.client.post("/api/v1/watchlist", json=entry, headers=server.admin)
    assert r.status_code == 422 and "markers" in r.json()["error"]["message"]


def test_two_servers_running_the_job_at_once_open_one_item(server: Server) -> None:
    ants(server)
    db, settings = _services(server).db, server.settings
    results: list[dict[str, Any]] = []
    threads = [
        threading.Thread(target=lambda: results.append(run_links(db, settings, NOW))) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(r["opened"] for r in results) == [0, 1]
    with db.read() as conn:
        assert len(conn.execute(select(reviews).where(reviews.c.reasons.like("%SPLIT_SHIPMENT%"))).all()) == 1


def test_hit_images_link_through_their_nearest_known_counterfeit(server: Server) -> None:
    """Only a hit's first live gallery match becomes an edge; replays add nothing."""
    tokens = ants(server)
    view = {
        "image_sha256": "a" * 64,
        "category": "footwear_clothing",
        "category_prob": 0.9,
        "model_version": "m",
    }
    events = [
        {**_parcel("st-a", 40 + i, f"ANT{i:04d}", tokens[f"ant{i % 3}"], NOW), "decision": decision,
         "reasons": reasons, "classifier": "on",
         "classifications": [{**view, "gallery": [{"ref_id": "ref-1", "similarity": 0.95}],
                              "shadow": shadow}]}
        for i, (decision, reasons, shadow) in enumerate(
            [("PULL", ["GALLERY_MATCH"], False), ("PULL", ["GALLERY_MATCH"], False), ("CLEAR", [], False),
             ("HOLD", ["MODEL_UNCERTAIN"], True)]
        )
    ]  # fmt: skip
    for _ in range(2):
        _sync(server, "st-a", server.station_a, events)
    with _services(server).db.read() as conn:
        edges = conn.execute(select(link_edges)).all()
    assert sorted((e.kind, e.token, e.sender_token) for e in edges) == sorted(
        [("image", "ref-1", tokens["ant0"]), ("image", "ref-1", tokens["ant1"])]
    )
